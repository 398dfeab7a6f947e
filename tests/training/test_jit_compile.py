"""`--jit_compile`: the XLA-compiled train step trains like the plain one.

XLA compiles the per-replica step; the iterator is read outside it (XLA has
no IteratorGetNext). Tiny models, a few steps; each compile takes tens of
seconds on CPU, hence `slow`.
"""

import dataclasses
import json

import numpy as np
import pytest

from assemble_tf import config as config_lib
from tests import testing_utils
from tests.training.conftest import TINY_SYNTHETIC as TINY

# Measured on this CPU (3 steps of TINY, XLA compiling as the tests do:
# tests/conftest.py TEST_XLA_FLAGS), XLA vs plain: float32 losses within
# 2.3e-7 relative (2 replicas: 1.9e-6), trainable weights within 2e-6
# (1.6e-5 in 3 of 1,176 stem weights since the synthetic batches are
# uint8 pixels normalized by the step, as real ones: the summation order
# of a 7x7 kernel's gradient over 8 x 32 x 32 pixels, amplified by 3 steps
# at a learning rate of 0.1), BN moving variances within 1.2e-6 relative;
# mixed_float16 losses within 1.9e-3 relative at a learning rate of 0.01
# (2e-4 at XLA's default optimization level; at 0.1 float16 rounding grows
# to 2.7 % in 3 steps, 6e-6 after the first). The tolerances leave room
# for other CPUs.
LOSS_RTOL = 1e-4
WEIGHT_RTOL = 1e-4
WEIGHT_ATOL = 5e-5


def _config(model_dir, preset, overrides, jit_compile):
    groups = {k: dict(v) for k, v in overrides.items()}
    groups["train"]["jit_compile"] = jit_compile
    return config_lib.make_config(str(model_dir), preset, groups)


def _trainer(cfg):
    from assemble_tf.runs import runtime
    from assemble_tf.training import trainer as trainer_lib

    strategy = runtime.setup_runtime(cfg)
    return trainer_lib.Trainer(cfg, strategy, log=lambda s: None)


@pytest.mark.slow  # compiles with XLA
@pytest.mark.parametrize(
    "precision, learning_rate, loss_rtol",
    [("float32", 0.1, LOSS_RTOL), ("mixed_float16", 0.01, 1e-2)],
)
def test_xla_train_run_matches_the_plain_run(
    tmp_path, precision, learning_rate, loss_rtol
):
    """`Trainer.train` end to end (label smoothing, weight decay; loss
    scaling under mixed_float16) with and without XLA, same seed."""
    overrides = json.loads(json.dumps(TINY))
    overrides["train"]["mixed_precision"] = precision
    overrides["train"]["base_learning_rate"] = learning_rate
    runs = {}
    for jit in (False, True):
        cfg = _config(tmp_path / str(jit), "resnet50", overrides, jit)
        trainer = _trainer(cfg)
        history = trainer.train()
        assert trainer.step == 3
        runs[jit] = (history[-1], trainer.model.get_weights())
    (plain, w_plain), (xla, w_xla) = runs[False], runs[True]
    assert np.isfinite(xla["train_loss"])
    np.testing.assert_allclose(
        xla["train_loss"], plain["train_loss"], rtol=loss_rtol
    )
    np.testing.assert_allclose(
        xla["weight_decay_loss"], plain["weight_decay_loss"], rtol=loss_rtol
    )
    if precision == "float32":
        for a, b in zip(w_xla, w_plain, strict=True):
            np.testing.assert_allclose(a, b, rtol=WEIGHT_RTOL, atol=WEIGHT_ATOL)


def _uint8_batches(trainer, steps):
    """The trainer's distributed iterator over fixed uint8 batches (as the
    TFRecord pipeline delivers them: 2x examples for Mixup type 1, teacher
    probabilities for KD, filenames)."""
    import tensorflow as tf

    cfg = trainer.config
    n = cfg.train.batch_size * trainer.post.batch_multiplier
    k = cfg.data.num_classes
    rng = np.random.default_rng(0)
    labels = rng.integers(0, k, (steps, n)).astype("int32")
    logits = rng.normal(size=(steps, n, k))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    images = rng.integers(0, 256, (steps, n, 32, 32, 3)).astype("uint8")
    ds = tf.data.Dataset.from_tensor_slices(
        (
            images,
            {
                "labels": labels,
                "targets": np.eye(k, dtype="float32")[labels],
                "teacher_probs": probs.astype("float32"),
                "filenames": np.full((steps, n), "x.jpg"),
            },
        )
    )
    return iter(trainer.strategy.experimental_distribute_dataset(ds))


# The Assemble recipe (KD, label smoothing, weight decay, DropBlock layers)
# on a tiny R50 with DropBlock layers added: XLA compiles its train step in
# 8 s where the tiny Assemble-R50's took 24-35 s of the suite. The Assemble
# architecture compiles with XLA forward in
# tests/export/test_saved_model.py::test_xla_serving_path_stays_within_tolerance
# and trains (jax.jit: XLA, the whole step) in tests/training/test_jax_runs.py.
R50_WITH_THE_RECIPE = (
    "resnet50",
    {"base_width": 8, "block_sizes": "1,1,1,1", "add_dropblock": True},
)


def _recipe_losses(
    tmp_path,
    augment,
    dropblock_keep_prob,
    model=R50_WITH_THE_RECIPE,
    learning_rate=0.1,
    steps=2,
):
    """Losses of `steps` steps of `model` (preset, overrides) with the
    Assemble recipe (KD, label smoothing, weight decay, DropBlock) plus
    `augment`, without and with XLA; and the DropBlock keep probability
    after them."""
    import tensorflow as tf

    preset, model_overrides = model
    overrides = {
        "model": model_overrides,
        "data": TINY["data"],
        "train": dict(
            TINY["train"],
            max_steps=None,
            batch_size=4,
            dropblock_keep_prob=dropblock_keep_prob,
            kd_temperature=1.0,
            base_learning_rate=learning_rate,
        ),
        "augment": {"label_smoothing": 0.1, **augment},
    }
    losses, keeps = {}, {}
    for jit in (False, True):
        cfg = _config(tmp_path / str(jit), preset, overrides, jit)
        assert cfg.train.kd_temperature > 0 and cfg.augment.label_smoothing
        trainer = _trainer(cfg)
        # The keep probability moves every step.
        trainer.backend.plan = dataclasses.replace(
            trainer.plan, total_steps=steps, schedule_steps=steps
        )
        assert trainer.dropblock_layers
        iterator = _uint8_batches(trainer, steps)
        fn = trainer.train_function()
        seed = tf.constant(7, tf.int64)
        losses[jit] = [
            float(fn(iterator, seed)[0].numpy()) for _ in range(steps)
        ]
        keeps[jit] = float(trainer.dropblock_layers[0].keep_prob_variable)
        # What the history records: the schedule after the steps done
        # (its end here), as the JAX step reports it (before: the last
        # step's value, 0.95 where JAX said 0.9).
        end = float(dropblock_keep_prob.split(",")[1])
        assert trainer.backend.keep_prob() == pytest.approx(end)
    assert np.all(np.isfinite(losses[True]))
    return losses, keeps


@pytest.mark.slow  # compiles with XLA
def test_xla_step_with_kd_label_smoothing_and_dropblock_layers(tmp_path):
    """No random draws (no Mixup, DropBlock keeping everything): the XLA
    step computes the plain step's losses."""
    losses, keeps = _recipe_losses(tmp_path, {"mixup_type": 0}, "1.0,1.0")
    assert keeps == {False: 1.0, True: 1.0}
    np.testing.assert_allclose(losses[True], losses[False], rtol=LOSS_RTOL)


@pytest.mark.slow  # compiles with XLA
def test_xla_step_with_cutmix_and_the_dropblock_schedule(tmp_path):
    """The full recipe with CutMix type 1 and DropBlock 1.0 -> 0.9 trains
    under XLA. Its draws differ: XLA's stateless random ops give other
    numbers than TensorFlow's kernels for the same seed (the same
    distributions), so the losses agree only roughly (measured: 2.4 % after
    one step, 2.0 % after two at this learning rate)."""
    losses, keeps = _recipe_losses(
        tmp_path,
        {"mixup_type": 1, "mixup_mode": "cutmix"},
        "1.0,0.9",
        learning_rate=0.01,  # the tiny R50 swings at 0.1 (-45 % .. +46 %)
    )
    # Set before each step from the step counter: 1.0, then 0.95.
    assert keeps[True] == keeps[False] == pytest.approx(0.95)
    np.testing.assert_allclose(losses[True], losses[False], rtol=0.1)


@pytest.mark.slow  # compiles with XLA
def test_xla_under_a_two_replica_mirrored_strategy(tmp_path):
    """Several replicas: XLA computes the gradients, the optimizer's
    cross-replica sum runs outside (a merge_call cannot run inside a nested
    tf.function)."""
    from assemble_tf.runs import runtime
    from assemble_tf.training import trainer as trainer_lib

    overrides = json.loads(json.dumps(TINY))
    overrides["train"]["max_steps"] = 2
    out = {}
    for jit in (False, True):
        cfg = _config(tmp_path / str(jit), "resnet50", overrides, jit)
        runtime.setup_runtime(cfg)  # the seed: the same initial weights
        strategy = testing_utils.two_replica_strategy()
        trainer = trainer_lib.Trainer(cfg, strategy, log=lambda s: None)
        history = trainer.train()
        out[jit] = {
            "loss": history[-1]["train_loss"],
            "step": trainer.step,
            "weights": trainer.model.get_weights()[:4],
        }
    plain, xla = out[False], out[True]
    assert plain["step"] == xla["step"] == 2
    assert np.isfinite(xla["loss"])
    np.testing.assert_allclose(xla["loss"], plain["loss"], rtol=LOSS_RTOL)
    for a, b in zip(xla["weights"], plain["weights"], strict=True):
        np.testing.assert_allclose(a, b, rtol=WEIGHT_RTOL, atol=WEIGHT_ATOL)
