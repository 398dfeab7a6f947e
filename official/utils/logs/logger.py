"""JSON-lines metric logging and run information."""

import json
import platform
import sys
import time


def run_info():
    """Versions and devices, to put beside every benchmark figure."""
    import keras
    import tensorflow as tf

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "devices": [d.name for d in tf.config.list_logical_devices()],
    }


class JsonLinesLogger:
    """Appends one JSON object per call to a file (and optionally stdout)."""

    def __init__(self, path=None, echo=False):
        self.path = path
        self.echo = echo

    def log(self, **record):
        record.setdefault("time", time.time())
        line = json.dumps(record, sort_keys=True, default=str)
        if self.path:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        if self.echo:
            print(line, flush=True)
        return record
