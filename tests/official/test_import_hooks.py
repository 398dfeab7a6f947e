"""Code run right after a module's first import (official.utils.misc)."""

import importlib
import importlib.util
import sys

from official.utils.misc import import_hooks


def test_a_lookup_alone_keeps_the_hook_for_the_import(tmp_path, monkeypatch):
    """etils looks TensorFlow up (`importlib.util.find_spec`) without
    importing it, inside JAX's compilation cache: that took the hook away,
    and TensorFlow's start-up block was printed when it was imported."""
    (tmp_path / "hooked_module_x.py").write_text("VALUE = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen, wrapped = [], []

    class Wrap:
        def __enter__(self):
            wrapped.append("enter")

        def __exit__(self, *exc):
            wrapped.append("exit")

    assert import_hooks.after_first_import(
        "hooked_module_x", lambda module: seen.append(module.VALUE), Wrap
    )
    try:
        assert importlib.util.find_spec("hooked_module_x") is not None
        assert seen == [] and "hooked_module_x" not in sys.modules
        module = importlib.import_module("hooked_module_x")
        assert seen == [3] and wrapped == ["enter", "exit"]
        # Once: the hook is gone and the module's loader is its own.
        assert not any(
            isinstance(f, import_hooks._AfterImport)
            and f.name == module.__name__
            for f in sys.meta_path
        )
        assert not isinstance(module.__loader__, import_hooks._AfterImport)
    finally:
        sys.modules.pop("hooked_module_x", None)
        sys.meta_path[:] = [
            f
            for f in sys.meta_path
            if not isinstance(f, import_hooks._AfterImport)
            or f.name != "hooked_module_x"
        ]
