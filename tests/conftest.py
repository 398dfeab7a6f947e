"""Test set-up: CPU only, quiet TF, fixed seeds, clean Keras state."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# XLA in the tests (TensorFlow's --jit_compile and XLA serving paths, every
# JAX program) compiles for CPU fast rather than well: LLVM at -O0 and
# XLA's loop emitters instead of its MLIR fusion emitters. The same HLO,
# scheduled the same way, in about half the compile time (the tiny
# Assemble-R50 XLA train step 18 -> 9 s, the tiny JAX run 30 -> 20 s CPU);
# float32 results within rounding. The processes the tests start inherit
# it; benchmarks and users compile at XLA's defaults. Set before
# TensorFlow or JAX reads XLA_FLAGS; flags already there win.
TEST_XLA_FLAGS = (
    "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
)
_given = os.environ.get("XLA_FLAGS", "")
os.environ["XLA_FLAGS"] = " ".join(
    [_given]
    + [f for f in TEST_XLA_FLAGS.split() if f.split("=")[0] not in _given]
).strip()

import pytest  # noqa: E402

from official.utils.logs import startup  # noqa: E402
from official.utils.misc import heap  # noqa: E402

# As the binaries: no start-up block, whichever process imports TensorFlow
# first (nothing is imported here).
startup.quiet_tensorflow_startup()


def pytest_configure(config):
    # The controller of `pytest -n N` only hands tests to its workers: it
    # skips the framework (5 s of TensorFlow import before any worker
    # starts, in each of make test's two passes).
    if getattr(config.option, "numprocesses", None) and not hasattr(
        config, "workerinput"
    ):
        return
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        # Two logical CPU devices (before TensorFlow's runtime starts): the
        # two-replica MirroredStrategy tests run in process instead of in
        # a TensorFlow process of their own each. Nothing else sees them:
        # default placement is /cpu:0, and our "mirrored" strategy on a
        # machine without GPUs is /cpu:0 alone
        # (official/utils/misc/distribution_utils.py).
        import tensorflow as tf

        tf.config.set_logical_device_configuration(
            tf.config.list_physical_devices("CPU")[0],
            [tf.config.LogicalDeviceConfiguration()] * 2,
        )
    import keras  # noqa: F401


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "tests", "data")


@pytest.fixture(scope="session", autouse=True)
def _temporary_files_in_the_run_folder(tmp_path_factory):
    """Temporary files of this process and the processes the tests start
    go to the run's temporary folder, which pytest removes with the runs
    it no longer keeps: TensorFlow Datasets leaves an empty `tmp*tfds`
    folder in the system's temporary folder for each builder it makes
    (about 35 a run), and a killed process its autograph files."""
    import tempfile

    folder = tmp_path_factory.getbasetemp() / "tmp"
    folder.mkdir(exist_ok=True)
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = str(folder)


@pytest.fixture(scope="session", autouse=True)
def _jax_compilation_cache(tmp_path_factory):
    """One JAX compilation cache per test run, in its temporary folder
    (pytest keeps the last three runs'), shared by the xdist workers of the
    JAX pass and every JAX process the tests start: a JAX training process
    compiles its step once per run, not once per process (76 s -> 24 s for
    the tiny JAX runs). Tracing, and so all of our code, still runs in
    every process. A cache the environment names wins."""
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # pytest-N/, above each worker's popen-gwK/
    cache = str(base / "jax_cache")
    # The processes the tests start inherit them.
    os.environ["JAX_COMPILATION_CACHE_DIR"] = cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    if "jax" in sys.modules:  # this process read the environment already
        import jax

        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


@pytest.fixture(autouse=True)
def _clean_keras_state():
    import keras

    keras.utils.set_random_seed(1234)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")
    keras.backend.clear_session(free_memory=False)  # collected below
    # A binary run in process with --deterministic turns on TensorFlow's
    # process-wide op determinism, which XLA cannot compile a MaxPool
    # gradient under: the next test starts without it.
    if "tensorflow" in sys.modules:
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()
    # A Ctrl-C or SIGTERM a test sent stays on record in the process
    # (`interrupts.check` raises it again): the next test starts without.
    from official.utils.misc import interrupts

    interrupts.reset()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    yield
    # pytest has run the teardowns and dropped the test's fixture values:
    # collect its garbage, then freeze what survives (module and session
    # fixtures, caches), so that the next test's collections walk only its
    # own objects. The survivors piled up otherwise, and each teardown's
    # collection took 0.7 s by the end of a worker's run (the suite: 98 ->
    # 16 s of teardown, 479 -> 414 s). What a module or session fixture
    # holds in reference cycles (a model, a loaded SavedModel) stays
    # allocated once its module ends, until the worker exits: about 20 such
    # fixtures of tiny models in the suite.
    heap.freeze()


@pytest.fixture
def mixed_precision():
    import keras

    keras.config.set_dtype_policy("mixed_float16")
    yield
    keras.config.set_dtype_policy("float32")


# The slowest files first (processes, XLA compiles, training): the two
# xdist workers start on them together and the many small tests even out
# the end, instead of one worker finishing a long test alone.
_SLOWEST_FIRST = (
    "tests/backends/test_trainer_loop.py",
    "tests/training/test_jax_runs.py",
    "tests/training/test_benchmark_training.py",
    "tests/training/test_jit_compile.py",
    "tests/training/test_trainer.py",
    "tests/export/test_saved_model.py",
    "tests/training/test_transfer_recipes.py",
    "tests/training/test_first_run.py",
    "tests/training/test_finetune.py",
    "tests/training/test_teacher_logits.py",
    "tests/tools/test_binaries.py",
)


def pytest_collection_finish(session):
    # TensorFlow, Keras and the test modules are imported: keep the cyclic
    # collector off them (keras.backend.clear_session's gc.collect after
    # every test: 0.18 s -> 5 ms).
    heap.freeze()


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(_SLOWEST_FIRST)}
    last = len(rank)
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], last))
