"""Runs trained under KERAS_BACKEND=jax, checked by their consumers.

The user story of the JAX step (assemble_tf.training.jax_step): train under
JAX, resume after `kill -9`, then evaluate, export and serve the run under
TensorFlow. Each JAX run is a real `python -m tools.train` process; the
TensorFlow side is the tools and `saved_model_cli run` (the session loader
TF Serving uses), in other processes.
"""

import json
import os

import numpy as np
import pytest

from tests import testing_utils
from tests.training.conftest import TINY_CLASS_NAMES, shared_once

JAX = testing_utils.JAX_ENV
FLAGS = [
    # R50-D + SK with the recipe's Mixup, LS and DropBlock schedule: the
    # tiny Assemble-R50 (Big-Little needs 2,2,2,1 blocks, AutoAugment) took
    # 10 s more per process. Its whole recipe trains under JAX in
    # tests/training/test_benchmark_training.py (jax.jit, no TensorFlow).
    "--preset=table7_e6",
    "--base_width=8",
    "--block_sizes=1,1,1,1",
    "--num_classes=4",
    "--image_size=32",
    "--eval_preprocessing=imagenet_32",
    "--batch_size=16",
    "--warmup_epochs=0",
    "--base_learning_rate=0.05",
    "--kd_temperature=0",  # the tiny records carry no teacher logits
    "--dropblock_keep_prob=0.9,0.8",
    "--epochs=3",  # the kill after epoch 1 leaves two to run
    "--steps_per_loop=3",
    "--deterministic",
    "--seed=5",
    "--shuffle_buffer=64",
]


def _train(model_dir, data_dir, env=JAX):
    return testing_utils.run_binary(
        "tools.train",
        *FLAGS,
        f"--data_dir={data_dir}",
        f"--model_dir={model_dir}",
        env=env,
    )


@pytest.fixture(scope="session")
def jax_run(tmp_path_factory, tiny_data):
    """The JAX run, trained once per test run whichever worker asks."""

    def train(folder):
        result = _train(str(folder / "run"), tiny_data)
        assert result.returncode == 0, result.stderr[-3000:]

    return str(shared_once(tmp_path_factory, "jax_run", train) / "run")


def _state(prefix):
    with np.load(prefix + ".state.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.mark.slow
def test_jax_run_resumes_after_kill_like_an_uninterrupted_one(
    tmp_path, tiny_data, jax_run
):
    killed = str(tmp_path / "killed")
    first = os.path.join(killed, "checkpoints", "ckpt-1.state.npz")
    appeared, _, _ = testing_utils.kill_binary_when(
        first,
        "tools.train",
        *FLAGS,
        f"--data_dir={tiny_data}",
        f"--model_dir={killed}",
        env=JAX,
    )
    assert appeared
    resumed = _train(killed, tiny_data)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resumed from" in resumed.stderr
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 12  # 64 // 16 x 3 epochs
    a = _state(os.path.join(jax_run, "checkpoints", "ckpt-3"))
    b = _state(os.path.join(killed, "checkpoints", "ckpt-3"))
    assert a.keys() == b.keys() and len(a) > 100
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-6, err_msg=key)
    history = json.load(open(os.path.join(killed, "history.json")))
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert history[-1]["dropblock_keep_prob"] == pytest.approx(0.8)


def _validation_jpegs(data_dir):
    import tensorflow as tf

    from assemble_tf.data import schema

    jpegs, labels = [], []
    path = os.path.join(data_dir, "validation-00000-of-00001")
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        example = tf.train.Example.FromString(record)
        feature = example.features.feature
        jpegs.append(feature[schema.IMAGE].bytes_list.value[0])
        labels.append(feature[schema.LABEL].int64_list.value[0])
    return np.array(jpegs, dtype=object), np.array(labels)


@pytest.mark.slow
def test_tensorflow_tools_evaluate_export_and_serve_a_jax_run(
    tmp_path, tiny_data, jax_run
):
    history = json.load(open(os.path.join(jax_run, "history.json")))
    jax_loss = history[-1]["val_loss"]
    # tools.evaluate under TensorFlow (this process) reads the JAX
    # checkpoint; saved_model_cli, a process of its own, serves the export.
    result = testing_utils.run_main("tools.evaluate", f"--model_dir={jax_run}")
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads(result.stdout.strip().splitlines()[-1])
    assert evaluated["checkpoint"].endswith("ckpt-3")
    assert evaluated["count"] == 16
    assert evaluated["loss"] == pytest.approx(jax_loss, rel=1e-4)
    assert evaluated["top1"] == history[-1]["val_top1"]
    # Exported, then served from JPEG bytes by saved_model_cli.
    export = str(tmp_path / "export")
    result = testing_utils.run_main(
        "tools.export_saved_model",
        f"--model_dir={jax_run}",
        f"--export_dir={export}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jpegs, labels = _validation_jpegs(tiny_data)
    np.save(tmp_path / "jpegs.npy", jpegs.astype(bytes))
    result = testing_utils.saved_model_cli_run(
        export,
        "serving_default",
        "images=jpegs.npy",
        tmp_path / "out",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    logits = np.load(tmp_path / "out" / "logits.npy").astype(np.float64)
    # The classes the JAX run kept (tiny_data's labels.txt), served.
    names = np.load(tmp_path / "out" / "class_names.npy", allow_pickle=True)
    assert [n.decode() for n in names] == [
        TINY_CLASS_NAMES[i] for i in logits.argmax(-1)
    ]
    shifted = logits - logits.max(-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    served_loss = -log_p[np.arange(len(labels)), labels].mean()
    assert served_loss == pytest.approx(jax_loss, rel=1e-4)


@pytest.mark.slow
def test_tensorflow_refuses_to_resume_a_jax_run_and_warm_starts_from_it(
    tmp_path, tiny_data, jax_run
):
    import shutil

    copy = str(tmp_path / "copy")
    shutil.copytree(jax_run, copy)
    # tools.train under TensorFlow, in this process.
    result = testing_utils.run_main(
        "tools.train",
        *FLAGS,
        f"--data_dir={tiny_data}",
        f"--model_dir={copy}",
    )
    assert result.returncode != 0
    assert "written under the jax backend" in result.stderr
    assert "Traceback" not in result.stderr

    # Fine-tuning under TensorFlow starts from the JAX run's weights.
    from assemble_tf import config as config_lib
    from assemble_tf.runs import models, warm_start

    config = config_lib.ExperimentConfig.from_json(
        os.path.join(jax_run, "config.json")
    )
    model = models.build_run_model(config)
    warm_start.warm_start_model(model, jax_run, load_head=True)
    weights = model.get_layer("head_dense").kernel.numpy()
    with np.load(
        os.path.join(jax_run, "checkpoints", "ckpt-3.state.npz")
    ) as data:
        stored = [data[k] for k in data.files if k.startswith("model/")]
    assert any(
        v.shape == weights.shape and np.array_equal(v, weights) for v in stored
    )


@pytest.mark.slow
def test_finetune_under_jax_from_a_jax_run(tmp_path, image_folder, jax_run):
    """tools.finetune under JAX: warm start from a JAX run (head
    re-initialised for 3 classes), BN statistics re-estimated on the new
    data, then trained and evaluated on an image folder."""
    result = testing_utils.run_binary(
        "tools.finetune",
        "--preset=table7_e6",
        f"--source={image_folder}",
        f"--warm_start={jax_run}",
        "--base_width=8",
        "--block_sizes=1,1,1,1",
        "--image_size=32",
        "--eval_preprocessing=imagenet_32",
        "--batch_size=4",
        "--max_steps=2",
        "--epochs=1",
        "--warmup_epochs=0",
        "--bn_reestimate_steps=2",
        f"--model_dir={tmp_path / 'ft'}",
        env=JAX,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Warm start from" in result.stderr
    assert "Re-estimated BN statistics" in result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 2 and 0.0 <= summary["top1"] <= 1.0
    assert os.path.isfile(tmp_path / "ft" / "checkpoints" / "ckpt-1.weights.h5")
