"""Progress bars on stderr that a Ctrl-C cannot leave half-built.

Every long job shows a tqdm bar on stderr. tqdm's `__init__` runs for a
while (it measures the terminal, registers the bar); a Ctrl-C landing
there drops the bar half-built and its `__del__` then prints "Exception
ignored in ... AttributeError: 'tqdm' object has no attribute 'pos'" and
a traceback under the job's own one-line message. `bar` builds it with
SIGINT deferred to the end of the construction
(`interrupts.deferred()`).
"""

import sys

from official.utils.misc import interrupts


def bar(iterable=None, *, progress=True, **kwargs):
    """A tqdm bar on stderr, hidden when not `progress`.

    Args:
        iterable: what to iterate over, as tqdm's first argument.
        progress: show it (binaries' `--progress`).
        **kwargs: tqdm's other arguments (`total`, `desc`, `unit`, ...).

    Returns:
        The `tqdm` object, whole.
    """
    from tqdm import tqdm

    kwargs.setdefault("file", sys.stderr)
    with interrupts.deferred():
        return tqdm(iterable, disable=not progress, **kwargs)
