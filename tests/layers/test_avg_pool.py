import numpy as np
import pytest

from assemble_tf.layers import PaddedAveragePool2D
from tests import testing_utils


def _reference(x, size, strides, padding):
    """numpy: zero-pad, then the mean of every window (zeros counted)."""
    p = padding
    padded = np.pad(x, [(0, 0), (p, p), (p, p), (0, 0)])
    oh = (x.shape[1] + 2 * p - size) // strides + 1
    ow = (x.shape[2] + 2 * p - size) // strides + 1
    out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for i in range(oh):
        for j in range(ow):
            r, c = i * strides, j * strides
            window = padded[:, r : r + size, c : c + size]
            out[:, i, j] = window.mean(axis=(1, 2))
    return out


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize(
    "size,strides,padding,shape",
    [
        (3, 2, 1, (8, 8)),
        (3, 2, 1, (7, 9)),
        (2, 2, 0, (6, 6)),
        (5, 1, 2, (5, 4)),
    ],
)
def test_matches_zero_pad_then_valid_average(
    size, strides, padding, shape, training
):
    """The depthwise-convolution path (inference, TensorFlow) and the
    pad-then-pool path (training) both divide every window by size^2."""
    x = testing_utils.random_images((2, *shape, 3), seed=size + padding)
    layer = PaddedAveragePool2D(size, strides=strides, padding=padding)
    out = layer(x, training=training).numpy()
    np.testing.assert_allclose(
        out, _reference(x, size, strides, padding), atol=1e-5
    )
    assert out.shape == layer.compute_output_shape(x.shape)


def test_bfloat16_inference_is_unbiased():
    """Before: 1/9 as a bfloat16 weight (0.11133) scaled every output of
    the TensorFlow inference path by 1.002 (each BigLittle avg3 shortcut
    at bfloat16 inference); rounding alone averages out."""
    import keras

    rng = np.random.default_rng(0)
    x = keras.ops.cast(rng.uniform(1, 2, (2, 32, 32, 16)), "bfloat16")
    exact = _reference(
        keras.ops.convert_to_numpy(keras.ops.cast(x, "float32")), 3, 2, 1
    )
    layer = PaddedAveragePool2D(3, strides=2, padding=1, dtype="bfloat16")
    for training in (False, True):
        out = keras.ops.convert_to_numpy(
            keras.ops.cast(layer(x, training=training), "float32")
        )
        assert abs(np.mean(out / exact) - 1) < 5e-4, training


def test_corner_counts_the_padded_zeros():
    x = np.ones((1, 4, 4, 1), np.float32)
    out = PaddedAveragePool2D(3, strides=2, padding=1)(x).numpy()[0, :, :, 0]
    # Top-left window: 4 of 9 inside the map; others: 6 or 9 of 9.
    np.testing.assert_allclose(out, [[4 / 9, 6 / 9], [6 / 9, 1.0]], rtol=1e-6)


def test_bad_arguments_echo_the_value():
    with pytest.raises(ValueError, match="pool_size=0"):
        PaddedAveragePool2D(0)
    with pytest.raises(ValueError, match="padding=-1"):
        PaddedAveragePool2D(3, padding=-1)
    with pytest.raises(ValueError, match="strides=1.5"):
        PaddedAveragePool2D(3, strides=1.5)


def test_a_map_smaller_than_the_window_is_refused():
    """Before: 0 x 0 in training and 1 x 1 at inference."""
    layer = PaddedAveragePool2D(2, 3, 0, name="pool")
    with pytest.raises(ValueError) as error:
        layer(np.ones((2, 1, 1, 4), np.float32))
    assert str(error.value) == (
        "PaddedAveragePool2D 'pool' (pool_size=2, padding=0) needs maps of "
        "at least 2 pixels; received 1 along axis 1 (input shape (2, 1, 1, "
        "4))."
    )
    out = PaddedAveragePool2D(3, 2, 1)(np.ones((1, 1, 1, 1), np.float32))
    assert out.shape == (1, 1, 1, 1)  # 1 + 2 zeros: the smallest map
