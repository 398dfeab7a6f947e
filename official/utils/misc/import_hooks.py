"""Run code right after a module's first import, without importing it.

Used to register Keras layers when (and only if) Keras is imported, and to
capture TensorFlow's start-up output around its import, while modules that
never need either stay light.
"""

import contextlib
import importlib.abc
import importlib.util
import sys


class _AfterImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `name` with the other finders and runs `callback(module)`
    right after its module code, both within `wrap()`."""

    def __init__(self, name, callback, wrap):
        self.name = name
        self.callback = callback
        self.wrap = wrap
        self._loader = None
        self._finding = False

    def find_spec(self, name, path=None, target=None):
        # Stays in place until the module is imported: a lookup alone
        # (etils' `importlib.util.find_spec("tensorflow")`, inside JAX's
        # compilation cache) took the hook away, and TensorFlow's import
        # after it printed its start-up block.
        if name != self.name or self._finding:
            return None
        self._finding = True  # not to find itself
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._finding = False
        if spec is None or spec.loader is None:
            return spec
        self._loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        if self in sys.meta_path:
            sys.meta_path.remove(self)  # once
        with self.wrap():
            self._loader.exec_module(module)
            module.__loader__ = module.__spec__.loader = self._loader
            self.callback(module)


def after_first_import(name, callback, wrap=contextlib.nullcontext):
    """Arranges `callback(module)` to run right after `name` is imported.

    Args:
        name: a top-level module name, e.g. "keras".
        callback: called with the module once its code has run.
        wrap: a context-manager factory around the module's code and the
            callback (e.g. to capture what they print).

    Returns:
        False, doing nothing, when `name` is already imported (the caller
        decides what to do then); True when the hook is in place.
    """
    if name in sys.modules:
        return False
    for finder in sys.meta_path:
        if isinstance(finder, _AfterImport) and finder.name == name:
            if finder.callback == callback:
                return True  # already arranged
    sys.meta_path.insert(0, _AfterImport(name, callback, wrap))
    return True
