"""Progress bars that a Ctrl-C cannot leave half-built, and the deferred
SIGINT under them."""

import os
import signal
import sys

import pytest

from official.utils.misc import interrupts, progress


class _InterruptedWhileShown:
    """A postfix value whose `str()` (which tqdm calls in its `__init__`
    after `disable` is set and before `pos` is) receives SIGINT."""

    def __str__(self):
        os.kill(os.getpid(), signal.SIGINT)
        return "x"


def _interrupted_postfix():
    return {"loss": _InterruptedWhileShown()}


def _interrupted(make):
    """Whether `make()` raised KeyboardInterrupt (its traceback dropped,
    so that what it held is finalized)."""
    try:
        make()
    except KeyboardInterrupt:
        return True
    return False


@pytest.fixture
def reported():
    """Installs the binaries' SIGINT handler; yields the list of
    exceptions that reach Python's unraisable hook (its console lines)."""
    previous = signal.getsignal(signal.SIGINT)
    previous_hook = sys.unraisablehook
    seen = []
    sys.unraisablehook = lambda u: seen.append(u.exc_value)
    interrupts.reset()
    try:
        interrupts.install()
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = previous_hook
        interrupts.reset()


def test_ctrl_c_in_a_bars_construction_is_raised_once_it_is_whole(reported):
    """Before: a Ctrl-C inside tqdm's `__init__` printed "Exception ignored
    in ... AttributeError: 'tqdm' object has no attribute 'pos'" and a
    traceback under the trainer's one-line message (a flaky test of
    `tests/training/test_trainer.py`)."""
    import gc

    from tqdm import tqdm

    assert _interrupted(lambda: tqdm(postfix=_interrupted_postfix()))  # before
    gc.collect()
    assert [type(e) for e in reported] == [AttributeError]
    reported.clear()
    interrupts.reset()

    assert _interrupted(lambda: progress.bar(postfix=_interrupted_postfix()))
    gc.collect()
    assert reported == []
    assert interrupts.requested()
    # Without an interrupt: the bar, on stderr, hidden by progress=False.
    interrupts.reset()
    bar = progress.bar(range(4), progress=False, desc="x")
    assert bar.disable
    assert list(bar) == [0, 1, 2, 3]


def test_deferred_runs_the_block_to_its_end_then_raises(reported):
    ran = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            ran.append("after the signal")
    assert ran == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    # Nothing arrived: nothing raised, the handler is back.
    handler = signal.getsignal(signal.SIGINT)
    with interrupts.deferred():
        ran.append("quiet")
    assert signal.getsignal(signal.SIGINT) is handler
    # An ignored SIGINT stays ignored; a handler that does not raise is
    # called once, at the end, and nothing is raised.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with interrupts.deferred():
        os.kill(os.getpid(), signal.SIGINT)
    signal.signal(signal.SIGINT, lambda *args: ran.append("handled"))
    with interrupts.deferred():
        os.kill(os.getpid(), signal.SIGINT)
        ran.append("block")
    assert ran == ["after the signal", "quiet", "block", "handled"]
