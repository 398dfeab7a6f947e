"""Quiet TensorFlow start-up for the binaries (`-v 0` brings it back).

Importing TensorFlow 2.21 prints its start-up block twice (two libraries
each initialise absl logging): oneDNN, "Could not find cuda drivers",
CPU-instruction notes, and on a machine without a GPU an `E0000 ... failed
call to cuInit` error at device set-up. `TF_CPP_MIN_LOG_LEVEL` does not
silence these (they are logged before absl's log is initialised). So the
first import of TensorFlow in a binary runs with file descriptor 2 captured;
afterwards the captured text is written back without the known start-up
lines. Everything else, warnings and errors included, comes through, and
later TensorFlow messages are not touched (TF_CPP_MIN_LOG_LEVEL=2 still
hides its C++ info and warning lines, as before).

Nothing here imports TensorFlow: the capture is a meta-path hook that waits
for the binary's own first `import tensorflow`, so its help stays instant.
"""

import os
import re
import sys
import tempfile

from official.utils.misc import import_hooks

# Lines of the start-up block (matched against each captured line).
STARTUP_NOISE = (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called",
    r"^I\d{4} [\d:. ]+\d+ \S+\] ",  # absl C++ INFO lines
    r"^To enable the following instructions: .* rebuild TensorFlow",
    r"failed call to cuInit",
    r"Could not find cuda drivers",
    r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"computation placer already registered",
    r"TF-TRT Warning: Could not find TensorRT",
    r"oneDNN custom operations are on",
    r"cpu_feature_guard",
)
_NOISE = re.compile("|".join(f"(?:{p})" for p in STARTUP_NOISE))


def requested_verbosity(argv):
    """The value of absl's verbosity flag (`-v N`, long or short form) in
    `argv`, or None.

    Read before flags are parsed (TensorFlow may be imported by then).
    """
    value = None
    for i, arg in enumerate(argv[1:], 1):
        for name in ("-v", "--v", "--verbosity", "-verbosity"):
            if arg == name and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(name + "="):
                value = arg.split("=", 1)[1]
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        levels = {"debug": 1, "info": 0, "warning": -1, "error": -2}
        return levels.get(value.lower())


def filter_startup_lines(text):
    """`text` without the start-up block's lines."""
    kept = [
        line
        for line in text.splitlines(keepends=True)
        if not _NOISE.search(line)
    ]
    return "".join(kept)


def _set_up_devices(tf_module):
    if os.environ.get("KERAS_BACKEND") == "jax":
        keep_tensorflow_off_gpus(tf_module)
    # Device set-up prints the cuInit error: do it now, captured.
    tf_module.config.list_physical_devices()


def keep_tensorflow_off_gpus(tf_module):
    """Hides the GPUs from TensorFlow, before its devices are set up.

    Under the Keras JAX backend TensorFlow only feeds the data (tf.data on
    the host's CPUs), but a TensorFlow built with CUDA
    (`tensorflow[and-cuda]`) maps nearly all of each GPU's memory at its
    first op, and JAX then runs out of it. The binaries call this right
    after TensorFlow's import when KERAS_BACKEND=jax, and the JAX runtime
    again (`assemble_tf.runs.runtime`).

    Returns:
        True when TensorFlow sees no GPU; False when its devices were set
        up before, with GPUs among them.
    """
    try:
        tf_module.config.set_visible_devices([], "GPU")
    except RuntimeError:  # "cannot be modified after being initialized"
        return not tf_module.config.get_visible_devices("GPU")
    return True


class _captured_stderr:
    """Redirects fd 2 to a temporary file; on exit restores it and writes
    back the filtered text."""

    def __enter__(self):
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        text = self._file.read().decode("utf-8", "replace")
        self._file.close()
        kept = filter_startup_lines(text)
        if kept:
            sys.stderr.write(kept)
            sys.stderr.flush()
        return False


def quiet_tensorflow_startup(argv=None):
    """Call before TensorFlow is imported (binaries, worker processes).

    With absl's verbosity flag at N >= 0 (`-v N`) in `argv` nothing is
    hidden.
    Returns True when the start-up block will be filtered.
    """
    argv = sys.argv if argv is None else argv
    verbosity = requested_verbosity(argv)
    if verbosity is not None and verbosity >= 0:
        # Nothing hidden; the GPUs still kept from TensorFlow under JAX.
        import_hooks.after_first_import("tensorflow", _set_up_devices)
        return False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return import_hooks.after_first_import(
        "tensorflow", _set_up_devices, wrap=_captured_stderr
    )
