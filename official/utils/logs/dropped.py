"""Framework log lines the binaries answer better themselves.

tfds, TensorFlow and Keras log through absl's Python logger. A few of their
warnings come just before one of our one-line errors and only confuse it
(tfds: "Variant folder <data_dir>/food101/2.0.0 has no dataset_info.json",
a folder that need not exist, above our error saying where it looked and
how to prepare the dataset). `dropped(pattern)` filters those records for
the length of a `with` block, touching no logger's level.
"""

import contextlib
import logging
import re


@contextlib.contextmanager
def dropped(pattern, logger="absl"):
    """Drops the records of `logger` whose message matches `pattern` (a
    regular expression, searched) inside the block; others pass."""
    matches = re.compile(pattern).search
    target = logging.getLogger(logger)
    log_filter = _Filter(matches)
    target.addFilter(log_filter)
    try:
        yield
    finally:
        target.removeFilter(log_filter)


class _Filter(logging.Filter):
    def __init__(self, matches):
        super().__init__()
        self._matches = matches

    def filter(self, record):
        return not self._matches(record.getMessage())
