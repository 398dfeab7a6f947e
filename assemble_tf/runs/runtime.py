"""Runtime set-up of a run: strategy, precision policy, seeds, determinism."""

import keras
import tensorflow as tf

from official.utils.misc import distribution_utils


def setup_runtime(config):
    """Precision policy, seeds and determinism; returns the strategy."""
    t, rt = config.train, config.runtime
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
