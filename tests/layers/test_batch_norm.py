"""BatchNorm: fused inference == Keras BatchNormalization; same training."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from assemble_tf.layers import BatchNorm
from tests.testing_utils import random_images, run_serialization_test


def _pair(channels=6, **kwargs):
    ours = BatchNorm(epsilon=1e-5, **kwargs)
    ref = keras.layers.BatchNormalization(epsilon=1e-5, **kwargs)
    ours.build((None, 5, 7, channels))
    ref.build((None, 5, 7, channels))
    rng = np.random.default_rng(0)
    values = [
        rng.uniform(0.5, 2.0, channels),  # gamma
        rng.normal(0, 1, channels),  # beta
        rng.normal(0, 2, channels),  # moving mean
        rng.uniform(0.1, 3.0, channels),  # moving variance
    ]
    if not kwargs.get("center", True):
        values.pop(1)
    for layer in (ours, ref):
        layer.set_weights([v.astype("float32") for v in values])
    return ours, ref


def test_inference_matches_keras():
    ours, ref = _pair()
    x = random_images((3, 5, 7, 6), low=-4, high=4)
    got = ours(x, training=False).numpy()
    want = ref(x, training=False).numpy()
    np.testing.assert_allclose(got, want, atol=2e-6, rtol=1e-6)
    # Graph and XLA give the same.
    fn = tf.function(lambda t: ours(t, training=False), jit_compile=True)
    np.testing.assert_allclose(fn(x).numpy(), want, atol=2e-6, rtol=1e-6)


def test_inference_uses_fused_kernel():
    ours, _ = _pair()
    fn = tf.function(lambda t: ours(t, training=False))
    graph = fn.get_concrete_function(tf.TensorSpec((2, 5, 7, 6))).graph
    ops = {op.type for op in graph.get_operations()}
    assert "FusedBatchNormV3" in ops


def test_training_and_frozen_paths():
    ours, ref = _pair()
    x = random_images((4, 5, 7, 6), low=-4, high=4)
    np.testing.assert_allclose(
        ours(x, training=True).numpy(), ref(x, training=True).numpy(), atol=1e-5
    )
    np.testing.assert_allclose(
        ours.moving_mean.numpy(), ref.moving_mean.numpy(), atol=1e-6
    )
    # A frozen layer normalizes with its moving statistics, like Keras.
    ours.trainable = ref.trainable = False
    np.testing.assert_allclose(
        ours(x, training=True).numpy(),
        ref(x, training=True).numpy(),
        atol=2e-6,
        rtol=1e-6,
    )


def test_unfusable_cases_fall_back():
    ours, ref = _pair(center=False)
    x = random_images((2, 5, 7, 6))
    np.testing.assert_allclose(
        ours(x).numpy(), ref(x).numpy(), atol=2e-6, rtol=1e-6
    )
    dense = BatchNorm()
    y = dense(random_images((3, 4)))
    assert y.shape == (3, 4)


def test_mixed_float16(mixed_precision):
    ours, ref = _pair()
    x = random_images((2, 5, 7, 6), low=-4, high=4)
    got = ours(x, training=False)
    assert got.dtype == tf.float16
    assert ours.gamma.dtype == "float32"
    want = ref(x, training=False).numpy().astype("float32")
    np.testing.assert_allclose(got.numpy().astype("float32"), want, atol=2e-2)


def test_serialization():
    run_serialization_test(BatchNorm(momentum=0.997, epsilon=1e-5))


@pytest.mark.parametrize("preset", ["resnet50", "assemble_resnet50"])
def test_models_use_it(preset):
    from assemble_tf.models import build_model

    model = build_model(
        preset, base_width=8, block_sizes=(2, 2, 2, 1), image_size=64
    )
    bns = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert bns and all(type(b) is BatchNorm for b in bns)


def test_other_backends_take_the_keras_path(monkeypatch):
    # Under JAX (the GPU benchmark) the TensorFlow-only fused op must not be
    # used; the layer is plain Keras BN there.
    ours, ref = _pair()
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    fn = tf.function(lambda t: ours(t, training=False))
    graph = fn.get_concrete_function(tf.TensorSpec((2, 5, 7, 6))).graph
    assert "FusedBatchNormV3" not in {op.type for op in graph.get_operations()}
    x = random_images((3, 5, 7, 6), low=-4, high=4)
    np.testing.assert_allclose(
        fn(x).numpy(), ref(x, training=False).numpy(), atol=2e-6, rtol=1e-6
    )
