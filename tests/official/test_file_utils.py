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


def test_folder_lock_is_released_and_refuses_a_live_holder(tmp_path):
    """The lock file exists while the block runs, goes with it (also on an
    error), and a lock held by a live process of this host refuses."""
    import socket

    from official.utils.misc.validation import OptionError

    folder = tmp_path / "out"  # made by the lock
    lock = folder / file_utils.LOCK_FILE
    start = file_utils.process_start(os.getpid())
    me = f"{os.getpid()}@{socket.gethostname()} job\nstarted {start}"
    with file_utils.folder_lock(str(folder), "output_dir", "job"):
        assert lock.read_text() == me
        with pytest.raises(OptionError, match="by another job \\(process "):
            with file_utils.folder_lock(str(folder), "output_dir", "job"):
                pass
        assert lock.read_text() == me  # the refused one left it alone
    assert not lock.exists()
    assert not folder.exists()  # made by the lock and left empty
    with pytest.raises(RuntimeError):
        with file_utils.folder_lock(str(folder), "output_dir", "job"):
            raise RuntimeError
    assert not folder.exists()  # a failed start leaves nothing
    folder.mkdir()  # a folder that was there stays, empty
    with pytest.raises(RuntimeError):
        with file_utils.folder_lock(str(folder), "output_dir", "job"):
            raise RuntimeError
    assert os.listdir(folder) == []


def test_a_lock_whose_pid_now_names_a_later_process_is_taken_over(tmp_path):
    """A container restarted after preemption runs its job under the same
    low pid on the same host name: before, the killed job's lock read as
    held by it ("is being written by another tools.train run (process
    1@pod-0)") and the restart was refused."""
    import socket

    from official.utils.misc.validation import OptionError

    parent = os.getppid()  # a live process that is not this one
    start = file_utils.process_start(parent)
    assert start and start != file_utils.process_start(os.getpid())
    boot, ticks = start.rsplit(":", 1)
    assert len(boot) == 36 and int(ticks) > 0
    lock = tmp_path / file_utils.LOCK_FILE
    holder = f"{parent}@{socket.gethostname()} tools.train run"
    for held in (f"{holder}\nstarted {start}", holder):  # and no record
        lock.write_text(held)
        with pytest.raises(OptionError, match=f"process {parent}@"):
            with file_utils.folder_lock(str(tmp_path), "model_dir", "job"):
                pass
        assert lock.read_text() == held
    lock.write_text(f"{holder}\nstarted {boot}:{int(ticks) - 1}")
    with file_utils.folder_lock(str(tmp_path), "model_dir", "job"):
        assert lock.read_text().startswith(f"{os.getpid()}@")
    assert not lock.exists()
