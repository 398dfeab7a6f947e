"""Ctrl-C that a long job cannot lose.

Python turns SIGINT into a `KeyboardInterrupt` wherever the main thread is
at that moment; if that is a finalizer (a tf.data iterator's `__del__` at
an epoch boundary, say), Python prints "Exception ignored" and the job runs
on. `install()` makes SIGINT also set a flag that long loops poll
(`check()`), so a Ctrl-C stops them at their next check even when the
exception itself was swallowed, and keeps Python's "Exception ignored ...
Traceback ... KeyboardInterrupt" report of the swallowed one off the
console: the job ends with its own one-line message.

`graceful_termination()` is the other signal a long job gets: SIGTERM, what
a cloud scheduler sends before it takes the machine (preemptible VMs, TPU
maintenance, Kubernetes), with a grace period of some seconds. Inside it,
SIGTERM only sets a flag (`termination_requested()`); the job polls it at a
point where its state is whole, saves, and raises `Terminated`, which the
binaries print as one line and exit 143 (128 + SIGTERM), as a process
killed by SIGTERM would. Model Garden's `PreemptionCheckpointHandler` is
the TensorFlow-only form of this.
"""

import contextlib
import signal
import sys
import threading

_requested = threading.Event()
_terminate = threading.Event()
# The message of the `Terminated` that `sigterm_raises`'s handler raised,
# or None: TensorFlow and Keras re-raise an exception from inside a traced
# function or a layer's call with their own lines added (before: "Terminated.
# in user code: File ..." and a dozen lines more).
_raised = None

# The exit status of a job stopped by SIGTERM (128 + 15), as the shell
# reports a process that the signal killed.
TERMINATED_EXIT_CODE = 128 + signal.SIGTERM


class Terminated(Exception):
    """A job stopped on SIGTERM after saving; the message says how to go
    on."""


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
    our SIGINT handler and a `Terminated` from `sigterm_raises`' (`check()`
    raises both again) and passes anything else to `previous`."""

    def hook(unraisable):
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and (
            _requested.is_set()
        ):
            return
        # `sigterm_raises`' Terminated, swallowed likewise (a garbage
        # collector callback: JAX's `_xla_gc_callback`); `check()` raises
        # it again.
        if isinstance(unraisable.exc_value, Terminated) and (
            _raised is not None
        ):
            return
        previous(unraisable)

    hook._quiet_ctrl_c = True
    return hook


def requested():
    """Whether SIGINT arrived since `install()` (or `reset()`)."""
    return _requested.is_set()


def check():
    """Raises `KeyboardInterrupt` if SIGINT arrived (and was swallowed),
    `Terminated` if `sigterm_raises`' SIGTERM did."""
    if _requested.is_set():
        raise KeyboardInterrupt
    if _raised is not None:
        raise Terminated(_raised)


def terminated_message(error):
    """What to print of the `Terminated` `error`: the message it was
    raised with by `sigterm_raises`' handler (not what TensorFlow or Keras
    added on its way up), else its own."""
    return _raised if _raised is not None else str(error)


def reset():
    """Forgets an earlier SIGINT or SIGTERM (tests)."""
    global _raised
    _requested.clear()
    _terminate.clear()
    _raised = None


@contextlib.contextmanager
def deferred():
    """Within the block, SIGINT only sets the flag; the block runs to its
    end and the handler before is called there (Python's and `install()`'s
    raise `KeyboardInterrupt`; an ignored SIGINT stays ignored).

    For code that an exception must not cut in half: an object whose
    `__init__` is interrupted is dropped half-built, and its `__del__`
    then fails (tqdm's: "Exception ignored in ... AttributeError: 'tqdm'
    object has no attribute 'pos'" under a job's own one-line message).
    """
    if (
        threading.current_thread() is not threading.main_thread()
        # Installed outside Python (getsignal gives None): it could not
        # be put back.
        or signal.getsignal(signal.SIGINT) is None
    ):
        yield
        return
    arrived = []

    def handler(signum, frame):
        _requested.set()
        arrived.append(frame)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if arrived:
        if callable(previous):
            previous(signal.SIGINT, arrived[0])
        elif previous == signal.SIG_DFL:
            raise KeyboardInterrupt  # the nearest to being killed by it


@contextlib.contextmanager
def graceful_termination(enabled=True):
    """Within the block, SIGTERM sets `termination_requested()` instead of
    killing the process; the previous handler is back afterwards.

    Off outside the main thread (where Python cannot install handlers) and
    when not `enabled` (e.g. a multi-worker job, whose workers must agree
    on a save: there SIGTERM kills as before and the last checkpoint is
    the resume point).
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    _terminate.clear()  # before, SIGTERM would have killed the process
    previous = signal.signal(
        signal.SIGTERM, lambda signum, frame: _terminate.set()
    )
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def sigterm_raises(message):
    """Within the block, SIGTERM raises `Terminated(message)` in the main
    thread, as SIGINT raises `KeyboardInterrupt`: for jobs that keep each
    finished item and can stop anywhere (the worker-pool jobs, whose pool
    is then shut down; before, SIGTERM killed the parent alone and its
    workers wrote on, then hung). The previous handler is back afterwards.
    """
    global _raised
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _raised = None  # an earlier block's

    def handler(signum, frame):
        global _raised
        _raised = message
        raise Terminated(message)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def termination_requested():
    """Whether SIGTERM arrived inside `graceful_termination()`."""
    return _terminate.is_set()
