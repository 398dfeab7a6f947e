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


def table_number(value):
    """A float for a benchmark table: 3 significant digits, never an
    exponent (`:.3g` wrote 1,058 images/s as "1.06e+03")."""
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.3g}"
