"""Ctrl-C that a long job cannot lose.

Python turns SIGINT into a `KeyboardInterrupt` wherever the main thread is
at that moment; if that is a finalizer (a tf.data iterator's `__del__` at
an epoch boundary, say), Python prints "Exception ignored" and the job runs
on. `install()` makes SIGINT also set a flag that long loops poll
(`check()`), so a Ctrl-C stops them at their next check even when the
exception itself was swallowed, and keeps Python's "Exception ignored ...
Traceback ... KeyboardInterrupt" report of the swallowed one off the
console: the job ends with its own one-line message.
"""

import signal
import sys
import threading

_requested = threading.Event()


def install():
    """SIGINT sets the flag, then raises `KeyboardInterrupt` as usual; a
    `KeyboardInterrupt` swallowed in a finalizer is not reported.

    Only from the main thread (where Python runs signal handlers).
    """

    def handler(signum, frame):
        _requested.set()
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
        if not getattr(sys.unraisablehook, "_quiet_ctrl_c", False):
            sys.unraisablehook = _quiet_swallowed_ctrl_c(sys.unraisablehook)


def _quiet_swallowed_ctrl_c(previous):
    """An unraisable-exception hook that drops a `KeyboardInterrupt` from
    our SIGINT handler (`check()` raises it again) and passes anything
    else to `previous`."""

    def hook(unraisable):
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and (
            _requested.is_set()
        ):
            return
        previous(unraisable)

    hook._quiet_ctrl_c = True
    return hook


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
