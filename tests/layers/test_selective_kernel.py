import numpy as np
import pytest

from assemble_tf.layers import SelectiveKernel
from tests import testing_utils


def _bn(c):
    return 4 * c


@pytest.mark.parametrize(
    "filters,reduction,dim", [(64, 2, 32), (256, 2, 128), (64, 16, 32)]
)
def test_parameter_count_formula(filters, reduction, dim):
    layer = SelectiveKernel(filters, reduction=reduction)
    layer.build((None, 8, 8, filters))
    assert layer.attention_dim == dim
    # 18 F^2 (3x3 to 2F) + F d + 2F d, BN(2F) and BN(d) with moving stats.
    expected = 18 * filters**2 + 3 * filters * dim + _bn(2 * filters) + _bn(dim)
    assert layer.count_params() == expected


def test_path_weights_sum_to_one_and_output_is_convex_mix():
    x = testing_utils.random_images((3, 9, 9, 16), seed=3)
    layer = SelectiveKernel(8)
    u1, u2, a = (t.numpy() for t in layer.path_weights(x))
    assert a.shape == (3, 1, 1, 2, 8)
    np.testing.assert_allclose(a.sum(axis=3), 1.0, rtol=1e-6)
    assert np.all(a > 0)
    out = layer(x).numpy()
    np.testing.assert_allclose(
        out, a[..., 0, :] * u1 + a[..., 1, :] * u2, rtol=1e-5, atol=1e-6
    )
    assert out.min() >= 0.0  # both paths are post-ReLU


@pytest.mark.parametrize("variant", ["assemble", "sknet"])
def test_strides_and_variants(variant):
    x = testing_utils.random_images((2, 9, 10, 4))
    assert SelectiveKernel(6, variant=variant)(x).shape == (2, 9, 10, 6)
    assert SelectiveKernel(6, strides=2, variant=variant)(x).shape == (
        2,
        5,
        5,
        6,
    )


def test_sknet_variant_weights():
    layer = SelectiveKernel(8, variant="sknet")
    layer.build((None, 8, 8, 8))
    assert layer.conv_b.dilation_rate == (2, 2)
    # Two 3x3 convs F->F, BN(F) x2, attention d=32.
    assert layer.count_params() == 2 * 9 * 64 + 2 * 32 + 3 * 8 * 32 + 4 * 32


def test_validation_echoes_value():
    with pytest.raises(ValueError, match="variant='5x5'"):
        SelectiveKernel(8, variant="5x5")
    with pytest.raises(ValueError, match="strides=3"):
        SelectiveKernel(8, strides=3)
    with pytest.raises(ValueError, match="filters=0"):
        SelectiveKernel(0)


def test_non_default_arguments_round_trip():
    # Defaults and mixed precision: tests/layers/test_layer_contract.py.
    testing_utils.run_serialization_test(
        SelectiveKernel(8, strides=2, variant="sknet", reduction=4, name="sk")
    )
