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


@pytest.mark.parametrize("size", [9, 2])
def test_fast_paths_equal_the_mean_and_the_elementwise_sum(size):
    """A static map takes the whole-map average pool and (in bfloat16
    under TensorFlow, at least 2F positions: 9 x 9) the block-diagonal
    matmul; a 2 x 2 map with F = 8 and float32 the elementwise sum; a map of
    unknown size the mean and the elementwise sum. All give the
    softmax-weighted mix."""
    import tensorflow as tf

    x = testing_utils.random_images((3, size, size, 16), seed=size)
    layer = SelectiveKernel(8)
    static = layer(x).numpy()
    dynamic = tf.function(layer, autograph=False).get_concrete_function(
        tf.TensorSpec((None, None, None, 16))
    )
    np.testing.assert_allclose(dynamic(x).numpy(), static, atol=1e-6)

    def op_types(layer):
        traced = tf.function(layer, autograph=False).get_concrete_function(
            tf.TensorSpec(x.shape)
        )
        return {op.type for op in traced.graph.get_operations()}

    ops = op_types(layer)
    assert "BatchMatMulV2" not in ops  # float32: multiply and sum
    assert ("AvgPool" in ops) and "Softmax" not in ops
    bf16 = SelectiveKernel(8, dtype="mixed_bfloat16")
    bf16.build(x.shape)
    bf16.set_weights(layer.get_weights())
    assert ("BatchMatMulV2" in op_types(bf16)) == (size == 9)
    np.testing.assert_allclose(
        bf16(x).numpy().astype(np.float32), static, rtol=0.05, atol=0.05
    )
    u1, u2, a = (t.numpy() for t in layer.path_weights(x))
    pooled = (u1 + u2).mean(axis=(1, 2), keepdims=True)
    z = np.maximum(
        layer.attn_bn(layer.fc1(pooled), training=False).numpy(), 0.0
    )
    logits = layer.fc2(z).numpy().reshape(3, 1, 1, 2, 8)
    softmax = np.exp(logits) / np.exp(logits).sum(axis=3, keepdims=True)
    np.testing.assert_allclose(a, softmax, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        static, a[..., 0, :] * u1 + a[..., 1, :] * u2, rtol=1e-5, atol=1e-6
    )


def test_fold_bn_drops_the_bns_and_biases_their_convs():
    layer = SelectiveKernel(8, fold_bn=True)
    layer.build((None, 8, 8, 4))
    assert layer.bn is None and layer.attn_bn is None
    assert layer.folded_pairs() == {"conv": "bn", "fc1": "attn_bn"}
    paths = [w.path.split("/", 1)[1] for w in layer.weights]
    assert paths == [
        "conv/kernel",
        "conv/bias",
        "fc1/kernel",
        "fc1/bias",
        "fc2/kernel",
    ]
    sknet = SelectiveKernel(8, variant="sknet", fold_bn=True)
    assert sknet.folded_pairs() == {
        "conv_a": "bn_a",
        "conv_b": "bn_b",
        "fc1": "attn_bn",
    }
