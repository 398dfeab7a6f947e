import numpy as np
import pytest

from assemble_tf.layers import SelectiveKernel
from assemble_tf.layers.selective_kernel import VARIANTS, path_specs
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


@pytest.mark.parametrize("variant,strides", [("assemble", 1), ("sknet", 2)])
def test_path_weights_sum_to_one_and_output_is_convex_mix(variant, strides):
    x = testing_utils.random_images((3, 9, 9, 16), seed=3)
    layer = SelectiveKernel(8, strides=strides, variant=variant)
    u1, u2, a = (t.numpy() for t in layer.path_weights(x))
    assert a.shape == (3, 1, 1, 2, 8)
    assert u1.shape == u2.shape == layer.compute_output_shape(x.shape)
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


@pytest.mark.parametrize("variant", VARIANTS)
def test_variants_are_path_specs_with_their_layers(variant):
    specs = path_specs(variant)
    assert sum(spec.paths for spec in specs) == 2
    layer = SelectiveKernel(8, strides=2, variant=variant)
    layer.build((None, 9, 9, 4))
    expected = {
        "assemble": ["conv/kernel", "bn/gamma"],
        "sknet": ["conv_a/kernel", "bn_a/gamma", "conv_b/kernel", "bn_b/gamma"],
    }[variant]
    paths = [w.path.split("/", 1)[1] for w in layer.weights]
    assert [p for p in paths if p.endswith(("kernel", "gamma"))] == [
        *expected,
        "fc1/kernel",
        "attn_bn/gamma",
        "fc2/kernel",
    ]
    for spec in specs:
        conv = getattr(layer, f"conv{spec.suffix}")
        assert conv.filters == spec.paths * 8
        assert conv.dilation_rate == (spec.dilation,) * 2
        assert conv.strides == ((2, 2) if spec.strided else (1, 1))
    # 9 x 9 input, 5 x 5 output: strided convs run at the output size.
    conv_macs = sum(
        (25 if spec.strided else 81) * 9 * 4 * spec.paths * 8 for spec in specs
    )
    assert layer.macs((9, 9, 4)) == conv_macs + 8 * 32 + 32 * 16
