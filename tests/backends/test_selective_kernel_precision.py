"""Selective Kernel attention in low precision under every Keras backend.

The attention's global average (`selective_kernel._global_average`) summed
in the compute dtype where it was an average pool: in float16 a 64x64 map
of 20s summed to inf, so every SK preset's logits were NaN under
mixed_float16 on both backends, and under JAX a bfloat16 sum averaged the
same map to 8 (the attention weights 0.025 off float32's).
"""

import keras
import numpy as np
import pytest

from assemble_tf.layers import SelectiveKernel, selective_kernel


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_the_global_average_sums_in_float32(dtype):
    u = keras.ops.full((2, 64, 64, 3), 20.0, dtype=dtype)
    pooled = selective_kernel._global_average(u)
    assert keras.backend.standardize_dtype(pooled.dtype) == dtype
    assert pooled.shape == (2, 1, 1, 3)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(keras.ops.cast(pooled, "float32")), 20.0
    )


@pytest.mark.parametrize(
    "policy,tolerance", [("mixed_float16", 0.005), ("mixed_bfloat16", 0.03)]
)
def test_attention_in_mixed_precision_matches_float32(policy, tolerance):
    x = np.random.default_rng(0).uniform(0, 40, (1, 64, 64, 8))
    x = x.astype("float32")
    exact = SelectiveKernel(8, dtype="float32")
    exact.build(x.shape)
    low = SelectiveKernel(8, dtype=policy)
    low.build(x.shape)
    low.set_weights(exact.get_weights())
    _, _, want = exact.path_weights(x)
    _, _, got = low.path_weights(x)
    want = keras.ops.convert_to_numpy(want)
    got = keras.ops.convert_to_numpy(keras.ops.cast(got, "float32"))
    assert np.isfinite(got).all()
    assert np.abs(want - 0.5).max() > 0.05  # weights that tell paths apart
    np.testing.assert_allclose(got, want, atol=tolerance)
    out = keras.ops.convert_to_numpy(keras.ops.cast(low(x), "float32"))
    assert np.isfinite(out).all()
