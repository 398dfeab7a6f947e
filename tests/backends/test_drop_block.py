"""DropBlock on every Keras backend: the same expected drop rate, block
shape and rescaling under TensorFlow and JAX (`make test` runs this folder
under both)."""

import keras
import numpy as np
import pytest

from assemble_tf.layers import DropBlock2D
from assemble_tf.layers.drop_block import keep_prob_override
from tests import testing_utils


def np_(x):
    return keras.ops.convert_to_numpy(x)


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
    np.testing.assert_array_equal(np_(layer(x, training=False)), x)
    layer.set_keep_prob(1.0)
    np.testing.assert_array_equal(np_(layer(x, training=True)), x)
    layer.set_keep_prob(0.5)
    assert not np.array_equal(np_(layer(x, training=True)), x)


@pytest.mark.parametrize(
    "h,w,block,keep",
    [(16, 16, 5, 0.8), (14, 14, 7, 0.9), (7, 7, 7, 0.9), (5, 12, 7, 0.7)],
)
def test_dropped_fraction_within_bounds(h, w, block, keep):
    layer = DropBlock2D(keep_prob=keep, block_size=block, seed=7)
    x = np.ones((64, h, w, 64), "float32")
    layer.build(x.shape)
    kept = np.mean([np_(layer.drop_mask(x)).mean() for _ in range(4)])
    # 4 x 64 x 64 masks; the empirical mean sits well within 0.01.
    assert kept == pytest.approx(
        expected_kept_fraction(h, w, block, keep), abs=0.01
    )


def test_output_is_rescaled_mask():
    layer = DropBlock2D(keep_prob=0.7, block_size=3, seed=3)
    x = np.ones((8, 10, 10, 4), "float32")
    out = np_(layer(x, training=True))
    values = np.unique(np.round(out, 5))
    assert len(values) == 2 and values[0] == 0.0
    kept = (out > 0).mean()
    assert values[1] == pytest.approx(1.0 / kept, rel=1e-4)


def test_blocks_are_square_regions():
    layer = DropBlock2D(keep_prob=0.98, block_size=3, seed=11)
    x = np.ones((256, 9, 9, 1), "float32")
    layer.build(x.shape)
    masks = np_(layer.drop_mask(x))[..., 0]
    single = [m for m in masks if (m == 0).sum() == 9]
    assert single, "expected maps with exactly one dropped block"
    for m in single:
        rows, cols = np.nonzero(m == 0)
        assert np.ptp(rows) == 2 and np.ptp(cols) == 2  # one 3x3 square


def test_map_smaller_than_block_drops_whole_channels():
    layer = DropBlock2D(keep_prob=0.5, block_size=7, seed=5)
    x = np.ones((32, 3, 3, 16), "float32")
    layer.build(x.shape)
    mask = np_(layer.drop_mask(x))
    per_channel = mask.reshape(32, 9, 16)
    assert np.all(per_channel.min(axis=1) == per_channel.max(axis=1))
    assert 0.3 < mask.mean() < 0.7


def test_shared_mask_is_one_per_batch():
    x = np.ones((6, 12, 12, 4), "float32")
    shared = DropBlock2D(keep_prob=0.7, block_size=3, shared_mask=True, seed=1)
    shared.build(x.shape)
    m = np_(shared.drop_mask(x))
    assert m.shape == (1, 12, 12, 4)
    per_example = DropBlock2D(keep_prob=0.7, block_size=3, seed=1)
    per_example.build(x.shape)
    m = np_(per_example.drop_mask(x))
    assert m.shape == (6, 12, 12, 4)
    assert not all(np.array_equal(m[0], m[i]) for i in range(1, 6))


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.distribute replicas"
)
def test_each_tensorflow_replica_draws_its_own_masks():
    """Before: the generator's state, a mirrored variable, gave every
    replica the masks of the others; the fraction dropped stays."""
    import tensorflow as tf

    strategy = testing_utils.two_replica_strategy()
    x = tf.ones((2, 16, 16, 8))
    with strategy.scope():
        layer = DropBlock2D(keep_prob=0.7, block_size=3, seed=1)
        layer.build(x.shape)

    @tf.function(autograph=False)
    def masks():
        return strategy.experimental_local_results(
            strategy.run(lambda: layer.drop_mask(x))
        )

    first, second = (np_(m) for m in masks())
    assert not np.array_equal(first, second)
    again = np_(masks()[0])
    assert not np.array_equal(first, again)  # each call draws anew
    kept = np.mean([first.mean(), second.mean(), again.mean()])
    assert kept == pytest.approx(
        expected_kept_fraction(16, 16, 3, 0.7), abs=0.04
    )


def test_keep_prob_override_feeds_a_traced_schedule():
    """A stateless step passes the keep probability in: at 1 the layer is
    the identity, below 1 it drops, with no retrace between the two."""
    layer = DropBlock2D(keep_prob=1.0, block_size=3, seed=4)
    x = np.ones((4, 8, 8, 8), "float32")
    layer.build(x.shape)
    state = [v.value for v in layer.non_trainable_variables]

    def fn(keep, state):
        with keep_prob_override([layer], keep):
            out, new_state = layer.stateless_call([], state, x, training=True)
        return out, new_state

    if keras.backend.backend() == "jax":
        import jax

        fn = jax.jit(fn)
    one, state = fn(np.float32(1.0), state)
    np.testing.assert_array_equal(np_(one), x)
    dropped, state2 = fn(np.float32(0.6), state)
    assert (np_(dropped) == 0).mean() > 0.1
    # The random state advanced: the next mask differs.
    again, _ = fn(np.float32(0.6), state2)
    assert not np.array_equal(np_(again), np_(dropped))
    assert layer.current_keep_prob() == 1.0  # the override is gone


def test_a_new_keep_prob_reaches_keras_compiled_train_step():
    """Under JAX Keras' jitted step had traced the keep probability in as
    a constant: `set_dropblock_keep_prob` after the first
    `train_on_batch` changed nothing (the loss stayed exactly the same)."""
    from assemble_tf.layers import set_dropblock_keep_prob

    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 2)),
            DropBlock2D(keep_prob=1.0, block_size=3, seed=1),
            keras.layers.Flatten(),
            keras.layers.Dense(1, kernel_initializer="ones"),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    x = np.ones((4, 8, 8, 2), np.float32)
    y = np.zeros((4, 1), np.float32)
    kept = [float(model.train_on_batch(x, y)) for _ in range(2)]
    assert kept == [128.0**2] * 2  # all 128 inputs of 1 kept, no scaling
    assert set_dropblock_keep_prob(model, 0.3) == 1
    dropped = float(model.train_on_batch(x, y))
    assert dropped != kept[0]
    assert set_dropblock_keep_prob(model, 1.0) == 1
    assert float(model.train_on_batch(x, y)) == kept[0]
    # A layer's own setter first: the model-wide one still rebuilds the
    # step, which had traced 1.0 (before: it saw no change and kept it).
    model.layers[0].set_keep_prob(0.3)
    assert set_dropblock_keep_prob(model, 0.3) == 1
    assert float(model.train_on_batch(x, y)) != kept[0]
