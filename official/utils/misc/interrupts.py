"""Ctrl-C that a long job cannot lose.

Python turns SIGINT into a `KeyboardInterrupt` wherever the main thread is
at that moment; if that is a finalizer (a tf.data iterator's `__del__` at
an epoch boundary, say), Python prints "Exception ignored" and the job runs
on. `install()` makes SIGINT also set a flag that long loops poll
(`check()`), so a Ctrl-C stops them at their next check even when the
exception itself was swallowed.
"""

import signal
import threading

_requested = threading.Event()


def install():
    """SIGINT sets the flag, then raises `KeyboardInterrupt` as usual.

    Only from the main thread (where Python runs signal handlers).
    """

    def handler(signum, frame):
        _requested.set()
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)


def requested():
    """Whether SIGINT arrived since `install()` (or `reset()`)."""
    return _requested.is_set()


def check():
    """Raises `KeyboardInterrupt` if SIGINT arrived (and was swallowed)."""
    if _requested.is_set():
        raise KeyboardInterrupt


def reset():
    """Forgets an earlier SIGINT (tests)."""
    _requested.clear()
