"""Conv2D: the MatMul weight gradient == Keras Conv2D's, and where it runs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from assemble_tf.layers import Conv2D
from assemble_tf.layers import conv as conv_lib
from assemble_tf.models import build_model
from tests.testing_utils import random_images

# (input H, W, kernel, stride, padding): pointwise, strided pointwise on
# even and odd sizes (the last window needs a padded row), 3 x 3 at
# stride 1 and 2, a 5 x 5 kernel at stride 3 and an even kernel.
SHAPES = [
    (7, 7, 1, 1, "same"),
    (8, 8, 1, 2, "valid"),
    (7, 9, 1, 2, "valid"),
    (7, 7, 3, 1, "same"),
    (9, 9, 3, 2, "valid"),
    (8, 10, 3, 2, "valid"),
    (11, 11, 5, 3, "valid"),
    (6, 6, 2, 2, "valid"),
]
ALWAYS = {"bfloat16": ((1, 2, 3), 10**6), "float32": ((1, 2, 3), 10**6)}
NEVER = {}


@pytest.fixture
def rules(monkeypatch):
    """Sets `MATMUL_WEIGHT_GRADIENT_RULES` for one test."""

    def set_rules(value):
        monkeypatch.setattr(conv_lib, "MATMUL_WEIGHT_GRADIENT_RULES", value)

    return set_rules


def _pair(policy, kernel, stride, padding, cin=5, cout=6, seed=0):
    ours = Conv2D(cout, kernel, strides=stride, padding=padding, dtype=policy)
    ref = keras.layers.Conv2D(
        cout, kernel, strides=stride, padding=padding, dtype=policy
    )
    rng = np.random.default_rng(seed)
    for layer in (ours, ref):
        layer.build((None, None, None, cin))
    weights = [
        rng.normal(0, 0.3, ours.kernel.shape).astype("float32"),
        rng.normal(0, 0.3, (cout,)).astype("float32"),
    ]
    ours.set_weights(weights)
    ref.set_weights(weights)
    return ours, ref


def _forward_backward(layer, x, fn=None):
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.cast(layer(x, training=True), tf.float32)
            # A non-uniform output gradient.
            w = tf.reshape(
                tf.cast(tf.range(tf.size(y)) % 7, tf.float32), tf.shape(y)
            )
            loss = tf.reduce_sum(y * w) / 7.0
        gx, gw, gb = tape.gradient(
            loss, [x, layer.kernel.value, layer.bias.value]
        )
        return y, gx, gw, gb

    out = run(x) if fn is None else fn(run)(x)
    return [np.asarray(t, np.float32) for t in out]


def _relative(a, b):
    # Largest difference relative to the largest magnitude (0 when equal).
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


@pytest.mark.parametrize("h,w,kernel,stride,padding", SHAPES)
def test_gradients_equal_keras_float32(rules, h, w, kernel, stride, padding):
    rules(ALWAYS)
    ours, ref = _pair("float32", kernel, stride, padding)
    x = tf.constant(random_images((2, h, w, 5), seed=h * w))
    assert ours._use_matmul_gradient(x)
    got = _forward_backward(ours, x)
    want = _forward_backward(ref, x)
    for name, a, b in zip(("y", "dx", "dw", "db"), got, want, strict=True):
        assert a.shape == b.shape, name
        assert _relative(a, b) < 2e-6, (name, _relative(a, b))


def _float32_kernel_gradient(layer, x):
    """The kernel gradient of `_forward_backward` summed in float32 from
    the same bfloat16 operands: the input, the weights and the output
    gradient rounded to bfloat16 as the mixed_bfloat16 layer rounds them."""

    def bf16(t):
        return tf.cast(tf.cast(t, tf.bfloat16), tf.float32)

    ref = keras.layers.Conv2D(
        layer.filters, layer.kernel_size, layer.strides, layer.padding
    )
    ref.build(x.shape)
    ref.set_weights([bf16(v).numpy() for v in layer.get_weights()])
    with tf.GradientTape() as tape:
        y = ref(bf16(x))
        w = tf.reshape(
            tf.cast(tf.range(tf.size(y)) % 7, tf.float32), tf.shape(y)
        )
        loss = tf.reduce_sum(y * bf16(w * (1.0 / 7.0)))
    return tape.gradient(loss, ref.kernel.value).numpy()


@pytest.mark.parametrize("h,w,kernel,stride,padding", SHAPES[::2])
def test_gradients_equal_keras_bfloat16(rules, h, w, kernel, stride, padding):
    """The forward pass, the input and the bias gradients are Keras' own
    ops; the kernel gradient is one float32 sum rounded to bfloat16: within
    about one rounding of the float32 sum of the same bfloat16 operands,
    and never further from it than Keras' `Conv2DBackpropFilter`, which
    sums in bfloat16 on CPUs without bfloat16 instructions (AVX2 only:
    2.7 % off on 7 x 7 pointwise, against 0.4 % for ours)."""
    rules(ALWAYS)
    policy = keras.DTypePolicy("mixed_bfloat16")
    ours, ref = _pair(policy, kernel, stride, padding)
    x = tf.constant(random_images((2, h, w, 5), seed=h * w))
    assert ours._use_matmul_gradient(tf.cast(x, tf.bfloat16))
    got = _forward_backward(ours, x)
    want = _forward_backward(ref, x)
    for name, a, b in zip(
        ("y", "dx", "db"), got[:2] + got[3:], want[:2] + want[3:], strict=True
    ):
        assert a.shape == b.shape, name
        assert _relative(a, b) == 0.0, (name, _relative(a, b))
    exact = _float32_kernel_gradient(ours, x)
    assert got[2].shape == exact.shape
    ours_off, keras_off = _relative(got[2], exact), _relative(want[2], exact)
    assert ours_off <= 2**-7, ours_off
    assert ours_off <= keras_off + 2**-9, (ours_off, keras_off)


def test_xla_and_unknown_spatial_size(rules):
    """One trace for every size (the odd one pads the last window), and
    under XLA: the same gradients as Keras."""
    rules(ALWAYS)
    ours, ref = _pair("float32", 3, 2, "valid")
    spec = tf.TensorSpec((None, None, None, 5), tf.float32)
    for jit in (False, True):

        def compile_(run, jit=jit):
            return tf.function(run, input_signature=[spec], jit_compile=jit)

        for h, w in ((9, 9), (8, 11)):
            x = tf.constant(random_images((2, h, w, 5), seed=h + w))
            got = _forward_backward(ours, x, compile_)
            want = _forward_backward(ref, x)
            for a, b in zip(got, want, strict=True):
                assert _relative(a, b) < 2e-6


def _gradient_ops(layer, shape, dtype=tf.float32):
    if not layer.built:
        layer.build(shape)

    @tf.function
    def grads(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.cast(layer(x, training=True), tf.float32))
        return tape.gradient(loss, layer.kernel.value)

    graph = grads.get_concrete_function(tf.TensorSpec(shape, dtype)).graph
    return {op.type for op in graph.get_operations()}


@pytest.mark.parametrize(
    "policy,kernel,stride,size,matmul",
    [
        # bfloat16: every pointwise conv; 3 x 3 up to 14 x 14 outputs.
        ("mixed_bfloat16", 1, 1, 56, True),
        ("mixed_bfloat16", 1, 2, 56, True),
        ("mixed_bfloat16", 3, 1, 14, True),
        ("mixed_bfloat16", 3, 1, 15, False),
        # float32: strided pointwise; 3 x 3 up to 7 x 7 outputs.
        ("float32", 1, 1, 14, False),
        ("float32", 1, 2, 14, True),
        ("float32", 3, 1, 7, True),
        ("float32", 3, 1, 8, False),
    ],
)
def test_rules_pick_the_weight_gradient(policy, kernel, stride, size, matmul):
    layer = Conv2D(
        4,
        kernel,
        strides=stride,
        padding="valid" if stride > 1 else "same",
        dtype=policy,
    )
    ops = _gradient_ops(layer, (2, size, size, 8))
    assert ("MatMul" in ops) == matmul, ops
    assert ("Conv2DBackpropFilter" in ops) != matmul, ops


def test_off_for_inference_frozen_dilated_unknown_and_switched(monkeypatch):
    policy = keras.DTypePolicy("mixed_bfloat16")
    shape = (2, 7, 7, 8)
    layer = Conv2D(4, 1, dtype=policy)
    layer.build(shape)
    assert layer._use_matmul_gradient(tf.zeros(shape, tf.bfloat16))
    assert "MatMul" in _gradient_ops(layer, shape)
    # Inference keeps Keras' graph (one Conv2D, no custom gradient).
    fn = tf.function(lambda t: layer(t, training=False))
    graph = fn.get_concrete_function(tf.TensorSpec(shape)).graph
    ops = [op.type for op in graph.get_operations()]
    assert "IdentityN" not in ops and ops.count("Conv2D") == 1
    # A frozen layer, dilation, an unknown output size for a 3 x 3, and
    # the switch off: TensorFlow's own weight gradient.
    assert "MatMul" not in _gradient_ops(
        Conv2D(4, 1, trainable=False, dtype=policy), shape
    )
    assert "MatMul" not in _gradient_ops(
        Conv2D(4, 3, dilation_rate=2, padding="same", dtype=policy), shape
    )
    assert "MatMul" not in _gradient_ops(
        Conv2D(4, 3, padding="same", dtype=policy), (2, None, None, 8)
    )
    monkeypatch.setattr(conv_lib, "MATMUL_WEIGHT_GRADIENT", False)
    assert "MatMul" not in _gradient_ops(Conv2D(4, 1, dtype=policy), shape)


@pytest.mark.slow  # over 2 s on 2 cores
def test_resnet50_step_equals_tensorflow_weight_gradient(monkeypatch):
    """One SGD step of a small ResNet-50 (every conv of the model, bf16
    rules forced onto float32): the same loss and weights either way."""
    monkeypatch.setattr(
        conv_lib, "MATMUL_WEIGHT_GRADIENT_RULES", {"float32": ALWAYS["float32"]}
    )
    x = tf.constant(random_images((2, 64, 64, 3), seed=3))
    y = tf.constant([1, 3])
    results = []
    for on in (True, False):
        monkeypatch.setattr(conv_lib, "MATMUL_WEIGHT_GRADIENT", on)
        keras.utils.set_random_seed(0)
        model = build_model("resnet50", num_classes=5, base_width=8)
        assert sum(isinstance(c, Conv2D) for c in model.layers) == 53
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(
                    y, model(x, training=True), from_logits=True
                )
            )
        grads = tape.gradient(loss, model.trainable_variables)
        keras.optimizers.SGD(0.1).apply(grads, model.trainable_variables)
        results.append(
            (float(loss), [v.numpy() for v in model.trainable_variables])
        )
    (loss_a, weights_a), (loss_b, weights_b) = results
    assert loss_a == pytest.approx(loss_b, rel=1e-6)
    worst = max(
        _relative(a, b) for a, b in zip(weights_a, weights_b, strict=True)
    )
    assert worst < 1e-5
