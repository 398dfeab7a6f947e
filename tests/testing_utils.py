"""Keras 3 layer-contract checks, in the shape of keras-hub's test helpers."""

import contextlib
import inspect
import json

import keras
import numpy as np

from tests.conftest import TEST_XLA_FLAGS

# A binary under the Keras JAX backend, as the tests start it; XLA compiles
# as in every test process (tests/conftest.py TEST_XLA_FLAGS).
JAX_ENV = {"KERAS_BACKEND": "jax", "XLA_FLAGS": TEST_XLA_FLAGS}


def two_replica_strategy():
    """A `tf.distribute.MirroredStrategy` over the two logical CPU devices
    the test processes start with (tests/conftest.py)."""
    import tensorflow as tf

    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert len(devices) >= 2, (
        f"two logical CPU devices expected (tests/conftest.py), got {devices}"
    )
    return tf.distribute.MirroredStrategy(devices[:2])


def serving_model(num_classes=3, image_size=32, seed=0):
    """The smallest model `assemble_tf.export` serves: a convolution, the
    `head_pool` it takes features from and a `head_dense` classifier. For
    tests of the export's mechanics (temporary folders, races, signature
    errors), which do not depend on the network: exported in ~1 s, where
    a tiny ResNet-50 takes ~6 s."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="stem")(
        inputs
    )
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    logits = keras.layers.Dense(num_classes, name="head_dense")(x)
    return keras.Model(inputs, logits, name="serving_model")


def write_export(model, path, preprocessing_type, class_names=None):
    """Writes the SavedModel `export_saved_model` would write for `model`,
    without its verification (two loaders, about 60 % of an export's
    time): for tests that read an export (warm starts, teachers). The
    files are the same; tests/export verifies what it writes."""
    from assemble_tf.export import saved_model

    module = saved_model.ServingModule(
        model, preprocessing_type, class_names=class_names
    )
    saved_model.save_module(module, str(path))
    return str(path)


def run_serialization_test(layer):
    """get_config holds exactly the constructor args and round-trips."""
    config = layer.get_config()
    base = set(inspect.signature(keras.layers.Layer.__init__).parameters)
    own = set(inspect.signature(type(layer).__init__).parameters) - {
        "self",
        "kwargs",
    }
    extra = set(config) - own - base - {"name", "dtype", "trainable"}
    assert not extra, f"get_config keys that are not __init__ args: {extra}"
    missing = own - set(config)
    assert not missing, f"__init__ args missing from get_config: {missing}"
    clone = type(layer).from_config(config)
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(
        config, sort_keys=True
    )
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(revived) is type(layer)
    assert revived.get_config() == config


def run_precision_test(layer_fn, inputs, training=False):
    """Under mixed_float16: float16 outputs, float32 variables."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = layer_fn()
        out = layer(inputs, training=training)
        outs = out if isinstance(out, (list, tuple)) else [out]
        for o in outs:
            assert keras.backend.standardize_dtype(o.dtype) == "float16"
        for v in layer.weights:
            assert v.dtype == "float32", v.path
        return layer
    finally:
        keras.config.set_dtype_policy(previous)


def random_images(shape, seed=0, low=-1.0, high=1.0):
    return (
        np.random.default_rng(seed).uniform(low, high, shape).astype("float32")
    )


def jpeg_bytes(array, quality=95):
    """Encodes a uint8 HxWx3 array as JPEG bytes with PIL."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(array, np.uint8)).save(
        buf, format="JPEG", quality=quality
    )
    return buf.getvalue()


def smooth_image(height, width, seed=0):
    """A smooth random uint8 colour image (compresses like a photo)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height)[:, None, None]
    x = np.linspace(0, 1, width)[None, :, None]
    a, b, c = rng.uniform(0, 1, (3, 1, 1, 3))
    img = 255 * (0.5 + 0.25 * np.sin(6 * a * y + 5 * b * x + 3 * c))
    return np.clip(img, 0, 255).astype(np.uint8)


def write_records(path, examples):
    """Writes `tf.train.Example`s to one TFRecord file."""
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for example in examples:
            writer.write(example.SerializeToString())


def run_command(args, cwd=None, timeout=600, env=None, unset=()):
    """Runs a command as a user would (CPU only); returns CompletedProcess.

    `cwd` defaults to the repository root; `env` adds variables and `unset`
    removes some (e.g. PYTHONPATH, to use the installed package).
    """
    import os
    import subprocess

    from tests.conftest import REPO

    full_env = dict(
        os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""
    )
    full_env.update(env or {})
    for name in unset:
        full_env.pop(name, None)
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_binary(module, *args, cwd=None, timeout=600, env=None, unset=()):
    """`python -m module args...` with this interpreter."""
    import sys

    return run_command(
        [sys.executable, "-m", module, *args], cwd, timeout, env, unset
    )


@contextlib.contextmanager
def tensorflow_logs_to(caplog):
    """Sends TensorFlow's Python log (which does not propagate to the root
    logger) to pytest's `caplog` inside the block."""
    import logging

    logger = logging.getLogger("tensorflow")
    logger.addHandler(caplog.handler)
    try:
        yield
    finally:
        logger.removeHandler(caplog.handler)


@contextlib.contextmanager
def raises_flag_error(match):
    """Like `pytest.raises(ValueError, match=match)`, matched against the
    message a binary prints: an `OptionError` (which names a config field
    or option) as its `--flag` form."""
    import re

    import pytest

    from official.utils.misc.validation import OptionError

    with pytest.raises(ValueError) as info:
        yield info
    error = info.value
    text = error.as_flag() if isinstance(error, OptionError) else str(error)
    assert re.search(match, text), f"{match!r} not in {text!r}"


def run_main(module, *args):
    """`python -m module args...` in this process: the binary's
    `define_flags()`, the binaries' flag parsing and error handling
    (`official.utils.flags.core`), then its `main`. Saves the TensorFlow
    import and start-up of a subprocess (5 s or more each). Every binary's
    real entry point starts as a process in
    tests/tools/test_help_and_logs.py (`--help`, `--helpfull`); start one
    with `run_binary` only where the process is the point: start-up logs,
    signals, exit codes of absl's own parsing, a fresh interpreter, another
    backend.

    The flags the binary defines are removed afterwards, so binaries that
    share flag names run one after another in one process.

    Returns:
        a `subprocess.CompletedProcess` (returncode, stdout, stderr).
    """
    import contextlib
    import importlib
    import io
    import subprocess

    from absl import flags

    from official.utils.flags import core as flags_core

    binary = importlib.import_module(module)
    before = set(flags.FLAGS)
    policy = _global_dtype_policy()
    out, err, code = io.StringIO(), io.StringIO(), 0
    argv = [module, *map(str, args)]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            binary.define_flags()
            try:
                rest = flags_core.parse_flags(argv)
                main = flags_core.checked_main(binary.main)
                result = flags_core.clean_errors(main)(rest)
                code = result if isinstance(result, int) else 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
    finally:
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)
    # The tests that follow in this process train at the global policy.
    assert _global_dtype_policy() == policy, (
        f"{module} left the global dtype policy at "
        f"{_global_dtype_policy()} (was {policy})"
    )
    return subprocess.CompletedProcess(
        argv, code, out.getvalue(), err.getvalue()
    )


def error_line(result, code=2):
    """The last stderr line of a binary's `result` (`run_main`,
    `run_binary`), after asserting it exited with `code` (2: a bad flag or
    input, one `ERROR:` line)."""
    assert result.returncode == code, result.stderr[-3000:]
    return result.stderr.strip().splitlines()[-1]


def _global_dtype_policy():
    import sys

    keras = sys.modules.get("keras")
    return keras.config.dtype_policy().name if keras else None


def kill_binary_when(
    path, module, *args, env=None, timeout=300, signal_number=None
):
    """Starts `python -m module args...` and signals it as soon as `path`
    exists (a checkpoint). SIGKILL by default: the `kill -9` a preempted
    job gets; SIGINT is Ctrl-C.

    Returns:
        (whether `path` appeared before `timeout` s, the exit code, the
        process's stderr).
    """
    import os
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    from tests.conftest import REPO

    full_env = dict(
        os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""
    )
    full_env.update(env or {})
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *map(str, args)],
            cwd=REPO,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        deadline = time.time() + timeout
        while not os.path.exists(path) and time.time() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        proc.send_signal(signal_number or signal.SIGKILL)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stderr.seek(0)
        return os.path.exists(path), proc.returncode, stderr.read()


def saved_model_cli_run(export_dir, signature, inputs, outdir, cwd):
    """`saved_model_cli run` (the session loader TF Serving uses) on one
    signature; `inputs` as the CLI takes them, e.g. "images=x.npy"."""
    return run_command(
        [
            venv_script("saved_model_cli"),
            *_saved_model_cli_run_args(export_dir, signature, inputs, outdir),
        ],
        cwd=cwd,
    )


# saved_model_cli's console script is `sys.exit(main())` of this module;
# this runs that main once per command line, in one process.
_SAVED_MODEL_CLI_COMMANDS = """
import json, sys
from tensorflow.python.tools import saved_model_cli
for argv in json.loads(sys.argv[1]):
    sys.argv = ["saved_model_cli", *argv]
    try:
        saved_model_cli.main()
    except SystemExit as exit:
        if exit.code:
            raise
"""


def saved_model_cli_runs(export_dir, runs, cwd, show=False):
    """`saved_model_cli run` on several signatures in one fresh process
    (one TensorFlow start-up): saved_model_cli's own `main` per command
    line, as its console script calls it. `runs`: (signature, inputs,
    outdir) triples, as for `saved_model_cli_run`; `show`: first
    `saved_model_cli show --all` (its listing on stdout)."""
    import json
    import sys

    commands = [["show", "--dir", str(export_dir), "--all"]] if show else []
    commands += [_saved_model_cli_run_args(export_dir, *run) for run in runs]
    return run_command(
        [sys.executable, "-c", _SAVED_MODEL_CLI_COMMANDS, json.dumps(commands)],
        cwd=cwd,
    )


def _saved_model_cli_run_args(export_dir, signature, inputs, outdir):
    return [
        "run",
        "--dir",
        str(export_dir),
        "--tag_set",
        "serve",
        "--signature_def",
        signature,
        "--inputs",
        inputs,
        "--outdir",
        str(outdir),
    ]


def venv_script(name):
    """Path of a console script (e.g. saved_model_cli) of this interpreter."""
    import os
    import sys

    return os.path.join(os.path.dirname(sys.executable), name)


def randomize_bn(model, seed=0):
    """Non-trivial BN parameters and statistics (zero-gamma models
    otherwise output constant logits)."""
    import keras

    rng = np.random.default_rng(seed)
    count = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, g.shape),
                    rng.normal(0, 0.1, b.shape),
                    rng.normal(0, 0.1, m.shape),
                    rng.uniform(0.5, 1.5, v.shape),
                ]
            )
            count += 1
    return count


def run_layer_test(
    *,
    layer_fn,
    input_data,
    expected_output_shape,
    expected_num_trainable_weights,
    expected_num_non_trainable_weights,
    expected_output_data=None,
    training=False,
):
    """The Keras layer contract in one call, after keras-hub's
    `TestCase.run_layer_test`: output shape, weight counts, serialization
    (`run_serialization_test`), mixed precision (`run_precision_test`) and
    one training step (finite gradients reach every trainable weight, or
    the input when there is none, and an SGD step changes the weights).

    Keyword arguments only, as keras-hub's.

    Args:
        layer_fn: () -> a new layer.
        input_data: a numpy array or a list of them.
        expected_output_shape: the output's shape (a tuple).
        expected_num_trainable_weights, expected_num_non_trainable_weights:
            counts of weight variables (not of scalars).
        expected_output_data: the output's values (compared to 1e-6), or
            None.
        training: call the layer in training mode for the shape and
            precision checks (the training step always does).
    """
    import keras
    import tensorflow as tf

    inputs = input_data
    layer = layer_fn()
    out = layer(inputs, training=training)
    assert tuple(out.shape) == tuple(expected_output_shape), out.shape
    if expected_output_data is not None:
        np.testing.assert_allclose(
            np.asarray(out), expected_output_data, rtol=1e-6, atol=1e-6
        )
    trainable, frozen = layer.trainable_weights, layer.non_trainable_weights
    assert len(trainable) == expected_num_trainable_weights, [
        w.path for w in trainable
    ]
    assert len(frozen) == expected_num_non_trainable_weights, [
        w.path for w in frozen
    ]
    run_serialization_test(layer_fn())
    run_precision_test(layer_fn, inputs, training=training)

    layer = layer_fn()
    xs = [
        tf.constant(x)
        for x in (inputs if isinstance(inputs, (list, tuple)) else [inputs])
    ]
    layer(xs if isinstance(inputs, (list, tuple)) else xs[0], training=True)
    with tf.GradientTape() as tape:
        tape.watch(xs)
        y = layer(
            xs if isinstance(inputs, (list, tuple)) else xs[0], training=True
        )
        loss = tf.reduce_mean(tf.square(tf.cast(y, tf.float32)))
    weights = layer.trainable_weights
    grads = tape.gradient(loss, [w.value for w in weights] + xs)
    for g in grads:
        assert g is not None and bool(tf.reduce_all(tf.math.is_finite(g)))
    reached = [float(tf.reduce_max(tf.abs(g))) > 0 for g in grads]
    if weights:  # every weight learns
        assert all(reached[: len(weights)]), [
            w.path for w, r in zip(weights, reached, strict=False) if not r
        ]
    assert any(reached)
    if weights:
        before = [w.numpy().copy() for w in weights]
        keras.optimizers.SGD(1.0).apply(grads[: len(weights)], weights)
        assert any(
            not np.array_equal(b, w.numpy())
            for b, w in zip(before, weights, strict=True)
        )
    return layer


def run_model_saving_test(*, model, input_data, path):
    """Saves `model` as a `.keras` file at `path`, reloads it and checks
    that the reloaded model gives the same outputs (a tensor or a dict of
    them), after keras-hub's `run_model_saving_test`."""
    import keras

    model.save(path)
    restored = keras.saving.load_model(path)
    want = model.predict(input_data, verbose=0)
    got = restored.predict(input_data, verbose=0)
    if isinstance(want, dict):
        assert sorted(got) == sorted(want)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    else:
        np.testing.assert_array_equal(got, want)
    return restored


def run_backbone_test(*, backbone, input_data, expected_output_shapes):
    """A multi-scale backbone (`assemble_tf.models.build_backbone`): its
    dict of outputs has exactly `expected_output_shapes` ({level: shape}),
    finite values, and one weight per layer variable (no duplicates)."""
    out = backbone.predict(input_data, verbose=0)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        k: tuple(v) for k, v in expected_output_shapes.items()
    }
    for level, value in out.items():
        assert np.isfinite(value).all(), level
    paths = [w.path for w in backbone.weights]
    assert len(paths) == len(set(paths))
    return out
