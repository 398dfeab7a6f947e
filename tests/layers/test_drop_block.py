import numpy as np
import pytest
import tensorflow as tf

from assemble_tf.layers import DropBlock2D
from tests import testing_utils


def expected_kept_fraction(h, w, block_size, keep_prob, gamma_scale=1.0):
    """Exact E[kept] of the seed-and-grow process, position by position."""
    bh, bw = min(block_size, h), min(block_size, w)
    sh, sw = h - bh + 1, w - bw + 1
    gamma = gamma_scale * (1 - keep_prob) / (bh * bw) * (h * w) / (sh * sw)

    def covers(size, block, seeds):
        return np.array(
            [min(i, seeds - 1) - max(0, i - block + 1) + 1 for i in range(size)]
        )

    n = np.outer(covers(h, bh, sh), covers(w, bw, sw))
    return float(np.mean((1 - gamma) ** n))


def test_identity_at_inference_and_at_keep_prob_one():
    x = testing_utils.random_images((4, 8, 8, 3))
    layer = DropBlock2D(keep_prob=0.5, block_size=3)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    layer.set_keep_prob(1.0)
    np.testing.assert_array_equal(layer(x, training=True).numpy(), x)
    layer.set_keep_prob(0.5)
    assert not np.array_equal(layer(x, training=True).numpy(), x)


@pytest.mark.parametrize(
    "h,w,block,keep",
    [(16, 16, 5, 0.8), (14, 14, 7, 0.9), (7, 7, 7, 0.9), (5, 12, 7, 0.7)],
)
def test_dropped_fraction_within_bounds(h, w, block, keep):
    layer = DropBlock2D(keep_prob=keep, block_size=block, seed=7)
    x = np.ones((64, h, w, 64), "float32")
    layer.build(x.shape)
    kept = np.mean([layer.drop_mask(x).numpy().mean() for _ in range(4)])
    # 4 x 64 x 64 masks; the empirical mean sits well within 0.01.
    assert kept == pytest.approx(
        expected_kept_fraction(h, w, block, keep), abs=0.01
    )


def test_output_is_rescaled_mask():
    layer = DropBlock2D(keep_prob=0.7, block_size=3, seed=3)
    x = np.ones((8, 10, 10, 4), "float32")
    out = layer(x, training=True).numpy()
    values = np.unique(np.round(out, 5))
    assert len(values) == 2 and values[0] == 0.0
    kept = (out > 0).mean()
    assert values[1] == pytest.approx(1.0 / kept, rel=1e-4)


def test_blocks_are_square_regions():
    layer = DropBlock2D(keep_prob=0.98, block_size=3, seed=11)
    x = np.ones((256, 9, 9, 1), "float32")
    layer.build(x.shape)
    masks = layer.drop_mask(x).numpy()[..., 0]
    single = [m for m in masks if (m == 0).sum() == 9]
    assert single, "expected maps with exactly one dropped block"
    for m in single:
        rows, cols = np.nonzero(m == 0)
        assert np.ptp(rows) == 2 and np.ptp(cols) == 2  # one 3x3 square


def test_map_smaller_than_block_drops_whole_channels():
    layer = DropBlock2D(keep_prob=0.5, block_size=7, seed=5)
    x = np.ones((32, 3, 3, 16), "float32")
    layer.build(x.shape)
    mask = layer.drop_mask(x).numpy()
    per_channel = mask.reshape(32, 9, 16)
    assert np.all(per_channel.min(axis=1) == per_channel.max(axis=1))
    assert 0.3 < mask.mean() < 0.7


def test_shared_mask_is_one_per_batch():
    x = np.ones((6, 12, 12, 4), "float32")
    shared = DropBlock2D(keep_prob=0.7, block_size=3, shared_mask=True, seed=1)
    shared.build(x.shape)
    m = shared.drop_mask(x).numpy()
    assert m.shape == (1, 12, 12, 4)
    per_example = DropBlock2D(keep_prob=0.7, block_size=3, seed=1)
    per_example.build(x.shape)
    m = per_example.drop_mask(x).numpy()
    assert m.shape == (6, 12, 12, 4)
    assert not all(np.array_equal(m[0], m[i]) for i in range(1, 6))


def test_keep_prob_variable_is_read_inside_tf_function():
    layer = DropBlock2D(keep_prob=1.0, block_size=3, seed=2)
    x = np.ones((4, 8, 8, 8), "float32")
    fn = tf.function(lambda t: layer(t, training=True))
    np.testing.assert_array_equal(fn(x).numpy(), x)
    layer.set_keep_prob(0.6)  # no retrace needed
    assert (fn(x).numpy() == 0).mean() > 0.1
    assert layer.count_params() == 0 and not layer.weights


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


def test_other_backends_build_for_inference_only(monkeypatch):
    import keras

    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    layer = DropBlock2D(keep_prob=0.9, block_size=3, name="db")
    x = testing_utils.random_images((2, 8, 8, 3))
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    assert layer.keep_prob_variable is None
    with pytest.raises(NotImplementedError, match="db.*KERAS_BACKEND='jax'"):
        layer(x, training=True)
    with pytest.raises(NotImplementedError, match="TensorFlow backend"):
        layer.set_keep_prob(0.5)
