"""The training controller on every Keras backend: loops of
--steps_per_loop steps with one host read each, and (JAX) the recipe on two
data-parallel devices (`make test` runs this folder under TensorFlow and
under JAX with two virtual CPU devices)."""

import keras
import numpy as np
import pytest

from assemble_tf import config as config_lib
from assemble_tf.runs import runtime
from assemble_tf.training import trainer as trainer_lib
from tests.training.conftest import TINY_SYNTHETIC

TINY = {
    "model": {"base_width": 8, "block_sizes": "2,2,2,1"},
    "data": TINY_SYNTHETIC["data"],  # 64 synthetic 32-px images, 4 classes
}


def _config(model_dir, preset="resnet50", train=None, **groups):
    overrides = {k: dict(v) for k, v in TINY.items()}
    overrides["train"] = {
        "batch_size": 16,
        "epochs": 2.0,
        "warmup_epochs": 0.0,
        "base_learning_rate": 0.05,
        **(train or {}),
    }
    overrides.update(groups)
    return config_lib.make_config(str(model_dir), preset, overrides)


@pytest.mark.slow  # trains
def test_the_loss_is_read_once_per_loop(tmp_path, monkeypatch):
    cfg = _config(tmp_path, train={"steps_per_loop": 3, "log_every": 2})
    trainer = trainer_lib.Trainer(
        cfg, runtime.setup_runtime(cfg), log=lambda s: None
    )
    reads, loops = [], []
    to_host = trainer_lib.to_host
    monkeypatch.setattr(
        trainer_lib,
        "to_host",
        lambda *values: reads.append(len(values)) or to_host(*values),
    )
    train_loop = trainer.backend.train_loop
    trainer.backend.train_loop = lambda it, seed, n: (
        loops.append(n) or train_loop(it, seed, n)
    )
    history = trainer.train()
    # 4 steps per epoch in loops of 3 + 1 (loops end at epoch ends).
    assert loops == [3, 1, 3, 1]
    assert reads == [2, 2, 2, 2]  # loss and weight decay, once per loop
    assert trainer.step == 8
    assert [r["step"] for r in history] == [4, 8]
    assert all(np.isfinite(r["train_loss"]) for r in history)


def _jax_devices():
    if keras.backend.backend() != "jax":
        return 0
    import jax

    return jax.local_device_count()


@pytest.mark.slow  # trains twice
@pytest.mark.skipif(_jax_devices() < 2, reason="JAX with 2 devices only")
def test_two_devices_train_the_recipe_like_one(tmp_path):
    """Mixup type 1, label smoothing, KD and DropBlock on two virtual
    devices (DataParallel, batch sharded) give the one-device weights: GSPMD
    computes the same global batch statistics and mean loss."""
    weights, placements = {}, {}
    for strategy in ("off", "mirrored"):
        cfg = _config(
            tmp_path / strategy,
            "assemble_resnet50",
            train={
                "epochs": 1.0,
                "max_steps": 2,
                "steps_per_loop": 2,
                "dropblock_keep_prob": "0.8,0.8",
            },
            runtime={"distribution_strategy": strategy},
        )
        assert cfg.augment.mixup_type == 1 and cfg.train.kd_temperature > 0
        try:
            rt = runtime.setup_runtime(cfg)
            trainer = trainer_lib.Trainer(cfg, rt, log=lambda s: None)
            init = [
                np.asarray(v.value) for v in trainer.model.trainable_variables
            ]
            trainer.train()
            placements[strategy] = len(
                trainer.model.trainable_variables[0].value.sharding.device_set
            )
            weights[strategy] = [
                np.asarray(v.value) for v in trainer.model.trainable_variables
            ]
        finally:
            keras.distribution.set_distribution(None)
    assert placements == {"off": 1, "mirrored": 2}

    def largest_difference(a, b):
        return max(
            float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True)
        )

    assert largest_difference(init, weights["off"]) > 1e-3  # it trained
    assert largest_difference(weights["off"], weights["mirrored"]) < 1e-4


@pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="TensorFlow-only options: JAX"
)
def test_tensorflow_only_options_under_jax_name_the_alternative(tmp_path):
    from tests import testing_utils

    result = testing_utils.run_main(
        "tools.train",
        "--preset=resnet50",
        "--synthetic",
        "--num_classes=4",
        "--distribution_strategy=tpu",
        f"--model_dir={tmp_path / 'tpu'}",
    )
    assert result.returncode != 0
    assert "--distribution_strategy=tpu is TensorFlow-only" in result.stderr
    assert "--distribution_strategy=mirrored" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "tpu" / "config.json").exists()
