"""The training loop and binaries end to end on tiny data."""

import dataclasses
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from assemble_tf import config as config_lib
from tests import testing_utils
from tests.conftest import REPO
from tests.training.conftest import TINY_SYNTHETIC

TINY_FLAGS = [
    "--preset=resnet50",
    "--base_width=8",
    "--block_sizes=1,1,1,1",
    "--num_classes=4",
    "--image_size=32",
    "--eval_preprocessing=imagenet_32",
    "--batch_size=16",
    "--warmup_epochs=0",
    "--base_learning_rate=0.05",
    "--bn_momentum=0.9",
    "--log_every=1",
]


def test_bad_flags_exit_with_a_clear_message(tmp_path, tiny_data):
    cases = [
        ([f"--model_dir={tmp_path}/a", "--preset=resnet51"], "resnet51"),
        (
            [
                f"--model_dir={tmp_path}/b",
                f"--data_dir={tiny_data}",
                "--base_learning_rate=-1",
            ],
            "--base_learning_rate=-1.0 is invalid",
        ),
        (
            [f"--model_dir={tmp_path}/c", "--data_dir=/no/such/data"],
            "--data_dir='/no/such/data' is invalid: no such directory",
        ),
        (
            # Before: XLA's UnimplementedError ("GPU MaxPool gradient ops
            # do not yet have a deterministic XLA implementation") at the
            # first step.
            [
                f"--model_dir={tmp_path}/d",
                "--synthetic",
                "--jit_compile",
                "--deterministic",
            ],
            "ERROR: --jit_compile with --deterministic: TensorFlow's op "
            "determinism has no XLA kernel for the MaxPool gradient",
        ),
    ]
    for args, message in cases:
        assert args[0].startswith("--model_dir=")
        result = testing_utils.run_main("tools.train", *args)
        assert result.returncode == 2, result.stderr[-2000:]
        assert message in result.stderr, result.stderr[-2000:]
        (line,) = result.stderr.strip().splitlines()  # one ERROR line
        assert line.startswith("ERROR: ")
        model_dir = args[0].split("=", 1)[1]
        assert not os.path.exists(os.path.join(model_dir, "config.json"))


def _weights(model_dir):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(
        tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    )
    names = sorted(
        n
        for n in reader.get_variable_to_shape_map()
        if n.startswith("model/") and "OPTIMIZER" not in n
    )
    return {n: reader.get_tensor(n) for n in names}


@pytest.mark.slow
def test_kill_and_resume_matches_an_uninterrupted_run(tmp_path, tiny_data):
    common = [
        *TINY_FLAGS,
        f"--data_dir={tiny_data}",
        "--epochs=3",
        "--deterministic",
        "--seed=3",
        "--shuffle_buffer=64",
        "--mixup_type=1",
        "--label_smoothing=0.1",
    ]
    # The uninterrupted run and the resume in process (the kill needs a
    # process of its own).
    straight = str(tmp_path / "straight")
    result = testing_utils.run_main(
        "tools.train", *common, f"--model_dir={straight}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 12  # 64 // 16 x 3 epochs

    killed = str(tmp_path / "killed")
    # The state file names a checkpoint once its files are complete (the
    # index appears before it: a kill between the two resumes nothing).
    first = os.path.join(killed, "checkpoints", "checkpoint")
    appeared, _, stderr = testing_utils.kill_binary_when(
        first, "tools.train", *common, f"--model_dir={killed}"
    )
    assert appeared
    # A real process up to its first checkpoint: no TensorFlow start-up
    # block, no absl INFO line per checkpoint (test_first_run.py item 9).
    assert "epoch 1/3" in stderr
    for noise in ("InitializeLog", "cuInit", "functional_saver", "I0000"):
        assert noise not in stderr, stderr[-2000:]
    resumed = testing_utils.run_main(
        "tools.train", *common, f"--model_dir={killed}"
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resumed from" in resumed.stderr
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["steps"] == 12
    a, b = _weights(straight), _weights(killed)
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:
        np.testing.assert_allclose(
            a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name
        )
    history = json.load(open(os.path.join(killed, "history.json")))
    assert [r["epoch"] for r in history] == [1, 2, 3]
    # One TensorBoard point per tag and step, as the uninterrupted run's
    # (before: the killed process's points after its checkpoint stayed
    # beside the resumed run's).
    from tests.training.test_summaries import scalars

    def steps(run):
        logs = os.path.join(run, "logs", "train")
        return {tag: [s for s, _ in p] for tag, p in scalars(logs).items()}

    assert steps(killed) == steps(straight) != {}


@pytest.mark.slow
def test_ctrl_c_and_sigterm_print_one_line_naming_where_a_rerun_resumes(
    tmp_path,
):
    import signal

    model_dir = tmp_path / "run"
    args = (
        "tools.train",
        "--preset=resnet50",
        "--base_width=8",
        "--block_sizes=1,1,1,1",
        "--num_classes=4",
        "--image_size=32",
        "--synthetic",
        "--num_train_examples=32",
        "--batch_size=16",
        "--epochs=100000",
        "--warmup_epochs=0",
        "--steps_per_loop=1",
        f"--model_dir={model_dir}",
    )
    appeared, code, stderr = testing_utils.kill_binary_when(
        model_dir / "checkpoints" / "checkpoint",  # after the first save
        *args,
        signal_number=signal.SIGINT,
    )
    assert appeared
    assert code == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    lines = [line for line in stderr.splitlines() if "Interrupted" in line]
    assert len(lines) == 1, stderr[-3000:]
    assert "rerun the same command to resume after epoch " in lines[0]
    # On a line of its own (it was glued to the progress bar's).
    assert lines[0].startswith("Interrupted. Training stopped at step ")
    assert "/checkpoints/ckpt-" in lines[0]
    # The rerun resumes; SIGTERM (a preempted machine) after its first
    # epoch: a checkpoint within the epoch, one line, the exit code of a
    # process SIGTERM stopped (before: killed at once, no word).
    epoch = int(re.search(r"/checkpoints/ckpt-(\d+)", lines[0]).group(1))
    appeared, code, stderr = testing_utils.kill_binary_when(
        model_dir / "checkpoints" / f"ckpt-{epoch + 1}.index",
        *args,
        signal_number=signal.SIGTERM,
    )
    assert appeared
    assert code == 143, stderr[-3000:]
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if "SIGTERM" in line]
    assert len(lines) == 1, stderr[-3000:]
    match = re.fullmatch(
        r"Terminated\. Training stopped on SIGTERM at step (\d+) \(\d of "
        r"the 2 steps of epoch \d+\) and saved (\S+); rerun the same "
        r"command to resume from there\.",
        lines[0],
    )
    assert match, lines[0]
    step, prefix = match.groups()
    assert prefix == str(
        model_dir / "checkpoints" / "preempted" / f"ckpt-{step}"
    )
    assert os.path.isfile(prefix + ".index")


def _tiny_config(model_dir, data_dir, bn_momentum, **train):
    """A tiny R50's run config on the tiny records (batch 16)."""
    return config_lib.make_config(
        str(model_dir),
        "resnet50",
        {
            "model": {
                "base_width": 8,
                "block_sizes": "1,1,1,1",
                "bn_momentum": bn_momentum,
            },
            "data": {
                "data_dir": data_dir,
                "num_classes": 4,
                "image_size": 32,
                "eval_preprocessing": "imagenet_32",
            },
            "train": {
                "batch_size": 16,
                "warmup_epochs": 0.0,
                "base_learning_rate": 0.05,
                **train,
            },
        },
    )


@pytest.mark.slow  # trains or compiles
def test_nan_loss_stops_and_keeps_the_last_checkpoint(tmp_path, tiny_data):
    import tensorflow as tf

    from assemble_tf.runs import runtime
    from assemble_tf.training import trainer as trainer_lib

    cfg = _tiny_config(tmp_path, tiny_data, 0.9, epochs=2.0)
    strategy = runtime.setup_runtime(cfg)
    trainer = trainer_lib.Trainer(cfg, strategy, log=lambda s: None)
    trainer.plan = dataclasses.replace(trainer.plan, total_steps=4)  # epoch 1
    trainer.train()
    saved = trainer.backend.latest_checkpoint
    assert saved.endswith("ckpt-1")
    before = open(saved + ".index", "rb").read()
    kernel = trainer.model.get_layer("head_dense").kernel
    kernel.assign(tf.fill(kernel.shape, float("nan")))
    trainer.plan = dataclasses.replace(trainer.plan, total_steps=8)
    trainer.restore = lambda: False  # keep the poisoned weights
    with pytest.raises(
        trainer_lib.NonFiniteLossError,
        match=r"Loss is nan in steps 5-8 \(epoch 2\)",
    ) as error:
        trainer.train()
    assert str(error.value).endswith(f"The last good checkpoint is {saved}.")
    assert trainer.backend.latest_checkpoint == saved
    assert open(saved + ".index", "rb").read() == before
    # Before any checkpoint (before: "The last good checkpoint is None.").
    fresh = dataclasses.replace(cfg, model_dir=str(tmp_path / "fresh"))
    trainer = trainer_lib.Trainer(fresh, strategy, log=lambda s: None)
    kernel = trainer.model.get_layer("head_dense").kernel
    kernel.assign(tf.fill(kernel.shape, float("nan")))
    with pytest.raises(trainer_lib.NonFiniteLossError) as error:
        trainer.train()
    assert str(error.value).endswith(
        "(epoch 1); stopping. No checkpoint was written yet."
    )


def _one_and_two_replica_steps(tmp_path):
    """One training step of a tiny R50 on one replica with the global batch
    [X, X], and on two replicas with X each (so the per-replica BN
    statistics equal the global ones), from the same weights."""
    import keras
    import tensorflow as tf

    from assemble_tf.training import trainer as trainer_lib

    # A fixed initialisation: the float reduction-order difference depends
    # on the weights (unseeded runs measured 8e-7 .. 3e-5, one of them over
    # the bound; seed 0: 1.2e-6).
    keras.utils.set_random_seed(0)
    overrides = json.loads(json.dumps(TINY_SYNTHETIC))
    del overrides["train"]["max_steps"], overrides["train"]["seed"]
    cfg = config_lib.make_config(str(tmp_path), "resnet50", overrides)
    rng = np.random.default_rng(0)
    half = rng.integers(0, 255, (4, 32, 32, 3)).astype("uint8")
    labels = np.array([0, 1, 2, 3], "int32")
    targets = np.eye(4, dtype="float32")[labels]

    def one_step(strategy, images, labels, targets, init=None):
        trainer = trainer_lib.Trainer(cfg, strategy, log=lambda s: None)
        if init is not None:
            trainer.model.set_weights(init)
        init = trainer.model.get_weights()
        dist = strategy.experimental_distribute_values_from_function(
            lambda ctx: (
                tf.constant(images),
                {
                    "labels": tf.constant(labels),
                    "targets": tf.constant(targets),
                },
            )
        )

        @tf.function
        def step(data):
            images, batch = data
            return strategy.run(
                trainer.backend._replica_train_step,
                args=(images, batch, tf.constant([1, 2], tf.int64)),
            )

        step(dist)
        return init, trainer.model.get_weights()

    single = tf.distribute.OneDeviceStrategy("/cpu:0")
    init, w1 = one_step(
        single,
        np.concatenate([half, half]),
        np.concatenate([labels, labels]),
        np.concatenate([targets, targets]),
    )
    mirrored = testing_utils.two_replica_strategy()
    _, w2 = one_step(mirrored, half, labels, targets, init)
    moved = max(
        float(np.abs(a - b).max()) for a, b in zip(w1, init, strict=True)
    )
    diff = max(
        float(np.abs(a - b).max()) / max(1.0, float(np.abs(a).max()))
        for a, b in zip(w1, w2, strict=True)
    )
    return {"moved": moved, "diff": diff}


@pytest.mark.slow
def test_two_replica_step_equals_one_replica_step(tmp_path):
    out = _one_and_two_replica_steps(tmp_path)
    assert out["moved"] > 1e-3  # the step really changed the weights
    # Loss scaling is right when the cross-replica gradient sum equals the
    # single-replica mean; float reduction order bounds the difference,
    # relative to the variable's scale (the first BN's moving variance is
    # ~18, and oneDNN's fused BN kernel computes batch moments to ~1e-6
    # relative: 1.1e-5 to 2.7e-5 absolute there).
    assert out["diff"] < 1e-5


@pytest.mark.slow  # builds two trainers
def test_replicas_moving_statistics_are_averaged_before_eval_and_save(
    tmp_path,
):
    """Each replica updates its own copy of the BN moving statistics from
    its half of the batch; `sync` (before every evaluation and checkpoint)
    makes every copy their mean, and the moving means then equal those of
    one replica stepping on the whole batch. Before: the copies drifted
    apart, each replica evaluated with its own, and a checkpoint kept
    replica 0's."""
    import keras
    import tensorflow as tf

    from assemble_tf.training import trainer as trainer_lib

    keras.utils.set_random_seed(0)
    overrides = json.loads(json.dumps(TINY_SYNTHETIC))
    del overrides["train"]["max_steps"], overrides["train"]["seed"]
    cfg = config_lib.make_config(str(tmp_path), "resnet50", overrides)
    rng = np.random.default_rng(0)
    halves = rng.integers(0, 255, (2, 4, 32, 32, 3)).astype("uint8")
    halves[1] //= 4  # darker: other moments
    labels = np.array([0, 1, 2, 3], "int32")
    targets = np.eye(4, dtype="float32")[labels]

    def stepped(strategy, images, init=None):
        trainer = trainer_lib.Trainer(cfg, strategy, log=lambda s: None)
        if init is not None:
            trainer.model.set_weights(init)
        trainer.init = trainer.model.get_weights()
        n = len(images) // strategy.num_replicas_in_sync
        data = strategy.experimental_distribute_values_from_function(
            lambda ctx: (
                tf.constant(images[ctx.replica_id_in_sync_group * n :][:n]),
                {
                    "labels": tf.constant(np.resize(labels, n)),
                    "targets": tf.constant(np.resize(targets, (n, 4))),
                },
            )
        )

        @tf.function
        def step(data):
            return strategy.run(
                trainer.backend._replica_train_step,
                args=(*data, tf.constant([1, 2], tf.int64)),
            )

        step(data)
        return trainer

    whole = np.concatenate(list(halves))
    one = stepped(tf.distribute.OneDeviceStrategy("/cpu:0"), whole)
    two = stepped(testing_utils.two_replica_strategy(), whole, one.init)
    layer = two.model.get_layer("stem_1_bn")
    local = two.strategy.experimental_local_results

    def copies(v):
        return [np.asarray(c) for c in local(v.value)]

    before = copies(layer.moving_mean)
    assert np.abs(before[0] - before[1]).max() > 1e-3  # drifted apart
    two.backend.sync()
    for v in (layer.moving_mean, layer.moving_variance):
        a, b = copies(v)
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(
        copies(layer.moving_mean)[0], (before[0] + before[1]) / 2, rtol=1e-6
    )
    # Halves of equal size: the mean of the two batch means is the whole
    # batch's, so the first BN's moving means (its input, the stem conv of
    # the images, is the same in both) are one replica's on the whole
    # batch. (Deeper, each replica normalized with its own moments.)
    np.testing.assert_allclose(
        np.asarray(layer.moving_mean),
        np.asarray(one.model.get_layer("stem_1_bn").moving_mean),
        rtol=1e-4,
        atol=1e-6,
    )


@pytest.mark.slow  # trains an epoch on two replicas
def test_a_two_replica_run_reports_the_model_it_saves(tmp_path, tiny_data):
    """The epoch's validation figures of a 2-replica run are those
    tools.evaluate gets from its checkpoint on one device (before: each
    replica evaluated with its own drifted BN statistics, the checkpoint
    kept replica 0's, and the two disagreed: 5.014 against 5.269)."""
    from assemble_tf.evaluation import run as eval_run
    from assemble_tf.training import trainer as trainer_lib

    run = tmp_path / "run"
    # A fast moving average: the replicas' copies part at once.
    cfg = _tiny_config(run, tiny_data, 0.5, epochs=1.0, eval_batch_size=8)
    run.mkdir()
    cfg.to_json(str(run / "config.json"))
    trainer = trainer_lib.Trainer(
        cfg, testing_utils.two_replica_strategy(), log=lambda s: None
    )
    (record,) = trainer.train()
    report = eval_run.evaluate_model(
        eval_run.EvaluateOptions(
            model_dir=str(run), batch_size=8, progress=False
        )
    )
    assert report["count"] == record["val_count"] == 16
    assert report["loss"] == pytest.approx(record["val_loss"], rel=1e-5)
    assert report["top1"] == record["val_top1"]


@pytest.mark.slow  # builds two trainers
def test_each_replica_mixes_with_its_own_draws(tmp_path, monkeypatch):
    """The seed each replica's step gets (its Mixup / CutMix draws) is
    its own, [base, step * replicas + replica]; one replica's is the
    step's. Before: every replica got [base, step], and drew the same
    lambdas and boxes as the others."""
    import tensorflow as tf

    from assemble_tf.training import step_lib
    from assemble_tf.training import trainer as trainer_lib

    def seed_as_loss(config, parts, images, batch, seed, logits_fn, *_):
        logits = logits_fn(tf.cast(images, tf.float32))
        loss = tf.cast(seed[1], tf.float32) + 0.0 * tf.reduce_sum(logits)
        return loss, tf.constant(0.0)

    monkeypatch.setattr(step_lib, "step_loss", seed_as_loss)
    cfg = config_lib.make_config(str(tmp_path), "resnet50", TINY_SYNTHETIC)
    images = np.zeros((2, 32, 32, 3), "uint8")
    batch = {"labels": np.zeros(2, "int32"), "targets": np.eye(4)[[0, 0]]}
    seeds = {}
    for name, strategy in (
        ("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
        ("two", testing_utils.two_replica_strategy()),
    ):
        trainer = trainer_lib.Trainer(cfg, strategy, log=lambda s: None)
        data = strategy.experimental_distribute_values_from_function(
            lambda ctx: (
                tf.constant(images),
                {k: tf.constant(v) for k, v in batch.items()},
            )
        )

        @tf.function
        def step(data, trainer=trainer, strategy=strategy):
            return strategy.run(
                trainer.backend._replica_train_step,
                args=(*data, tf.constant([7, 3], tf.int64)),
            )

        totals = strategy.experimental_local_results(step(data)[0])
        seeds[name] = [float(t) for t in totals]
    assert seeds == {"one": [3.0], "two": [6.0, 7.0]}


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multi_worker_mirrored_completes_three_steps(tmp_path):
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = dict(
            os.environ,
            TF_CPP_MIN_LOG_LEVEL="3",
            CUDA_VISIBLE_DEVICES="",
            TF_CONFIG=json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            ),
        )
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tools.train",
                    *TINY_FLAGS,
                    "--synthetic",
                    "--num_train_examples=64",
                    "--epochs=1",
                    "--max_steps=3",
                    "--batch_size=8",
                    "--distribution_strategy=multi_worker_mirrored",
                    f"--model_dir={tmp_path / 'mw'}",
                ],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    chief = json.loads(outputs[0][0].strip().splitlines()[-1])
    assert chief["steps"] == 3
    assert os.path.exists(tmp_path / "mw" / "checkpoints" / "ckpt-1.index")
    history = json.load(open(tmp_path / "mw" / "history.json"))
    assert history[-1]["step"] == 3


@pytest.mark.slow
def test_mixed_float16_mirrored_run_then_evaluate_tool(tmp_path, tiny_data):
    run_dir = str(tmp_path / "fp16")
    result = testing_utils.run_main(
        "tools.train",
        *TINY_FLAGS,
        f"--data_dir={tiny_data}",
        "--epochs=1",
        "--mixed_precision=mixed_float16",
        "--distribution_strategy=mirrored",
        f"--model_dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    # 4 batches ran; dynamic loss scaling may skip the first update(s)
    # while it calibrates (Keras does not count a skipped step).
    assert summary["epochs"] == 1 and 1 <= summary["steps"] <= 4
    assert np.isfinite(summary["train_loss"])
    ev = testing_utils.run_main(
        "tools.evaluate", f"--model_dir={run_dir}", "--batch_size=5"
    )
    assert ev.returncode == 0, ev.stderr[-3000:]
    out = json.loads(ev.stdout.strip().splitlines()[-1])
    assert out["count"] == 16  # 5 + 5 + 5 + 1: the partial batch counts
    assert 0.0 <= out["top1"] <= out["top5"] <= 1.0
    assert 0.0 <= out["ece"] <= 1.0
    # The same numbers the training loop reported for the same checkpoint.
    assert out["top1"] == pytest.approx(summary["top1"], abs=1e-6)
    assert os.path.getsize(out["reliability_png"]) > 1000
    assert out["checkpoint"].endswith("ckpt-1")


def test_warm_start_reinitialises_the_head_and_resets_bn(tmp_path):
    from assemble_tf.models import build_model
    from assemble_tf.runs.warm_start import warm_start_model

    tiny = {"base_width": 8, "block_sizes": (1, 1, 1, 1)}
    source = build_model("resnet50", num_classes=1001, **tiny)
    bn = source.get_layer("stage1_block1_1_bn")
    bn.moving_mean.assign(np.full(bn.moving_mean.shape, 0.5, "float32"))
    path = str(tmp_path / "source.weights.h5")
    source.save_weights(path)
    target = build_model("resnet50", num_classes=7, **tiny)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warm_start_model(target, path, load_head=False, keep_bn_stats=False)
    # Keras' "Skipping nested container ... retain their freshly-initialized
    # weights" after the intended head skip is silenced: every weight but
    # the head's (and the reset BN statistics) did load.
    assert not [w for w in caught if "nested container" in str(w.message)]
    for a, b in zip(target.weights, source.weights, strict=True):
        if a.path.startswith("head_dense") or "moving_" in a.path:
            continue
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert target.get_layer("head_dense").kernel.shape == (256, 7)
    assert np.all(target.get_layer("head_dense").bias.numpy() == 0)
    assert np.all(
        target.get_layer("stage1_block1_1_bn").moving_mean.numpy() == 0
    )
    same = build_model("resnet50", num_classes=1001, **tiny)
    warm_start_model(same, path, load_head=True, keep_bn_stats=True)
    np.testing.assert_array_equal(
        same.get_layer("head_dense").kernel.numpy(),
        source.get_layer("head_dense").kernel.numpy(),
    )
    assert np.all(
        same.get_layer("stage1_block1_1_bn").moving_mean.numpy() == 0.5
    )
    with pytest.raises(FileNotFoundError, match="`warm_start`"):
        warm_start_model(same, str(tmp_path / "missing.weights.h5"))


def test_the_epochs_skip_warning_reads_the_counters_once():
    """The pipeline reads ahead while the epoch record is written (CI saw
    "skipped 2 ... (3 not decodable ...)"): count and kinds must come
    from one reading, and agree with the history record."""
    import types

    from assemble_tf.data.input_pipeline import PipelineStats
    from assemble_tf.training import trainer as trainer_lib

    class Ahead:  # a counter the pipeline raises between two reads
        def __init__(self):
            self.value = 0

        def numpy(self):
            self.value += 1
            return self.value

    stats = PipelineStats()
    stats.undecodable = Ahead()
    state = trainer_lib._EpochState(1, 4, 0, stats=stats)
    state.steps = state.done = 4
    logged = []
    fake = types.SimpleNamespace(
        config=types.SimpleNamespace(
            train=types.SimpleNamespace(batch_size=8),
            data=types.SimpleNamespace(synthetic=False),
        ),
        plan=types.SimpleNamespace(lr_schedule=lambda step: 0.1, num_train=64),
        step=8,
        log=logged.append,
        backend=types.SimpleNamespace(keep_prob=lambda: None),
    )
    record = trainer_lib.Trainer._epoch_record(fake, state, 2.0)
    assert record["train_records_skipped"] == 1
    assert record["train_images_per_sec"] == 16.0
    assert logged == [
        "WARNING: epoch 2 skipped 1 unusable training records "
        "(1 not decodable; counted as read, records read ahead included)."
    ]


def test_step_images_per_sec_is_the_rate_since_the_last_scalar(monkeypatch):
    """A first loop of 10 s (tracing, input warm-up), then loops of 1 s:
    the step scalar says 1.6, then 16 images/s (before: the average since
    the epoch's start, 2.9 for the second, climbing within every epoch);
    the progress bar shows the last loop's rate."""
    import types

    from assemble_tf.training import trainer as trainer_lib

    clock = [0.0]
    monkeypatch.setattr(trainer_lib.time, "perf_counter", lambda: clock[0])
    scalars = []
    fake = types.SimpleNamespace(
        config=types.SimpleNamespace(
            train=types.SimpleNamespace(
                batch_size=8, steps_per_loop=2, log_every=2
            ),
        ),
        plan=types.SimpleNamespace(lr_schedule=lambda step: 0.1),
        step=0,
    )
    durations = iter([10.0, 1.0, 1.0])

    def train_loop(iterator, seed, n):
        clock[0] += next(durations)
        fake.step += n
        return 1.0, 0.0

    fake.backend = types.SimpleNamespace(train_loop=train_loop)
    writer = types.SimpleNamespace(
        scalars=lambda step, values: scalars.append(values)
    )
    state = trainer_lib._EpochState(0, 6, 0)
    for _ in range(3):
        trainer_lib.Trainer._run_loop(fake, state, None, 0, writer, 0.0)
    rates = [v["step/train_images_per_sec"] for v in scalars]
    assert rates == pytest.approx([1.6, 16.0, 16.0])
    assert state.loop_rate == pytest.approx(16.0)
    assert state.rate == pytest.approx(48 / 12)  # the epoch's average


@pytest.mark.slow  # trains
def test_a_resume_on_a_training_split_of_another_size_is_refused(
    tmp_path, tiny_data
):
    """The records rebuilt with more images under a run: it resumed
    without a word, the learning rate rose again and never reached 0 (the
    schedule re-planned on the new count). The history records each
    epoch's images; a resume on another count is refused."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    args = [
        "tools.train",
        *TINY_FLAGS,
        f"--data_dir={data}",
        "--epochs=1",
        f"--model_dir={tmp_path / 'run'}",
    ]
    first = testing_utils.run_main(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    history = json.load(open(tmp_path / "run" / "history.json"))
    assert history[-1]["train_images"] == 64
    shutil.copy(
        data / "train-00000-of-00001", data / "train-00001-of-00001"
    )  # 128 training images now
    again = testing_utils.run_main(*args)
    assert testing_utils.error_line(again) == (
        f"ERROR: --data_dir={data} now holds 128 training images, and the "
        "run was trained on 64 (its learning-rate and DropBlock schedules, "
        "epochs and steps are planned on them): resume it on the data it "
        "started on, or train a new --model_dir with --warm_start from "
        "this run."
    )
    os.remove(data / "train-00001-of-00001")
    same = testing_utils.run_main(*args)  # the data it started on
    assert same.returncode == 0, same.stderr[-3000:]
    # The same records at another path (before: refused as another
    # configuration, and unresumable once the old path was gone).
    moved = tmp_path / "moved"
    data.rename(moved)
    elsewhere = testing_utils.run_main(
        *[a.replace(str(data), str(moved)) for a in args]
    )
    assert elsewhere.returncode == 0, elsewhere.stderr[-3000:]
    assert (
        "Resuming with other settings of where the data is or how the loop "
        f"runs (not of what it trains): --data_dir: '{data}' -> '{moved}'."
    ) in elsewhere.stderr
    moved.rename(data)
    # A class renamed (before: the rerun resumed, its logit 1 trained as
    # "green" went on as "lime", and class_names.txt was rewritten).
    labels = data / "labels.txt"
    labels.write_text(labels.read_text().replace("green", "lime"))
    renamed = testing_utils.run_main(*args)
    assert testing_utils.error_line(renamed) == (
        f"ERROR: --data_dir={data} names the classes otherwise than the "
        f"run's {tmp_path / 'run' / 'class_names.txt'} (logit 1: 'green' "
        "before, 'lime' now): resume it on the data it started on, or train "
        "a new --model_dir with --warm_start from this run."
    )
    assert "green" in (tmp_path / "run" / "class_names.txt").read_text()
    # Its head warm-started on the renamed data: said (before: silent).
    args[-1] = f"--model_dir={tmp_path / 'head'}"
    head = testing_utils.run_main(
        *args,
        f"--warm_start={tmp_path / 'run'}",
        "--warm_start_head",
        "--max_steps=1",
    )
    assert head.returncode == 0, head.stderr[-3000:]
    assert (
        f"WARNING: the head comes from a run whose {tmp_path / 'run'}/"
        "class_names.txt names the logits otherwise than the data (logit 1: "
        "'green' before, 'lime' now): each logit starts as the run's class "
        "of that index."
    ) in head.stderr
