"""Run information to put beside every benchmark figure."""

import platform
import sys


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
