"""CosineClassifier (NormSoftmax, Zhai & Wu 2019) numerics on tiny arrays.

The Keras layer contract (config, serialization, mixed precision, a
training step) is in tests/layers/test_layer_contract.py.
"""

import keras
import numpy as np
import pytest

from assemble_tf.layers import CosineClassifier
from tests import testing_utils

# Rows of norm 5 and 3; columns of norm 1, 2, 3 and sqrt(3).
X = np.array([[3.0, 4.0, 0.0], [1.0, -2.0, 2.0]], "float32")
KERNEL = np.array(
    [[1.0, 0.0, 0.0, 1.0], [0.0, 2.0, 0.0, 1.0], [0.0, 0.0, -3.0, 1.0]],
    "float32",
)
R3 = np.sqrt(3.0)
COSINES = np.array(
    [
        [3 / 5, 4 / 5, 0.0, 7 / (5 * R3)],
        [1 / 3, -2 / 3, -2 / 3, 1 / (3 * R3)],
    ]
)


def _layer(kernel=KERNEL, **kw):
    layer = CosineClassifier(kernel.shape[1], **kw)
    layer.build((None, kernel.shape[0]))
    layer.kernel.assign(kernel)
    return layer


def _numpy_logits(x, kernel, temperature):
    x = np.asarray(x, np.float64)
    w = np.asarray(kernel, np.float64)
    x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    w = w / np.linalg.norm(w, axis=0, keepdims=True)
    return x @ w / temperature


def test_logits_are_cosines_over_temperature():
    out = _layer()(X).numpy()
    assert out.dtype == np.float32 and out.shape == (2, 4)
    np.testing.assert_allclose(out, COSINES / 0.05, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        out, _numpy_logits(X, KERNEL, 0.05), rtol=1e-6, atol=1e-6
    )
    out = _layer(temperature=0.5)(X).numpy()
    np.testing.assert_allclose(out, COSINES / 0.5, rtol=1e-6, atol=1e-6)


def test_input_scale_does_not_change_the_logits():
    layer = _layer()
    np.testing.assert_allclose(
        layer(5.0 * X).numpy(), layer(X).numpy(), rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(
        layer(1e-3 * X).numpy(), layer(X).numpy(), rtol=1e-5, atol=1e-5
    )


def test_zero_input_gives_finite_zero_logits():
    import tensorflow as tf

    layer = _layer()
    zeros = tf.zeros((2, 3))
    with tf.GradientTape() as tape:
        tape.watch(zeros)
        out = layer(zeros)
    np.testing.assert_array_equal(out.numpy(), np.zeros((2, 4), "float32"))
    grad = tape.gradient(out, zeros).numpy()
    assert np.all(np.isfinite(grad))
    # A zero class-weight column gives zero logits for that class too.
    kernel = KERNEL.copy()
    kernel[:, 1] = 0.0
    out = _layer(kernel)(X).numpy()
    np.testing.assert_array_equal(out[:, 1], [0.0, 0.0])
    assert np.all(np.isfinite(out))


def test_logits_are_bounded_by_one_over_temperature():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 100, (64, 8)).astype("float32")
    layer = CosineClassifier(10, temperature=0.05)
    out = layer(x).numpy()
    assert np.all(np.abs(out) <= 1 / 0.05 * (1 + 1e-6))
    # An input along a class weight reaches the bound.
    kernel = layer.kernel.numpy()
    along = 3.0 * kernel[:, 4][None]
    assert layer(along).numpy()[0, 4] == pytest.approx(20.0, rel=1e-6)
    assert layer(-along).numpy()[0, 4] == pytest.approx(-20.0, rel=1e-6)


def test_no_bias_and_glorot_kernel():
    layer = CosineClassifier(7)
    layer.build((None, 5))
    assert [w.name for w in layer.weights] == ["kernel"]
    assert layer.kernel.shape == (5, 7)
    assert isinstance(
        layer.kernel_initializer, keras.initializers.GlorotUniform
    )
    assert layer.count_params() == 35
    assert layer.macs((5,)) == 35
    config = layer.get_config()
    assert config["units"] == 7 and config["temperature"] == 0.05


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"units": 0}, "units=0"),
        ({"units": 2.5}, "units=2.5"),
        ({"units": True}, "units=True"),
        ({"units": 3, "temperature": 0}, "temperature=0"),
        ({"units": 3, "temperature": -0.1}, "temperature=-0.1"),
        ({"units": 3, "temperature": "0.05"}, "temperature='0.05'"),
        ({"units": 3, "temperature": True}, "temperature=True"),
    ],
)
def test_validation_names_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CosineClassifier(**kwargs)


def test_mixed_precision_computes_in_float32(mixed_precision):
    # Inputs exact in float16; a kernel that float16 would round, and
    # overflow (only its direction matters: the float32 cosines are exact).
    x = np.array([[3.0, 4.0, 0.5], [1.0, -2.0, 2.25]], "float32")
    kernel = (KERNEL + np.float32(0.1) / 3) * np.float32(1e5)
    assert np.abs(kernel).max() > np.finfo("float16").max
    keras.config.set_dtype_policy("float32")
    reference = _layer(kernel)(x).numpy()
    keras.config.set_dtype_policy("mixed_float16")
    # Float32 logits with a float32 policy (as build_resnet gives the head),
    # from a float32 kernel read without rounding.
    layer = _layer(kernel, dtype="float32")
    out = layer(x.astype("float16"))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert layer.kernel.dtype == "float32"
    np.testing.assert_allclose(out.numpy(), reference, rtol=1e-6, atol=1e-6)
    # The mixed policy: float32 arithmetic, one rounding to float16 at the
    # output (the layer contract of testing_utils.run_precision_test).
    layer = testing_utils.run_precision_test(lambda: _layer(kernel), x)
    out = layer(x)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    assert layer.compute_dtype == "float16"
    np.testing.assert_array_equal(out.numpy(), reference.astype("float16"))
