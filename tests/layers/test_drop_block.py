"""DropBlock under TensorFlow only: the keep-probability variable inside
`tf.function`, unknown spatial sizes, the layer contract (the statistics
run on every backend in tests/backends/test_drop_block.py)."""

import numpy as np
import pytest
import tensorflow as tf

from assemble_tf.layers import DropBlock2D
from tests import testing_utils


def test_keep_prob_variable_is_read_inside_tf_function():
    layer = DropBlock2D(keep_prob=1.0, block_size=3, seed=2)
    x = np.ones((4, 8, 8, 8), "float32")
    fn = tf.function(lambda t: layer(t, training=True))
    np.testing.assert_array_equal(fn(x).numpy(), x)
    layer.set_keep_prob(0.6)  # no retrace needed
    assert (fn(x).numpy() == 0).mean() > 0.1
    assert layer.count_params() == 0 and not layer.weights


def test_a_keep_prob_set_before_the_first_call_is_kept():
    """Before: `build` made the variable from the constructor's value, and
    the layer dropped nothing."""
    layer = DropBlock2D(keep_prob=1.0, block_size=3, seed=2)
    layer.set_keep_prob(0.5)
    out = layer(np.ones((4, 16, 16, 8), "float32"), training=True)
    assert float(layer.current_keep_prob()) == 0.5
    assert 0.3 < float((out.numpy() == 0).mean()) < 0.7


def test_dynamic_shapes():
    layer = DropBlock2D(keep_prob=0.8, block_size=7, seed=2)
    fn = tf.function(
        lambda t: layer(t, training=True),
        input_signature=[tf.TensorSpec((None, None, None, 4))],
    )
    for shape in [(2, 5, 9, 4), (3, 16, 16, 4)]:
        out = fn(tf.ones(shape))
        assert out.shape == shape


def test_validation_and_contract():
    with pytest.raises(ValueError, match="keep_prob=1.5"):
        DropBlock2D(keep_prob=1.5)
    with pytest.raises(ValueError, match="block_size=0"):
        DropBlock2D(block_size=0)
    layer = DropBlock2D(keep_prob=0.9)
    layer.build((None, 4, 4, 1))
    with pytest.raises(ValueError, match="keep_prob=0.0"):
        layer.set_keep_prob(0.0)
    testing_utils.run_serialization_test(
        DropBlock2D(0.9, 5, 0.25, True, 3, name="db")
    )
