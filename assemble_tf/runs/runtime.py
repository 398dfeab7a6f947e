"""Runtime set-up of a run: backend, devices, precision, seeds, determinism.

Under TensorFlow (the default Keras backend) a run gets a
`tf.distribute.Strategy`; under `KERAS_BACKEND=jax` a `JaxRuntime`: the
local devices and, with `distribution_strategy` "mirrored" on more than one,
a `keras.distribution.DataParallel` that replicates the variables and a
sharding that splits every batch along its first axis.
"""

import contextlib
import dataclasses
import functools

import keras

from official.utils.misc.validation import OptionError

# The JAX alternative to each TensorFlow-only strategy.
_JAX_ALTERNATIVES = {
    "tpu": (
        "under JAX a TPU VM's chips are local devices: install the "
        "jax[tpu] build and set {field}=mirrored "
        "(keras.distribution.DataParallel over all local devices), or use "
        "KERAS_BACKEND=tensorflow for TPUStrategy."
    ),
    "multi_worker_mirrored": (
        "under JAX, scale out by calling jax.distributed.initialize() on "
        "every host and setting {field}=mirrored "
        "(docs/training.md), or use KERAS_BACKEND=tensorflow for "
        "MultiWorkerMirroredStrategy."
    ),
}


@dataclasses.dataclass
class JaxRuntime:
    """The devices of a JAX run and how a global batch is laid on them.

    Attributes:
        devices: the `jax.Device`s the step runs on.
        batch_sharding: a `jax.sharding.NamedSharding` splitting the batch
            axis over `devices`, or None on one device.
    """

    devices: list
    batch_sharding: object = None

    @property
    def num_replicas_in_sync(self):
        return len(self.devices)


def backend():
    return keras.backend.backend()


def check_backend_options(config):
    """Rejects options the current Keras backend cannot run.

    Raises:
        ValueError: an unsupported backend; `OptionError` naming the
            option and the alternative.
    """
    if backend() == "tensorflow":
        t = config.train
        if t.jit_compile and t.deterministic:
            raise OptionError(
                "jit_compile",
                "{field} with {deterministic}: TensorFlow's op determinism "
                "has no XLA kernel for the MaxPool gradient of every ResNet "
                "stem (on the CPU too); drop one of the two.",
                ["deterministic"],
            )
        return
    name = config.runtime.distribution_strategy
    if backend() != "jax":
        raise ValueError(
            f"KERAS_BACKEND={backend()!r}: the training loop runs under "
            "tensorflow or jax; set KERAS_BACKEND to one of them."
        )
    if name in _JAX_ALTERNATIVES:
        raise OptionError(
            "distribution_strategy",
            "{field}={name} is TensorFlow-only: " + _JAX_ALTERNATIVES[name],
            name=name,
        )
    refuse_jit_compile_under_jax(config.train.jit_compile)


def refuse_jit_compile_under_jax(jit_compile):
    """Raises `OptionError` (field `jit_compile`) for `jit_compile` under
    the JAX backend: accepted and ignored, it then blocked a resume
    without it (and tools.benchmark_training refused it only after
    measuring the matmul peak)."""
    if jit_compile and backend() == "jax":
        raise OptionError(
            "jit_compile",
            "{field} is TensorFlow's switch: under JAX every training step "
            "is XLA-compiled already (jax.jit); leave {field} out.",
        )


def _jax_runtime(config):
    import jax

    _keep_tensorflow_off_gpus()
    rt = config.runtime
    devices = jax.local_devices()
    if rt.num_gpus == 0:
        raise OptionError(
            "num_gpus",
            "{field}=0 (the CPU) is TensorFlow's convention; under JAX, "
            "set JAX_PLATFORMS=cpu to train on the CPU and leave {field} "
            "out.",
        )
    if rt.num_gpus and devices[0].platform == "cpu":
        # Before: counted the CPU devices and trained on them in silence
        # (a GPU machine whose jax is the pinned CPU build).
        raise OptionError(
            "num_gpus",
            "{field}={value} asks for GPUs and JAX sees none (the CPU "
            "build of jax, or no visible GPU): install the CUDA build "
            '(pip install "jax[cuda13]", docs/training.md), or leave '
            "{field} out to train on the CPU.",
            value=rt.num_gpus,
        )
    if rt.num_gpus is not None and rt.num_gpus > len(devices):
        raise OptionError(
            "num_gpus",
            "{field}={value} but JAX sees only {count} local device(s) "
            "({platform}).",
            value=rt.num_gpus,
            count=len(devices),
            platform=devices[0].platform,
        )
    if rt.distribution_strategy != "mirrored":
        keras.distribution.set_distribution(None)
        return JaxRuntime(devices[:1])
    devices = devices[: rt.num_gpus or len(devices)]
    if len(devices) == 1:
        keras.distribution.set_distribution(None)
        return JaxRuntime(devices)
    batch = config.train.batch_size
    if batch % len(devices):
        raise OptionError(
            "batch_size",
            "{field}={batch} is not divisible by the {count} devices of "
            "{distribution_strategy}=mirrored: use a multiple of {count}, "
            "or fewer devices ({num_gpus}).",
            ["distribution_strategy", "num_gpus"],
            batch=batch,
            count=len(devices),
        )
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=devices)
    )
    mesh = jax.sharding.Mesh(devices, ("batch",))
    sharding = jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec("batch")
    )
    return JaxRuntime(devices, sharding)


def check_eval_batch(field, batch_size, replicas):
    """Raises `OptionError` (`field`) where a TensorFlow strategy's
    `replicas` do not divide the evaluation's global `batch_size` (JAX
    evaluates on one device). Before: TensorFlow's "The global_batch_size
    7 is not divisible by num_replicas_in_sync 2", naming no flag, after
    the first epoch had trained."""
    if batch_size % replicas:
        raise OptionError(
            field,
            "{field}={value} is not divisible by the {replicas} replicas: "
            "use a multiple of {replicas}.",
            value=batch_size,
            replicas=replicas,
        )


def setup_runtime(config):
    """Precision policy, seeds and determinism; returns the strategy
    (TensorFlow) or the `JaxRuntime` (JAX).

    Raises:
        ValueError: an option the backend cannot run, naming the flag.
    """
    check_backend_options(config)
    t, rt = config.train, config.runtime
    if backend() == "jax":
        runtime = _jax_runtime(config)
        keras.config.set_dtype_policy(t.mixed_precision)
        keras.utils.set_random_seed(t.seed)
        return runtime
    import tensorflow as tf

    from official.utils.misc import distribution_utils

    # The strategy first: multi-worker collectives must be configured
    # before the TF runtime starts.
    strategy = distribution_utils.get_distribution_strategy(
        rt.distribution_strategy, rt.num_gpus, rt.tpu
    )
    keras.config.set_dtype_policy(t.mixed_precision)
    keras.utils.set_random_seed(t.seed)
    if t.deterministic:
        tf.config.experimental.enable_op_determinism()
    return strategy


def _keep_tensorflow_off_gpus():
    """Under JAX, TensorFlow feeds the data on the host: its GPUs hidden
    before its first op (`startup.keep_tensorflow_off_gpus`; the binaries
    did so at TensorFlow's import), or a warning where it set them up."""
    try:
        import tensorflow as tf
    except ImportError:  # JAX alone (the benchmark's GPU machine)
        return
    import logging

    from official.utils.logs import startup

    if not startup.keep_tensorflow_off_gpus(tf):
        logging.getLogger(__name__).warning(
            "TensorFlow set up its GPUs before this JAX run and may hold "
            "most of their memory, which JAX then lacks: call "
            'tf.config.set_visible_devices([], "GPU") before TensorFlow\'s '
            "first op (the binaries do)."
        )


@contextlib.contextmanager
def kept_dtype_policy(name=None):
    """Keras' global dtype policy is `name` inside the block (unchanged if
    None) and put back at its end: models built inside keep their own, and
    a notebook's next model is not built in a run's mixed precision."""
    previous = keras.config.dtype_policy()
    try:
        if name is not None:
            keras.config.set_dtype_policy(name)
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def keeps_dtype_policy(fn):
    """`fn` (a library entry point that calls `setup_runtime`) inside
    `kept_dtype_policy()`."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with kept_dtype_policy():
            return fn(*args, **kwargs)

    return wrapped
