"""Atomic file writes: readers see the old file or the new one, never half.

The data goes to a hidden temporary file next to `path` (same file system),
which then replaces `path` with `os.replace`. Used by every binary that
resumes (TFRecord builder, ImageNet-C/P generators, evaluation caches).
"""

import json
import os


def atomic_write(path, data):
    """Writes `data` (str as UTF-8, or bytes) to `path` atomically."""
    tmp = os.path.join(
        os.path.dirname(path) or ".",
        f".{os.path.basename(path)}.tmp-{os.getpid()}",
    )
    mode, kwargs = (
        ("w", {"encoding": "utf-8"}) if isinstance(data, str) else ("wb", {})
    )
    try:
        with open(tmp, mode, **kwargs) as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_json(path, value, **dump_kwargs):
    """`json.dumps(value, **dump_kwargs)` written atomically to `path`."""
    atomic_write(path, json.dumps(value, **dump_kwargs))


def read_json(path, fix):
    """The JSON value in `path`.

    Raises:
        ValueError: not JSON: one line naming `path`, the parser's reason
            and `fix` (what the user can do).
    """
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); {fix}.") from None
