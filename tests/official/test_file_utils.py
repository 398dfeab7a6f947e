"""official.utils.misc.file_utils: atomic writes."""

import os

import pytest

from official.utils.misc import file_utils


def test_atomic_write_text_bytes_and_json(tmp_path):
    path = str(tmp_path / "a.txt")
    file_utils.atomic_write(path, "héllo")
    assert open(path, encoding="utf-8").read() == "héllo"
    file_utils.atomic_write(path, b"\x00\x01")
    assert open(path, "rb").read() == b"\x00\x01"
    file_utils.atomic_write_json(path, {"b": 1, "a": [2]}, sort_keys=True)
    assert open(path).read() == '{"a": [2], "b": 1}'
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path):
    path = str(tmp_path / "a.txt")
    file_utils.atomic_write(path, "old")
    with pytest.raises(TypeError):
        file_utils.atomic_write(path, 123)
    assert open(path).read() == "old"
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]
