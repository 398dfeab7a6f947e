"""`official.utils.misc.heap`: the import-time heap leaves the collector."""

import gc
import sys

from official.utils.misc import heap


def test_freeze_after_an_import_that_already_happened_freezes_now():
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    heap.freeze_after_import("json")  # imported long ago
    assert gc.get_freeze_count() > 1000
    heap.freeze()  # as tests/conftest.py leaves the worker


def test_freeze_runs_right_after_the_first_import(tmp_path, monkeypatch):
    (tmp_path / "heap_probe_module.py").write_text("VALUE = [1, 2, 3]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    gc.unfreeze()
    heap.freeze_after_import("heap_probe_module")
    assert gc.get_freeze_count() == 0  # not imported yet: nothing frozen
    import heap_probe_module  # noqa: F401

    assert gc.get_freeze_count() > 1000
    heap.freeze()  # as tests/conftest.py leaves the worker
    del sys.modules["heap_probe_module"]
