import keras
import numpy as np
import pytest

from assemble_tf.layers import BigLittleMerge, GeMPooling2D, SqueezeExcite
from tests import testing_utils


def test_squeeze_excite_gates_channels():
    x = testing_utils.random_images((2, 5, 5, 32))
    layer = SqueezeExcite(ratio=16)
    out = layer(x).numpy()
    assert layer.count_params() == 2 * 32 * 2  # no bias, C/16 = 2
    gate = out / x
    # One gate in (0, 1) per example and channel, shared over H x W.
    np.testing.assert_allclose(gate, gate[:, :1, :1, :] + 0 * gate, rtol=1e-4)
    assert np.all((gate > 0) & (gate < 1))


def test_squeeze_excite_validation():
    # The layer contract of all three: tests/layers/test_layer_contract.py.
    with pytest.raises(ValueError, match="ratio=0"):
        SqueezeExcite(ratio=0)


def test_gem_matches_formula_and_limits():
    x = np.abs(testing_utils.random_images((2, 4, 3, 5))) + 0.1
    out = GeMPooling2D(p=3.0)(x).numpy()
    np.testing.assert_allclose(
        out, np.mean(x**3, axis=(1, 2)) ** (1 / 3), rtol=1e-5
    )
    np.testing.assert_allclose(
        GeMPooling2D(p=1.0)(x).numpy(), x.mean(axis=(1, 2)), rtol=1e-5
    )
    # Negative inputs are clipped to epsilon, as the original.
    neg = -np.ones((1, 2, 2, 1), "float32")
    assert GeMPooling2D()(neg).numpy()[0, 0] == pytest.approx(1e-6, rel=1e-3)
    layer = GeMPooling2D(trainable_p=True)
    layer(x)
    assert [w.name for w in layer.trainable_weights] == ["p"]


def test_gem_validation_echoes_the_value():
    """Before: p=True pooled as p=1, and epsilon=-1 gave NaN."""
    for kwargs, match in (
        ({"p": True}, "Received: p=True"),
        ({"p": 0}, "Received: p=0"),
        ({"epsilon": -1}, "Received: epsilon=-1"),
        ({"epsilon": 0.0}, "Received: epsilon=0.0"),
    ):
        with pytest.raises(ValueError, match=match):
            GeMPooling2D(**kwargs)


def test_big_little_merge_upsamples_and_adds():
    big = np.arange(4, dtype="float32").reshape(1, 2, 2, 1)
    little = np.full((1, 4, 4, 1), -1.0, "float32")
    out = BigLittleMerge()([big, little]).numpy()[0, :, :, 0]
    expected = np.maximum(np.kron(big[0, :, :, 0], np.ones((2, 2))) - 1, 0)
    np.testing.assert_array_equal(out, expected)


def test_big_little_merge_static_resize_equals_dynamic_repeat():
    """A static map is upsampled by a nearest resize, one of unknown size
    by repeating rows and columns: the same pixels, bit for bit."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    big = rng.normal(size=(2, 3, 5, 4)).astype("float32")
    little = rng.normal(size=(2, 6, 10, 4)).astype("float32")
    layer = BigLittleMerge()
    want = np.maximum(np.repeat(np.repeat(big, 2, 1), 2, 2) + little, 0)
    np.testing.assert_array_equal(layer([big, little]).numpy(), want)
    spec = tf.TensorSpec((None, None, None, 4))
    dynamic = tf.function(lambda b, s: layer([b, s]), autograph=False)
    dynamic = dynamic.get_concrete_function(spec, spec)
    np.testing.assert_array_equal(dynamic(big, little).numpy(), want)


def test_big_little_merge_rejects_bad_sizes():
    big = keras.Input((7, 7, 8))
    little = keras.Input((15, 15, 8))
    with pytest.raises(ValueError, match="multiples of 32"):
        BigLittleMerge(name="stage1_merge")([big, little])
    # Built for any size, then called on sizes that do not pair (a 33 px
    # image): named, not TensorFlow's "Incompatible shapes".
    layer = BigLittleMerge(name="stage2_merge")
    layer([keras.Input((None, None, 8)), keras.Input((None, None, 8))])
    with pytest.raises(ValueError, match="stage2_merge: the big branch"):
        layer([np.zeros((1, 5, 5, 8), "f4"), np.zeros((1, 9, 9, 8), "f4")])
    # In a TensorFlow function of any size, the sizes are known only when
    # it runs: checked there (before: "Incompatible shapes" from the add).
    import tensorflow as tf

    spec = tf.TensorSpec((None, None, None, 8))
    dynamic = tf.function(lambda b, s: layer([b, s]), autograph=False)
    dynamic = dynamic.get_concrete_function(spec, spec)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match="stage2_merge: the big branch must be half the little branch",
    ):
        dynamic(np.zeros((1, 5, 5, 8), "f4"), np.zeros((1, 9, 9, 8), "f4"))
