"""Keep the garbage collector off the framework's import-time heap.

TensorFlow and Keras leave a few million long-lived Python objects behind
their import. Python's cyclic collector walks all of them on every full
collection: about 0.18 s each on this project's 2-core CI machine, and
tracing a model triggers many. `gc.freeze()` right after the import moves
them out of the collector's sight (they are still freed by reference
counting; only a cycle among them would stay), as CPython's docs suggest
for long-lived start-up state. A tiny training process: 11.1 -> 9.5 s.
"""

import gc

from official.utils.misc import import_hooks


def freeze():
    """Collects garbage, then freezes every object alive now."""
    gc.collect()
    gc.freeze()


def freeze_after_import(name="keras"):
    """Runs `freeze()` right after `name` is first imported (now, if it
    already is)."""
    if not import_hooks.after_first_import(name, _freeze_module):
        freeze()


def _freeze_module(module):
    del module
    freeze()
