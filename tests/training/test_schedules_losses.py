"""Learning rate, DropBlock schedule, losses and weight-decay set."""

import dataclasses
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from assemble_tf.models import build_model
from assemble_tf.training import losses, schedules


def test_warmup_cosine_values():
    # ImageNet at 1024: 1251.14 steps / epoch, 600 epochs, 5 warm-up.
    s = schedules.WarmupSchedule(0.4, 1281167 / 1024, 600, 5)
    assert s.warmup_steps == 6255 and s.total_steps == 750683
    assert float(s(0)) == 0.0
    assert float(s(6255 // 2)) == pytest.approx(0.4 * 3127 / 6255, rel=1e-5)
    assert float(s(6255)) == pytest.approx(0.4, rel=1e-6)
    mid = 6255 + (750683 - 6255) // 2
    assert float(s(mid)) == pytest.approx(0.2, abs=1e-5)
    assert float(s(750683)) == pytest.approx(0.0, abs=1e-7)
    assert float(s(800000)) == pytest.approx(0.0, abs=1e-7)


def test_piecewise_and_constant():
    s = schedules.WarmupSchedule(0.1, 100, 100, 0, "piecewise")
    assert [
        round(float(s(e * 100 + 1)), 8) for e in (0, 29, 30, 60, 80, 90)
    ] == [
        0.1,
        0.1,
        0.01,
        0.001,
        0.0001,
        1e-5,
    ]
    # The original's own formula (functions/model_fns.py): boundaries
    # int(steps per epoch x epoch), each rate kept through its boundary
    # step by tf.train.piecewise_constant (before: dropped a step early on
    # a whole-number boundary), with whole and fractional steps per epoch.
    for steps_per_epoch in (100, 1281167 / 1024, 37 / 3):
        s = schedules.WarmupSchedule(0.4, steps_per_epoch, 95, 0, "piecewise")
        bounds = [int(steps_per_epoch * e) for e in (30, 60, 80, 90)]
        steps = [b + d for b in bounds for d in (-1, 0, 1, 2)] + [0]
        want = [
            tf.compat.v1.train.piecewise_constant(
                tf.constant(t, tf.int64),
                [tf.constant(b, tf.int64) for b in bounds],
                [0.4 * f for f in (1.0, 0.1, 0.01, 0.001, 1e-4)],
            )()
            for t in steps
        ]
        np.testing.assert_allclose(
            [float(s(t)) for t in steps], want, rtol=1e-6
        )
    c = schedules.WarmupSchedule(0.3, 10, 5, 1, "constant")
    assert float(c(5)) == pytest.approx(0.15, rel=1e-6)
    assert float(c(40)) == pytest.approx(0.3, rel=1e-6)
    with pytest.raises(ValueError, match="schedule='step'"):
        schedules.WarmupSchedule(0.1, 10, 5, 1, "step")
    with pytest.raises(ValueError, match="base_learning_rate=-1"):
        schedules.WarmupSchedule(-1, 10, 5)


def test_dropblock_schedule_is_linear():
    def kp(*args):
        return float(schedules.dropblock_keep_prob(*args))

    assert kp(0, 1000) == 1.0
    assert kp(500, 1000) == pytest.approx(0.95)
    assert kp(1000, 1000) == pytest.approx(0.9)
    assert kp(2000, 1000) == pytest.approx(0.9)
    # ImageNet Assemble: 1.0 -> 0.9 over 750,683 steps.
    assert kp(tf.constant(375341, tf.int64), 750683) == pytest.approx(0.95)
    assert kp(250, 1000, 0.9, 0.7) == pytest.approx(0.85)


def test_kd_reduces_to_cross_entropy_and_scales_with_t_squared():
    logits = tf.constant([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]])
    onehot = tf.one_hot([0, 2], 3)
    ce = tf.nn.softmax_cross_entropy_with_logits(onehot, logits).numpy()
    np.testing.assert_allclose(
        losses.distillation_loss(onehot, logits, 1.0).numpy(), ce, rtol=1e-6
    )
    teacher = tf.nn.softmax(tf.constant([[1.0, 0.0, 0.0], [0.0, 1.0, 2.0]]))
    t = 3.0
    manual = -np.sum(
        teacher.numpy() * tf.nn.log_softmax(logits / t).numpy(), axis=-1
    )
    np.testing.assert_allclose(
        losses.distillation_loss(teacher, logits, t).numpy(),
        t * t * manual,
        rtol=1e-6,
    )


def test_soft_cross_entropy_with_smoothed_mixed_targets():
    logits = tf.constant([[1.0, 2.0, 3.0, 4.0]], tf.float16)
    targets = tf.constant([[0.0, 0.3, 0.7, 0.0]]) * 0.9 + 0.1 / 4
    out = losses.soft_cross_entropy(targets, logits)
    assert out.dtype == tf.float32
    logp = np.log(np.exp([1, 2, 3, 4]) / np.exp([1, 2, 3, 4]).sum())
    assert float(out[0]) == pytest.approx(
        -(targets.numpy() * logp).sum(), rel=1e-5
    )


def test_weight_decay_set_excludes_bn_and_includes_fc_bias():
    model = build_model(
        "assemble_resnet50",
        base_width=16,
        block_sizes=(2, 2, 2, 1),
        num_classes=10,
    )
    decayed = losses.decayed_variables(model)
    paths = {v.path for v in decayed}
    assert "head_dense/bias" in paths and "head_dense/kernel" in paths
    assert any(p.endswith("sk/fc1/kernel") for p in paths)
    assert not any("gamma" in p or "beta" in p for p in paths)
    bn = [
        v
        for v in model.trainable_variables
        if v.path.endswith(("gamma", "beta"))
    ]
    assert len(decayed) + len(bn) == len(model.trainable_variables)
    value = losses.weight_decay_loss(decayed, 1e-4)
    expected = (
        1e-4 * 0.5 * sum(float(np.sum(np.square(v.numpy()))) for v in decayed)
    )
    assert float(value) == pytest.approx(expected, rel=1e-5)
    assert float(losses.weight_decay_loss(decayed, 0.0)) == 0.0
    assert math.isfinite(float(value)) and keras.backend.backend() == (
        "tensorflow"
    )


def test_weight_decay_skips_a_frozen_backbone():
    # --freeze_backbone sets trainable=False on the backbone's layers: their
    # weights must leave the L2 term too (Keras keeps a frozen layer's
    # private `_trainable_variables`, which the first version read).
    model = build_model(
        "resnet50", base_width=8, block_sizes=(1, 1, 1, 1), num_classes=3
    )
    everything = len(losses.decayed_variables(model))
    for layer in model.layers:
        if not layer.name.startswith("head"):
            layer.trainable = False
    decayed = losses.decayed_variables(model)
    assert everything > 2
    assert sorted(v.path for v in decayed) == [
        "head_dense/bias",
        "head_dense/kernel",
    ]
    assert [v.path for v in decayed] == [
        v.path for v in model.trainable_variables
    ]


def test_a_split_smaller_than_a_batch_keeps_its_learning_rate(tmp_path):
    """8 images, batch 16, 2 epochs: the loop runs one step an epoch; the
    schedule (num_train / batch_size = 0.5 steps an epoch) ended after the
    first, and the second trained at learning rate 0."""
    from assemble_tf import config as config_lib
    from assemble_tf.training import step_lib

    config = config_lib.make_config(
        str(tmp_path),
        "resnet50",
        {
            "model": {"base_width": 8, "block_sizes": "1,1,1,1"},
            "data": {
                "synthetic": True,
                "num_train_examples": 8,
                "num_classes": 4,
                "image_size": 32,
            },
            "train": {
                "batch_size": 16,
                "epochs": 2.0,
                "warmup_epochs": 0.0,
                "base_learning_rate": 0.1,
                "lr_schedule": "cosine",
            },
        },
    )
    plan = step_lib.make_plan(config)
    assert (plan.steps_per_epoch, plan.total_steps) == (1, 2)
    rates = [float(plan.lr_schedule(step)) for step in range(2)]
    # Cosine over the loop's 2 steps: 0.1, then 0.1 * (1 + cos(pi/2)) / 2.
    np.testing.assert_allclose(rates, [0.1, 0.05], rtol=1e-6)
    # And the trainer says that each batch repeats images.
    from assemble_tf.runs import runtime
    from assemble_tf.training import trainer as trainer_lib

    logged = []
    trainer_lib.Trainer(config, runtime.setup_runtime(config), logged.append)
    assert logged == [
        "WARNING: the training split has 8 images, fewer than one batch of "
        "16: each step repeats images within its batch. A smaller "
        "`batch_size` trains on each image once a step."
    ]
    # The resnet50 preset's step schedule (Table 1's recipe) drops at fixed
    # epochs: a short run is told it never decays (before: not a word).
    step = dataclasses.replace(
        config,
        train=dataclasses.replace(config.train, lr_schedule="piecewise"),
    )
    logged.clear()
    trainer_lib.Trainer(step, runtime.setup_runtime(step), logged.append)
    assert logged[-1] == (
        "WARNING: `lr_schedule`=piecewise drops the learning rate at epochs "
        "30, 60, 80, 90, as the original's step schedule: a run of 2 epochs "
        "never decays. Set `lr_schedule`=cosine for a short run."
    )
    # The schedule's epoch is the loop's, so the learning rate ends where
    # the run does (before: N / B steps, as the original, whose data
    # repeat across epochs; Flowers-102's 1,020 images at 256 ran 300 of
    # the schedule's 398 steps and ended at 16 % of the peak rate).
    config = config_lib.make_config(
        str(tmp_path),
        "resnet50",
        {
            "data": {"synthetic": True, "num_train_examples": 1020},
            "train": {
                "batch_size": 256,
                "epochs": 100.0,
                "lr_schedule": "cosine",
            },
        },
    )
    plan = step_lib.make_plan(config)
    assert (plan.steps_per_epoch, plan.total_steps) == (3, 300)
    schedule = plan.lr_schedule
    assert schedule.steps_per_epoch == 3.0
    peak = float(schedule(15))  # 5 warm-up epochs: 15 steps
    assert peak == pytest.approx(schedule.base_learning_rate)
    # Half-way through the cosine's 285 steps: half the peak; then 0.
    assert float(schedule(15 + 142.5)) == pytest.approx(peak / 2, rel=1e-5)
    assert float(schedule(299)) < 1e-3 * peak
    assert float(schedule(300)) == 0.0
    # ImageNet's 1,281,167 images at 1,024: 1,251 steps per epoch.
    config = config_lib.make_config(
        str(tmp_path),
        "resnet50",
        {
            "data": {"synthetic": True, "num_train_examples": 1281167},
            "train": {"batch_size": 1024},
        },
    )
    assert step_lib.make_plan(config).lr_schedule.steps_per_epoch == 1251


def test_max_steps_stops_the_run_early_without_squeezing_dropblock(tmp_path):
    """Both schedules span --epochs; --max_steps is the start of the same
    run (DropBlock's schedule alone was squeezed into --max_steps, while
    the learning rate followed --epochs)."""
    from assemble_tf import config as config_lib
    from assemble_tf.training import step_lib

    def plan(**train):
        config = config_lib.make_config(
            str(tmp_path),
            "assemble_resnet50",
            {
                "data": {"synthetic": True, "num_train_examples": 64},
                "train": {
                    "batch_size": 16,
                    "epochs": 2.0,
                    "warmup_epochs": 0.0,
                    "kd_temperature": 0.0,
                    "dropblock_keep_prob": "1.0,0.8",
                    **train,
                },
            },
        )
        return step_lib.make_plan(config)

    full, cut = plan(), plan(max_steps=2)
    assert (full.total_steps, cut.total_steps) == (8, 2)
    assert cut.schedule_steps == full.schedule_steps == 8
    for step in (0, 1, 2):
        assert float(cut.keep_prob(step)) == pytest.approx(
            float(full.keep_prob(step))
        )
        assert float(cut.lr_schedule(step)) == pytest.approx(
            float(full.lr_schedule(step))
        )
    assert float(cut.keep_prob(2)) == pytest.approx(0.95)  # 1 - 0.2 * 2/8
