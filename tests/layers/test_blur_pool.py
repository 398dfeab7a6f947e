import numpy as np
import pytest

from assemble_tf.layers import BlurPool2D, binomial_kernel
from tests import testing_utils


def test_kernel_values_size_3_and_5():
    expected3 = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16.0
    np.testing.assert_array_equal(binomial_kernel(3), expected3)
    row5 = np.array([1, 4, 6, 4, 1], dtype=float)
    np.testing.assert_array_equal(
        binomial_kernel(5), np.outer(row5, row5) / 256
    )
    for size in range(1, 8):
        k = binomial_kernel(size)
        assert k.shape == (size, size)
        assert k.sum() == pytest.approx(1.0)
        np.testing.assert_array_equal(k, k.T)
    assert binomial_kernel(1).tolist() == [[1.0]]
    assert binomial_kernel(7)[3, 3] == pytest.approx(400 / 64**2)


def test_exact_output_on_tiny_map():
    x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    out = BlurPool2D(filter_size=3)(x).numpy()[0, :, :, 0]
    padded = np.pad(x[0, :, :, 0], 1, mode="reflect")
    k = binomial_kernel(3)
    expected = np.array(
        [
            [(padded[i : i + 3, j : j + 3] * k).sum() for j in (0, 2)]
            for i in (0, 2)
        ]
    )
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    # By hand: reflect padding puts rows [5,4,5], [1,0,1], [5,4,5] under the
    # top-left kernel, 40 / 16 = 2.5 (zero padding would give 15 / 16).
    assert out[0, 0] == pytest.approx(2.5)


def test_shapes_depthwise_and_size_one_is_subsampling():
    x = testing_utils.random_images((2, 56, 56, 8))
    assert BlurPool2D(3)(x).shape == (2, 28, 28, 8)
    assert BlurPool2D(5)(x).shape == (2, 28, 28, 8)
    assert BlurPool2D(3)(x[:, :7, :9]).shape == (2, 4, 5, 8)
    np.testing.assert_array_equal(BlurPool2D(1)(x).numpy(), x[:, ::2, ::2])
    # Channels are filtered independently.
    y = x.copy()
    y[..., 1:] = 0.0
    out = BlurPool2D(3)(y).numpy()
    assert np.all(out[..., 1:] == 0.0)
    layer = BlurPool2D(3)
    layer.build((None, 8, 8, 3))
    assert layer.count_params() == 0 and not layer.weights


def test_bad_filter_size_is_rejected_with_value():
    with pytest.raises(ValueError, match="filter_size=8"):
        BlurPool2D(filter_size=8)
    with pytest.raises(ValueError, match="strides=0"):
        BlurPool2D(strides=0)


def test_non_default_arguments_round_trip():
    # Defaults and mixed precision: tests/layers/test_layer_contract.py.
    testing_utils.run_serialization_test(BlurPool2D(filter_size=5, name="b"))


def _reference_blur(x, size, strides, original=False):
    """numpy: reflect-pad by (size - 1) // 2 before and size - 1 in all
    (np.pad "reflect", as tf.pad REFLECT), then the binomial window at
    every `strides`-th position: ceil(n / strides) outputs. `original`:
    (size - 1) // 2 on every side, as clovaai/assembled-cnn
    `anti_aliased_downsample` pads (an even size: one output fewer on
    some sides)."""
    p = (size - 1) // 2
    q = p if original else size - 1 - p
    padded = np.pad(x, [(0, 0), (p, q), (p, q), (0, 0)], mode="reflect")
    k = binomial_kernel(size)
    oh = (x.shape[1] + p + q - size) // strides + 1
    ow = (x.shape[2] + p + q - size) // strides + 1
    out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for i in range(oh):
        for j in range(ow):
            window = padded[
                :,
                i * strides : i * strides + size,
                j * strides : j * strides + size,
            ]
            out[:, i, j] = np.einsum("nabc,ab->nc", window, k)
    return out


def _reflectable(n, size, strides):
    """Whether a side of n reflects the pixels a strided filter of `size`
    reads past it (at most n - 1 on each side)."""
    outputs = (n - 1) // strides + 1
    last = (outputs - 1) * strides + size - 1
    pad = (size - 1) // 2
    return max(pad, last - (n + pad - 1)) <= n - 1


@pytest.mark.parametrize("size", [2, 3, 4, 5, 7])
@pytest.mark.parametrize("strides", [1, 2, 3])
def test_reflected_border_on_every_side_it_reads(size, strides):
    """The border built by concatenation (static maps, only the sides the
    window reads) and the reflect pad of a map of unknown size both equal
    numpy's reflect padding, on even and odd sides."""
    import tensorflow as tf

    layer = BlurPool2D(size, strides)
    dynamic = tf.function(
        layer, input_signature=[tf.TensorSpec((None, None, None, 2))]
    )
    # (2, 3): the smallest maps a size-4 filter reads (before: the dynamic
    # pad was size - 1 - pad whatever the filter read, and MirrorPad
    # refused a 2-px map that the static path took).
    for h, w in ((8, 8), (9, 7), (10, 5), (size, size + 1), (2, 3)):
        if not all(_reflectable(n, size, strides) for n in (h, w)):
            continue  # too small for this filter: refused (below)
        x = testing_utils.random_images((2, h, w, 2), seed=h * w)
        want = _reference_blur(x, size, strides)
        np.testing.assert_allclose(layer(x).numpy(), want, atol=1e-5)
        np.testing.assert_allclose(dynamic(x).numpy(), want, atol=1e-5)


@pytest.mark.parametrize("size", [2, 4, 6])
def test_an_even_size_gives_the_shortcuts_shape_and_the_originals_values(
    size,
):
    """Padded as the original, an even size gave floor((n - 2) / 2) + 1
    outputs: one fewer than the block's shortcut on a map of odd side (a
    200 px model with anti_alias_size=4 failed to build). Now ceil(n / 2)
    for every side, and the original's values wherever it had them."""
    layer = BlurPool2D(size)
    for n in (9, 13, 25):
        x = testing_utils.random_images((1, n, n, 2), seed=n)
        out = layer(x).numpy()
        assert out.shape == (1, (n + 1) // 2, (n + 1) // 2, 2)
        assert _reference_blur(x, size, 2, original=True).shape[1] == n // 2
    for n in (8, 12, 26):
        x = testing_utils.random_images((1, n, n, 2), seed=n)
        np.testing.assert_allclose(
            layer(x).numpy(),
            _reference_blur(x, size, 2, original=True),
            atol=1e-5,
        )


def test_even_size_3_reads_no_bottom_or_right_border():
    """For an even side and size 3 the concatenated border is one mirrored
    row on top and one column on the left: the padded map is 9 x 9."""
    x = testing_utils.random_images((1, 8, 8, 1))
    layer = BlurPool2D(3)
    assert tuple(layer._reflect(layer._reflect(x, 1), 2).shape) == (
        1,
        9,
        9,
        1,
    )
    assert tuple(layer._reflect(x[:, :7], 1).shape) == (1, 9, 8, 1)


def test_maps_too_small_to_reflect_are_refused_with_the_sizes():
    """Reflection pads at most n - 1 pixels: the slices went past the
    edge and gave a 4x4 output where the layer's own shape said 1x1 (an
    Add downstream broadcast it, silently). The smallest maps that reflect
    still match numpy."""
    for size, n in ((5, 2), (6, 2), (7, 3), (3, 1)):
        layer = BlurPool2D(size, name="blur")
        x = testing_utils.random_images((1, n, n, 2))
        with pytest.raises(ValueError) as error:
            layer(x)
        pad = (size - 1) // 2
        assert f"BlurPool2D 'blur' (filter_size={size}) reflect-pads " in str(
            error.value
        )
        assert f"received {n} along axis 1" in str(error.value)
        assert pad >= n or size > n + 1
    # Too narrow only, in a layer built for any size (a model's): the
    # input's shape (before: the shape after the height's padding, (1, 9,
    # 2, 2) here).
    layer = BlurPool2D(5, name="blur")
    layer.build((None, None, None, 2))
    with pytest.raises(ValueError) as error:
        layer(testing_utils.random_images((1, 5, 2, 2)))
    assert "received 2 along axis 2 (input shape (1, 5, 2, 2))" in str(
        error.value
    )
    for size, n in ((3, 2), (5, 3), (7, 4)):
        x = testing_utils.random_images((1, n, n, 2), seed=n)
        np.testing.assert_allclose(
            BlurPool2D(size)(x).numpy(), _reference_blur(x, size, 2), atol=1e-5
        )
    # A map of unknown size: refused when the graph runs, with the layer,
    # the filter and the fix (before: MirrorPad's "paddings must be less
    # than the dimension size").
    import tensorflow as tf

    layer = BlurPool2D(5, name="blur")
    dynamic = tf.function(
        layer, input_signature=[tf.TensorSpec((None, None, None, 2))]
    )
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        dynamic(testing_utils.random_images((1, 2, 2, 2)))
    assert (
        "BlurPool2D blur (filter_size=5) reflect-pads more pixels than "
        "the map has: use a larger image size or a smaller filter_size "
        "(anti_alias_size)." in str(error.value)
    )
