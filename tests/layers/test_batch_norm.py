"""BatchNorm: fused inference and training == Keras BatchNormalization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from assemble_tf.layers import BatchNorm
from assemble_tf.layers import batch_norm as batch_norm_lib
from tests import testing_utils
from tests.testing_utils import random_images, run_serialization_test


def _pair(channels=6, **kwargs):
    ours = BatchNorm(epsilon=1e-5, **kwargs)
    ref = keras.layers.BatchNormalization(epsilon=1e-5, **kwargs)
    shape = (None, 5, 7, channels)
    if kwargs.get("axis", -1) == 1:
        shape = (None, channels, 5, 7)
    ours.build(shape)
    ref.build(shape)
    rng = np.random.default_rng(0)
    values = {
        "gamma": rng.uniform(0.5, 2.0, channels),
        "beta": rng.normal(0, 1, channels),
        "moving_mean": rng.normal(0, 2, channels),
        "moving_variance": rng.uniform(0.1, 3.0, channels),
    }
    for layer in (ours, ref):
        for name, value in values.items():
            if getattr(layer, name) is not None:  # no beta without center
                getattr(layer, name).assign(value.astype("float32"))
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


# Fused training path. Measured largest differences to Keras BN (relative to
# the largest magnitude, eager / tf.function / XLA, 3 steps): float32 outputs
# 2.4e-7, gradients 6.2e-7, moving statistics 4.8e-7 (absolute, values ~1-10).
# Under mixed precision the outputs and the input gradient are 16-bit:
# 0 and 7.8e-5 (float16, ulp 2^-10 ~ 1e-3), 8e-8 and 1.2e-3 (bfloat16, ulp
# 2^-7 ~ 8e-3), i.e. below one ulp; gamma / beta gradients and moving
# statistics stay float32 (<= 9.5e-7). The tolerances below allow about 15x
# the float32 error and one 16-bit ulp.
_TOLERANCE = {"float32": 1e-5, "mixed_float16": 2e-3, "mixed_bfloat16": 1e-2}


def _training_steps(layer, xs, weights, mode):
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
        return [y, *tape.gradient(loss, [x, layer.gamma, layer.beta])]

    if mode != "eager":
        step = tf.function(step, jit_compile=mode == "xla")
    results = [[t.numpy().astype("float64") for t in step(x)] for x in xs]
    return results, layer.moving_mean.numpy(), layer.moving_variance.numpy()


def _relative(got, want):
    return float(np.abs(got - want).max() / max(1.0, np.abs(want).max()))


@pytest.mark.parametrize(
    "policy", ["float32", "mixed_float16", "mixed_bfloat16"]
)
@pytest.mark.parametrize("mode", ["eager", "graph"])
def test_training_matches_keras(policy, mode):
    keras.config.set_dtype_policy(policy)  # the autouse fixture restores
    ours, ref = _pair(momentum=0.9)
    assert ours.compute_dtype == ref.compute_dtype
    initial_mean = ours.moving_mean.numpy()
    rng = np.random.default_rng(1)
    weights = tf.constant(rng.normal(size=(4, 5, 7, 6)), tf.float32)
    xs = [
        tf.cast(rng.normal(1.0, 3.0, (4, 5, 7, 6)), ours.compute_dtype)
        for _ in range(3)
    ]
    got, got_mean, got_var = _training_steps(ours, xs, weights, mode)
    want, want_mean, want_var = _training_steps(ref, xs, weights, mode)
    tol = _TOLERANCE[policy]
    for g, w in zip(got, want, strict=True):
        y, dx, dgamma, dbeta = (
            _relative(a, b) for a, b in zip(g, w, strict=True)
        )
        assert y < tol and dx < tol, (y, dx)
        # gamma / beta gradients are float32 reductions in both.
        assert dgamma < 1e-5 and dbeta < 1e-5, (dgamma, dbeta)
    # The moving statistics moved (3 steps at momentum 0.9) and agree.
    assert np.abs(got_mean - initial_mean).max() > 0.1
    np.testing.assert_allclose(got_mean, want_mean, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(got_var, want_var, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_training_matches_keras_under_xla():
    ours, ref = _pair(momentum=0.9)
    rng = np.random.default_rng(2)
    weights = tf.constant(rng.normal(size=(4, 5, 7, 6)), tf.float32)
    xs = [tf.constant(rng.normal(1.0, 3.0, (4, 5, 7, 6)), tf.float32)] * 2
    got, got_mean, got_var = _training_steps(ours, xs, weights, "xla")
    want, want_mean, want_var = _training_steps(ref, xs, weights, "xla")
    for g, w in zip(got, want, strict=True):
        assert max(_relative(a, b) for a, b in zip(g, w, strict=True)) < 1e-5
    np.testing.assert_allclose(got_mean, want_mean, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(got_var, want_var, atol=1e-5, rtol=1e-5)


def test_moving_variance_is_the_biased_batch_variance():
    # FusedBatchNormV3 returns the batch variance times n / (n - 1); Keras
    # (and this layer) average the biased one into the moving variance.
    ours = BatchNorm(momentum=0.0)
    x = random_images((2, 3, 4, 5), low=-3, high=5)
    ours(x, training=True)
    flat = x.reshape(-1, 5).astype("float64")
    np.testing.assert_allclose(ours.moving_mean.numpy(), flat.mean(0), 1e-6)
    np.testing.assert_allclose(ours.moving_variance.numpy(), flat.var(0), 1e-6)
    # Unknown spatial size: the correction is computed from the shape.
    ours = BatchNorm(momentum=0.0)
    fn = tf.function(
        lambda t: ours(t, training=True),
        input_signature=[tf.TensorSpec((None, None, None, 5))],
    )
    fn(x)
    np.testing.assert_allclose(ours.moving_variance.numpy(), flat.var(0), 1e-6)
    # One value per channel: zero variance, as Keras.
    fn(x[:1, :1, :1])
    np.testing.assert_array_equal(ours.moving_variance.numpy(), 0.0)


def _training_graph_ops(layer, shape=(2, 5, 7, 6), mask=None):
    fn = tf.function(lambda t: layer(t, training=True, mask=mask))
    graph = fn.get_concrete_function(tf.TensorSpec(shape)).graph
    return graph.get_operations()


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_training_uses_fused_kernel(policy, monkeypatch):
    keras.config.set_dtype_policy(policy)
    ours, _ = _pair()
    ops = _training_graph_ops(ours)
    fused = [op for op in ops if op.type == "FusedBatchNormV3"]
    assert len(fused) == 1 and fused[0].get_attr("is_training")
    if policy == "mixed_bfloat16":  # the op takes the bfloat16 input
        assert fused[0].get_attr("T") == tf.bfloat16
    types = {op.type for op in ops}
    assert not types & {"SquaredDifference", "Mean", "Rsqrt"}, types
    assert "AssignVariableOp" in types
    # The module switch turns it off (benchmarks, the model test below).
    keras.backend.clear_session()
    ours, _ = _pair()
    monkeypatch.setattr(batch_norm_lib, "FUSED_TRAINING", False)
    types = {op.type for op in _training_graph_ops(ours)}
    assert "FusedBatchNormV3" not in types and "SquaredDifference" in types


@pytest.mark.parametrize(
    "case", ["mask", "2d", "axis1", "no_center", "synchronized", "renorm"]
)
def test_unfusable_training_falls_back(case):
    kwargs = {
        "axis1": {"axis": 1},
        "no_center": {"center": False},
        "synchronized": {"synchronized": True},
        "renorm": {"renorm": True},
    }.get(case, {})
    if case == "2d":
        ours, ref = BatchNorm(), keras.layers.BatchNormalization()
        shape = (6, 5)
    else:
        ours, ref = _pair(**kwargs)
        shape = (2, 6, 5, 7) if case == "axis1" else (2, 5, 7, 6)
    x = random_images(shape, low=-3, high=3)
    mask = None
    if case == "mask":
        mask = tf.constant(np.random.default_rng(0).random(shape[:3]) > 0.3)
    types = {op.type for op in _training_graph_ops(ours, shape, mask)}
    assert "FusedBatchNormV3" not in types, case
    np.testing.assert_allclose(
        ours(x, training=True, mask=mask).numpy(),
        ref(x, training=True, mask=mask).numpy(),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        ours.moving_variance.numpy(), ref.moving_variance.numpy(), atol=1e-6
    )


def _mirrored_batch_norm():
    """Our BatchNorm and Keras' under a two-replica MirroredStrategy, three
    training steps on each replica's own batches."""
    rng = np.random.default_rng(0)
    shape = (4, 5, 7, 6)
    init = [
        rng.uniform(0.5, 2.0, 6),
        rng.normal(0, 1, 6),
        rng.normal(0, 2, 6),
        rng.uniform(0.1, 3.0, 6),
    ]
    init = [v.astype("float32") for v in init]
    # Each replica its own batches (3 steps), with their own statistics.
    xs = [rng.normal(r, 1 + r, (3,) + shape).astype("float32") for r in (0, 1)]
    w = rng.normal(0, 1, shape).astype("float32")
    strategy = testing_utils.two_replica_strategy()

    def run(cls):
        with strategy.scope():
            layer = cls(epsilon=1e-5, momentum=0.9)
            layer.build((None,) + shape[1:])
            layer.set_weights(init)

        def replica_step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(layer(x, training=True) * w)
            return [layer(x, training=True)] + tape.gradient(
                loss, [x, layer.gamma, layer.beta]
            )

        step = tf.function(lambda x: strategy.run(replica_step, args=(x,)))
        outs = []
        for s in range(3):
            x = strategy.experimental_distribute_values_from_function(
                lambda ctx, s=s: tf.constant(
                    xs[ctx.replica_id_in_sync_group][s]
                )
            )
            outs.append(
                [
                    [t.numpy() for t in strategy.experimental_local_results(p)]
                    for p in step(x)
                ]
            )
        graph = step.get_concrete_function(x).graph
        ops = {op.type for op in graph.get_operations()}
        return (
            outs,
            layer.moving_mean.numpy(),
            layer.moving_variance.numpy(),
            ops,
        )

    ours, om, ov, ops = run(BatchNorm)
    ref, rm, rv, ref_ops = run(keras.layers.BatchNormalization)
    err = max(
        float(np.abs(a - b).max() / max(1.0, np.abs(b).max()))
        for s in range(3)
        for i in range(4)
        for a, b in zip(ours[s][i], ref[s][i], strict=True)
    )
    # Per replica: replica r's first output is BN of its own first batch.
    single = keras.layers.BatchNormalization(epsilon=1e-5)
    single.build((None,) + shape[1:])
    single.set_weights(init)
    local = max(
        float(np.abs(ours[0][0][r] - single(xs[r][0], training=True)).max())
        for r in (0, 1)
    )
    return {
        "replicas": strategy.num_replicas_in_sync,
        "err": err,
        "local": local,
        "mean": float(np.abs(om - rm).max()),
        "var": float(np.abs(ov - rv).max()),
        "moved": float(np.abs(om - init[2]).max()),
        "fused": "FusedBatchNormV3" in ops,
        "ref_fused": "FusedBatchNormV3" in ref_ops,
    }


def test_mirrored_two_replicas_match_keras():
    out = _mirrored_batch_norm()
    assert out["replicas"] == 2
    assert out["fused"] and not out["ref_fused"]
    assert out["err"] < 1e-5  # outputs and gradients, every replica and step
    assert out["local"] < 1e-5  # per-replica statistics, not global ones
    assert out["moved"] > 0.1
    assert out["mean"] < 1e-5 and out["var"] < 1e-5


@pytest.mark.slow
def test_model_training_step_matches_unfused(monkeypatch):
    from assemble_tf.models import build_model

    def one_step(fused):
        monkeypatch.setattr(batch_norm_lib, "FUSED_TRAINING", fused)
        keras.utils.set_random_seed(7)
        model = build_model(
            "resnet50",
            base_width=8,
            block_sizes=(1, 1, 1, 1),
            image_size=32,
            num_classes=5,
        )
        optimizer = keras.optimizers.SGD(0.1)
        images = random_images((4, 32, 32, 3), seed=3, low=-2, high=2)
        labels = tf.constant([0, 1, 2, 4])

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                logits = model(images, training=True)
                loss = tf.reduce_mean(
                    keras.losses.sparse_categorical_crossentropy(
                        labels, logits, from_logits=True
                    )
                )
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(
                zip(grads, model.trainable_variables, strict=True)
            )
            return loss

        loss = float(step())
        graph = step.get_concrete_function().graph
        types = {op.type for op in graph.get_operations()}
        assert ("FusedBatchNormV3" in types) == fused
        return loss, [w.numpy() for w in model.weights]

    loss_fused, fused = one_step(True)
    loss_keras, keras_weights = one_step(False)
    assert loss_fused == pytest.approx(loss_keras, rel=1e-5)
    # Measured: loss to 4.8e-7 (2e-7 relative), weights and moving
    # statistics to 1.2e-6.
    for a, b in zip(fused, keras_weights, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4)
