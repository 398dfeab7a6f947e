"""The recipe's loss against hand-computed values on every Keras backend
(`make test` runs this folder under TensorFlow and JAX)."""

import math

import keras
import numpy as np
import pytest

from assemble_tf.data.postprocess import normalize_batch
from assemble_tf.training import losses, schedules


def np_(x):
    return keras.ops.convert_to_numpy(x)


LOGITS = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], np.float32)


def test_soft_cross_entropy_by_hand():
    targets = np.array([[0.0, 0.0, 1.0], [0.5, 0.25, 0.25]], np.float32)
    # log(e^1 + e^2 + e^3) - 3 and, for uniform logits, log(3).
    lse = math.log(math.e + math.e**2 + math.e**3)
    expected = [lse - 3.0, math.log(3.0)]
    np.testing.assert_allclose(
        np_(losses.soft_cross_entropy(targets, LOGITS)), expected, rtol=1e-6
    )


def test_distillation_is_t_squared_times_ce_of_softened_logits():
    teacher = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]], np.float32)
    t = 2.0
    z = LOGITS / t
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    expected = -(t * t) * (teacher * log_p).sum(-1)
    np.testing.assert_allclose(
        np_(losses.distillation_loss(teacher, LOGITS, t)), expected, rtol=1e-6
    )


def test_recipe_loss_sums_ce_and_kd_over_the_global_batch():
    batch = {
        "targets": np.array([[0, 0, 1], [1, 0, 0]], np.float32),
        "teacher_probs": np.array([[0, 1, 0], [0, 0, 1]], np.float32),
    }
    lse = math.log(math.e + math.e**2 + math.e**3)
    ce = (lse - 3.0) + math.log(3.0)
    kd = (lse - 2.0) + math.log(3.0)  # T = 1: the CE against the teacher
    # Two replicas: each divides by the global batch of 4.
    value = losses.recipe_loss(batch, LOGITS, 1.0, 4)
    assert float(np_(value)) == pytest.approx((ce + kd) / 4, rel=1e-6)
    no_kd = losses.recipe_loss(batch, LOGITS.astype("float16"), 0.0, 2)
    assert float(np_(no_kd)) == pytest.approx(ce / 2, rel=1e-3)


def test_weight_decay_is_half_the_sum_of_squares():
    values = [np.array([1.0, -2.0], np.float32), np.full((2, 2), 3.0)]
    # 1e-4 * (1 + 4 + 4 * 9) / 2
    value = losses.weight_decay_loss(values, 1e-4)
    assert float(np_(value)) == pytest.approx(1e-4 * 41 / 2, rel=1e-6)
    assert float(np_(losses.weight_decay_loss(values, 0.0))) == 0.0


def test_normalize_batch_subtracts_the_imagenet_mean():
    images = np.full((1, 2, 2, 3), 200, np.uint8)
    out = np_(normalize_batch(images, "float32"))
    np.testing.assert_allclose(
        out[0, 0, 0], [200 - 123.68, 200 - 116.78, 200 - 103.94], rtol=1e-6
    )
    half = normalize_batch(images, "bfloat16", stddev=(2.0, 2.0, 2.0))
    assert keras.backend.standardize_dtype(half.dtype) == "bfloat16"


def test_schedules_by_hand():
    lr = schedules.WarmupSchedule(0.4, 10, 10, warmup_epochs=1)
    # 10 warm-up steps, then cosine over 90 to 0.
    values = [float(np_(lr(s))) for s in (0, 5, 10, 55, 100, 120)]
    np.testing.assert_allclose(
        values, [0.0, 0.2, 0.4, 0.2, 0.0, 0.0], atol=1e-7
    )
    keep = [
        float(np_(schedules.dropblock_keep_prob(s, 100, 1.0, 0.9)))
        for s in (0, 50, 100, 200)
    ]
    np.testing.assert_allclose(keep, [1.0, 0.95, 0.9, 0.9], rtol=1e-6)
