"""The training controller on every Keras backend: loops of
--steps_per_loop steps with one host read each, and (JAX) the recipe on two
data-parallel devices (`make test` runs this folder under TensorFlow and
under JAX with two virtual CPU devices)."""

import logging

import keras
import numpy as np
import pytest

from assemble_tf import config as config_lib
from assemble_tf.runs import runtime
from assemble_tf.training import trainer as trainer_lib
from official.utils.misc.validation import OptionError
from tests.training import conftest as training_conftest
from tests.training.conftest import TINY_SYNTHETIC

TINY = {
    "model": {"base_width": 8, "block_sizes": "1,1,1,1"},
    "data": TINY_SYNTHETIC["data"],  # 64 synthetic 32-px images, 4 classes
}


def _config(model_dir, preset="resnet50", train=None, **groups):
    overrides = {k: dict(v) for k, v in TINY.items()}
    overrides["train"] = {
        "batch_size": 16,
        "epochs": 2.0,
        "warmup_epochs": 0.0,
        "base_learning_rate": 0.05,
        # A schedule that decays within 2 epochs (resnet50's own drops at
        # epoch 30, and the trainer says so).
        "lr_schedule": "cosine",
        **(train or {}),
    }
    overrides.update(groups)
    return config_lib.make_config(str(model_dir), preset, overrides)


@pytest.mark.slow  # trains
def test_the_loss_is_read_once_per_loop(tmp_path, monkeypatch):
    cfg = _config(tmp_path, train={**DETERMINISTIC, "log_every": 2})
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
    weights = [np.asarray(v.value) for v in trainer.model.weights]
    _continues_a_run_max_steps_cut(tmp_path.parent / "cut", weights)
    _resumes_of_a_damaged_run(tmp_path)


DETERMINISTIC = {"steps_per_loop": 3, "deterministic": True, "seed": 3}


def _continues_a_run_max_steps_cut(folder, whole):
    """max_steps stops a run early, as the start of the same run: a rerun
    with no max_steps trains the rest of the epoch it cut first, replaces
    that epoch's record, and ends with the weights of `whole`, a run that
    never stopped (before: the rerun was refused as another
    configuration)."""
    import json

    from assemble_tf.training import train_lib

    def run(**more):
        cfg = _config(folder, train={**DETERMINISTIC, **more})
        logged = []
        trainer = trainer_lib.Trainer(
            cfg, runtime.setup_runtime(cfg), log=logged.append
        )
        return cfg, trainer, trainer.train(), logged

    cfg, trainer, history, _ = run(max_steps=6)
    assert trainer.step == 6 and [r["step"] for r in history] == [4, 6]
    # A rerun at or under the step reached says so (before: the old
    # summary again, without a word of why).
    _, again, _, logged = run(max_steps=5)
    assert again.step == 6
    assert logged[1] == (
        "Nothing to train: the run is at step 6, and this one ends at step "
        "5 (max_steps, else epochs x steps per epoch)."
    )
    cfg.to_json(str(folder / "config.json"))  # as tools.train writes it
    rest = _config(folder, train=DETERMINISTIC)
    changed = train_lib.check_resume(rest)
    assert [c.as_flag() for c in changed] == ["--max_steps: 6 -> None"]
    # A larger max_steps within the epoch stops there again (before: the
    # rerun trained to the end of the epoch, past its max_steps).
    _, trainer, history, logged = run(max_steps=7)
    assert logged[1] == (
        "Epoch 2 ran 2 of its 4 steps before max_steps stopped it: "
        "training 1 more of them (max_steps ends this run at step 7)."
    )
    assert trainer.step == 7 and [r["step"] for r in history] == [4, 7]
    _, trainer, history, logged = run()
    assert logged[1] == (
        "Epoch 2 ran 3 of its 4 steps before max_steps stopped it: "
        "training the other 1."
    )
    assert trainer.step == 8 and [r["step"] for r in history] == [4, 8]
    stored = json.loads((folder / "history.json").read_text())
    assert [(r["epoch"], r["step"]) for r in stored] == [(1, 4), (2, 8)]
    weights = [np.asarray(v.value) for v in trainer.model.weights]
    for a, b in zip(whole, weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def _resumes_of_a_damaged_run(run):
    """Resuming a run whose newest checkpoint is damaged or gone, or whose
    history.json is: one line naming the file and the fix, or a fallback
    with a warning (before: tracebacks; a deleted TensorFlow checkpoint
    still listed in `checkpoint` could not be resumed at all)."""
    import glob
    import json
    import os
    import shutil

    def trainer(folder, **train):
        cfg = _config(folder, train={**DETERMINISTIC, **train})
        logged = []
        out = trainer_lib.Trainer(
            cfg, runtime.setup_runtime(cfg), log=logged.append
        )
        return out, logged

    # No checkpoint at all beside a history of epochs: refused (before:
    # trained from epoch 1 over the run's history and best/).
    gone = run.parent / "no_checkpoints"
    shutil.copytree(run, gone)
    shutil.rmtree(gone / "checkpoints")
    t, _ = trainer(gone)
    with pytest.raises(ValueError) as error:
        t.prepare()
    assert str(error.value) == (
        f"`model_dir`={gone} holds a run of 2 epoch(s) (history.json) but "
        f"no checkpoint to resume from in {gone / 'checkpoints'}: restore "
        "its checkpoints from a copy to resume, or pass a new `model_dir` "
        "to train from the start."
    )
    copy = run.parent / "damaged"
    shutil.copytree(run, copy)
    ckpts = copy / "checkpoints"
    newest = str(ckpts / "ckpt-2")
    files = sorted(glob.glob(newest + ".*"))
    biggest = max(files, key=os.path.getsize)
    with open(biggest, "r+b") as f:
        f.truncate(os.path.getsize(biggest) // 2)
    t, _ = trainer(copy)
    with pytest.raises(ValueError) as error:
        t.prepare()
    message = str(error.value)
    assert message.startswith(f"{newest} cannot be read (")
    assert message.endswith(
        f"its files are damaged or incomplete. Delete ckpt-2.* in {ckpts} "
        "and rerun to resume from the checkpoint before it, or train into "
        "a new model_dir."
    )
    assert "\n" not in message
    for name in files:
        os.remove(name)
    t, logged = trainer(copy)
    t.prepare()
    assert t.step == 4 and t.backend.epoch == 1
    resumed = f"Resumed from {ckpts / 'ckpt-1'} (epoch 1, step 4)."
    if keras.backend.backend() == "tensorflow":  # still listed there
        assert logged == [
            f"WARNING: {newest}, the newest checkpoint listed, has no "
            f"files; resumed from {ckpts / 'ckpt-1'}, the newest that has.",
            resumed,
        ]
        # The `checkpoint` state file deleted (or not copied with the
        # run): resumed from the files (before: trained from the start
        # over them).
        os.remove(ckpts / "checkpoint")
        t, logged = trainer(copy)
        t.prepare()
        assert t.step == 4 and logged == [
            f"WARNING: {ckpts}/checkpoint listed no checkpoint (deleted, or "
            f"not copied with the run); resumed from {ckpts / 'ckpt-1'}, the "
            "newest in the folder.",
            resumed,
        ]
        # Stopped while TensorFlow saved the first checkpoint (its shards
        # in ckpt-1_temp/, the history written first): trained from the
        # start, said (before: refused as a run whose checkpoints were
        # gone, and its error's "rerun" could not resume).
        first = run.parent / "first_save_cut"
        part = first / "checkpoints" / "ckpt-1_temp" / "part-00000-of-00001"
        part.parent.mkdir(parents=True)
        part.with_suffix(".data-00000-of-00001").write_bytes(b"cut")
        stored = json.loads((copy / "history.json").read_text())
        (first / "history.json").write_text(json.dumps(stored[:1]))
        t, logged = trainer(first)
        t.prepare()
        cut = first / "checkpoints" / "ckpt-1"
        assert t.step == 0 and logged == [
            f"WARNING: {cut} is incomplete (a save cut short, or a file "
            "deleted); no whole checkpoint is left.",
            "The run was stopped while it saved its first checkpoint "
            f"({cut}): training from the start.",
        ]
    else:
        assert logged == [resumed]
        # The steps run come from the checkpoint, not from the optimizer's
        # iterations, which lag where a loss-scaled (mixed_float16) step
        # was skipped: a resume from them ran a step behind (step 3).
        names = [v.path for v in t.optimizer.variables]
        index = names.index(t.optimizer.iterations.path)
        state = str(ckpts / "ckpt-1.state.npz")
        with np.load(state) as data:
            arrays = {k: data[k] for k in data.files}
        assert int(arrays["step"]) == 4
        arrays[f"optimizer/{index:05d}"] = np.asarray(3, np.int64)
        np.savez(state, **arrays)
        t, _ = trainer(copy)
        t.prepare()
        assert t.step == 4
        # The weights file, which only the TensorFlow tools read, cut
        # short: rewritten from the state the resume read (before: the
        # resume went on and tools.evaluate of the run failed on it).
        weights = str(ckpts / "ckpt-1.weights.h5")
        with open(weights, "r+b") as f:
            f.truncate(1000)
        t, logged = trainer(copy)
        t.prepare()
        assert logged[0].startswith(
            f"WARNING: {ckpts / 'ckpt-1'}.weights.h5 could not be opened "
            "(OSError: Unable to synchronously open file (truncated file"
        ), logged
        assert logged[0].endswith(
            f"rewritten from {ckpts / 'ckpt-1'}.state.npz, the checkpoint "
            "the run resumed from."
        )
        t.model.load_weights(weights)  # whole again
        t, logged = trainer(copy)
        t.prepare()
        assert logged == [resumed]
        # A newer checkpoint with its weights file only (a kill between
        # its two renames, or its state deleted): the resume falls back,
        # and says so (before: without a word).
        shutil.copy(weights, ckpts / "ckpt-2.weights.h5")
        t, logged = trainer(copy)
        t.prepare()
        assert logged == [
            f"WARNING: {ckpts / 'ckpt-2'} is incomplete (a save cut short, "
            "or a file deleted); resumed from "
            f"{ckpts / 'ckpt-1'}, the newest whole one.",
            resumed,
        ]
        assert t.step == 4
        # Stopped while saving its first checkpoint (its history written
        # first): trained from the start, said (before: refused as a run
        # whose checkpoints were gone).
        first = run.parent / "first_save_cut"
        (first / "checkpoints").mkdir(parents=True)
        shutil.copy(weights, first / "checkpoints" / "ckpt-1.weights.h5")
        stored = json.loads((copy / "history.json").read_text())
        (first / "history.json").write_text(json.dumps(stored[:1]))
        t, logged = trainer(first)
        t.prepare()
        assert t.step == 0
        cut = first / "checkpoints" / "ckpt-1"
        assert logged == [
            f"WARNING: {cut} is incomplete (a save cut short, or a file "
            "deleted); no whole checkpoint is left.",
            f"The run was stopped while it saved its first checkpoint "
            f"({cut}): training from the start.",
        ]
    # history.json damaged: named with the fix, before any step; deleted:
    # a warning that the curves lack the epochs trained.
    history = copy / "history.json"
    for text in ('[{"epoch": 1, ', '{"epoch": 1}'):
        history.write_text(text)
        t, _ = trainer(copy)
        with pytest.raises(ValueError, match="restore it from a copy") as e:
            t.train()
        assert str(e.value).startswith(f"{history} is not ")
    history.unlink()
    t, logged = trainer(copy, max_steps=4)  # nothing left to train
    t.train()
    assert logged[-1] == (
        f"WARNING: {history} has no record of 1 of the 1 epochs trained "
        "(deleted or replaced?): the history and training curves lack them."
    )


@pytest.mark.slow  # over 2 s on 2 cores
def test_synthetic_batches_are_as_large_as_real_ones(tmp_path):
    """Mixup type 1 mixes pairs: the step gets 2 x 16 synthetic images and
    trains on 16, as on real data (before: 16, of which it trained on 8
    while the run counted 16 per step)."""
    cfg = _config(tmp_path, "table7_e3")  # R50-D, LS + Mixup type 1
    assert cfg.augment.mixup_type == 1 and cfg.data.synthetic
    trainer = trainer_lib.Trainer(
        cfg, runtime.setup_runtime(cfg), log=lambda s: None
    )
    element = next(iter(trainer.backend.dataset(1)))
    images = element[0]
    if hasattr(images, "values"):  # a tf.distribute PerReplica
        images = images.values[0]
    assert tuple(images.shape) == (32, 32, 32, 3)
    assert keras.backend.standardize_dtype(images.dtype) == "uint8"
    mixed, batch = trainer.post({**element[1], "images": images}, [1, 2])
    assert tuple(mixed.shape)[0] == 16 and tuple(batch["targets"].shape) == (
        16,
        4,
    )


def _jax_devices():
    if keras.backend.backend() != "jax":
        return 0
    import jax

    return jax.local_device_count()


@pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="the JAX runtime only"
)
def test_the_jax_runtime_keeps_tensorflow_off_the_gpus(
    tmp_path, monkeypatch, caplog
):
    """tf.data feeds a JAX run; TensorFlow's GPUs are hidden before it
    runs an op, or a warning says it set them up before (and may hold
    their memory)."""
    from official.utils.logs import startup

    seen = []
    kept = [True, False]
    monkeypatch.setattr(
        startup,
        "keep_tensorflow_off_gpus",
        lambda tf: seen.append(tf.__name__) or kept.pop(0),
    )
    cfg = _config(tmp_path)
    with caplog.at_level(logging.WARNING):
        runtime.setup_runtime(cfg)
        assert not caplog.records
        runtime.setup_runtime(cfg)
    assert seen == ["tensorflow", "tensorflow"]
    assert [r.getMessage()[:40] for r in caplog.records] == [
        "TensorFlow set up its GPUs before this J"
    ]


@pytest.mark.slow  # trains twice
@pytest.mark.skipif(_jax_devices() < 2, reason="JAX with 2 devices only")
def test_two_devices_train_the_recipe_like_one(tmp_path):
    """Mixup type 1, label smoothing, KD and DropBlock (the recipe of
    Table 7's E8, on a tiny R50-D + SK) on two virtual devices
    (DataParallel, batch sharded) give the one-device weights: GSPMD
    computes the same global batch statistics and mean loss."""
    weights, placements = {}, {}
    for strategy in ("off", "mirrored"):
        cfg = _config(
            tmp_path / strategy,
            "table7_e8",
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
            assert trainer.dropblock_layers  # stages 3 and 4
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


@pytest.mark.slow  # one binary in a process of its own
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
    # --jit_compile under JAX: accepted and ignored, then it blocked a
    # resume without it.
    result = testing_utils.run_main(
        "tools.train",
        "--preset=resnet50",
        "--synthetic",
        "--num_classes=4",
        "--jit_compile",
        f"--model_dir={tmp_path / 'jit'}",
    )
    assert result.returncode != 0
    assert (
        "--jit_compile is TensorFlow's switch: under JAX every training "
        "step is XLA-compiled already (jax.jit); leave --jit_compile out."
    ) in result.stderr
    # tools.benchmark_training refuses it before any work (before: after
    # measuring the matmul peak).
    from assemble_tf.training import benchmark

    with pytest.raises(OptionError, match="TensorFlow's switch"):
        benchmark.Options(presets=("resnet50",), jit_compile=True).validate()
    # --num_gpus=0 is TensorFlow's "the CPU"; under JAX it meant all
    # devices, silently.
    result = testing_utils.run_main(
        "tools.train",
        "--preset=resnet50",
        "--synthetic",
        "--num_classes=4",
        "--distribution_strategy=mirrored",
        "--num_gpus=0",
        f"--model_dir={tmp_path / 'cpu'}",
    )
    assert result.returncode != 0
    assert (
        "--num_gpus=0 (the CPU) is TensorFlow's convention; under JAX, set "
        "JAX_PLATFORMS=cpu to train on the CPU and leave --num_gpus out."
    ) in result.stderr
    assert "Traceback" not in result.stderr
    # --num_gpus with no GPU: JAX counted the CPU devices and trained on
    # them without a word (a GPU machine with the CPU build of jax).
    with pytest.raises(OptionError) as error:
        runtime.setup_runtime(
            _config(
                tmp_path / "gpus",
                runtime={"distribution_strategy": "mirrored", "num_gpus": 1},
            )
        )
    assert error.value.as_flag() == (
        "--num_gpus=1 asks for GPUs and JAX sees none (the CPU build of jax, "
        'or no visible GPU): install the CUDA build (pip install "jax[cuda13]"'
        ", docs/training.md), or leave --num_gpus out to train on the CPU."
    )
    if _jax_devices() >= 2:  # a batch the devices cannot split: the fix
        with pytest.raises(OptionError) as error:
            runtime.setup_runtime(
                _config(
                    tmp_path / "odd",
                    train={"batch_size": 15},
                    runtime={"distribution_strategy": "mirrored"},
                )
            )
        assert error.value.as_flag() == (
            f"--batch_size=15 is not divisible by the {_jax_devices()} "
            "devices of --distribution_strategy=mirrored: use a multiple of "
            f"{_jax_devices()}, or fewer devices (--num_gpus)."
        )
    # A TensorFlow-only binary under KERAS_BACKEND=jax (still exported
    # after training under JAX): one line, not a traceback.
    from official.utils.flags import core as flags_core

    with pytest.raises(ValueError) as error:
        flags_core.require_tensorflow_backend("tools.evaluate")
    assert str(error.value) == (
        "tools.evaluate runs under TensorFlow, and KERAS_BACKEND=jax is set: "
        "run it with KERAS_BACKEND unset (or =tensorflow); it reads runs "
        "trained under any backend."
    )
    # Binaries that read no runs say what holds for them (before: the
    # sentence above, under the converter and the op profiler too).
    refused = testing_utils.run_main(
        "tools.profile_inference", "--preset=resnet50"
    )
    assert refused.returncode == 2
    assert "under KERAS_BACKEND=jax time the families with " in (refused.stderr)
    checked = flags_core.checked_main(lambda argv: 0, tensorflow_only="X.")
    with pytest.raises(ValueError, match=r"\(or =tensorflow\); X\.$"):
        checked(["tools/convert_original_checkpoint.py"])
    result = testing_utils.run_binary(
        "tools.export_saved_model",
        f"--model_dir={tmp_path}",
        f"--export_dir={tmp_path / 'export' / '1'}",
    )
    assert testing_utils.error_line(result) == (
        "ERROR: tools.export_saved_model runs under TensorFlow, and "
        "KERAS_BACKEND=jax is set: run it with KERAS_BACKEND unset (or "
        "=tensorflow); it reads runs trained under any backend."
    )


class _LogLines(logging.Handler):
    """Collects the messages of a logger's records."""

    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.mark.slow  # trains three times
def test_sigterm_stops_within_an_epoch_and_the_rerun_ends_as_without_it(
    tmp_path, tmp_path_factory
):
    """A preempted machine's SIGTERM: the run saves where it is within the
    epoch and stops; the rerun skips the records the epoch had used and
    ends with the weights, losses and metrics of an uninterrupted run
    (before: killed, and the rerun repeated the whole epoch)."""
    import json
    import os
    import signal
    import time

    from official.utils.misc import interrupts

    tiny_data = str(  # the tiny records of tests/training, shared
        training_conftest.shared_once(
            tmp_path_factory, "tiny_data", training_conftest._write_tiny_data
        )
    )

    def config(folder):
        return _config(
            folder,
            train={
                "steps_per_loop": 1,
                "deterministic": True,
                "seed": 5,
                # Random masks: their generator's state is checkpointed
                # (under TensorFlow it was not, and no resume matched).
                "dropblock_keep_prob": "0.9,0.7",
            },
            model={
                "base_width": 8,
                "block_sizes": "1,1,1,1",
                "add_dropblock": True,
            },
            data={
                "data_dir": tiny_data,  # 64 train images: 4 steps of 16
                "num_classes": 4,
                "image_size": 32,
                "eval_preprocessing": "imagenet_32",
                "shuffle_buffer": 64,
            },
            augment={"mixup_type": 1, "label_smoothing": 0.1},
        )

    def weights(trainer):
        return [keras.ops.convert_to_numpy(v) for v in trainer.model.weights]

    def trainer(folder):
        cfg = config(folder)
        assert cfg.augment.mixup_type == 1  # 2 records per example
        logged = []
        t = trainer_lib.Trainer(cfg, runtime.setup_runtime(cfg), logged.append)
        return t, logged

    whole, _ = trainer(tmp_path / "whole")
    expected = whole.train()

    # Ctrl-C in epoch 1's evaluation keeps its steps (before: the epoch was
    # lost, "resume from the start (no checkpoint yet)"); the rerun
    # evaluates it and ends as the uninterrupted run.
    from assemble_tf.training.trainer import TrainingInterrupted

    in_eval, _ = trainer(tmp_path / "in_eval")

    def ctrl_c_in_eval():
        raise KeyboardInterrupt

    in_eval.evaluate = ctrl_c_in_eval
    with pytest.raises(TrainingInterrupted) as error:
        in_eval.train()
    kept = tmp_path / "in_eval" / "checkpoints" / "preempted" / "ckpt-4"
    assert str(error.value) == (
        "Training stopped at step 4; rerun the same command to resume from "
        f"step 4 ({kept})."
    )
    rerun, _ = trainer(tmp_path / "in_eval")
    assert [r["epoch"] for r in rerun.train()] == [1, 2]
    for a, b in zip(weights(whole), weights(rerun), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)

    run = tmp_path / "stopped"
    from assemble_tf.runs import checkpoints

    class Killed(Exception):
        """kill -9 between the checkpoint and its progress.json."""

    def stop_at(step, kill_before_progress=False):
        """A rerun of `run` that gets SIGTERM once `step` steps ran;
        returns (its Terminated, its log)."""
        t, logged = trainer(run)
        train_loop = t.backend.train_loop

        def loop_then_sigterm(iterator, seed, n):
            out = train_loop(iterator, seed, n)
            if t.step == step:
                os.kill(os.getpid(), signal.SIGTERM)
                deadline = time.monotonic() + 10
                while not interrupts.termination_requested():
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
            return out

        t.backend.train_loop = loop_then_sigterm
        save = checkpoints.save_preempted_progress
        if kill_before_progress:

            def killed(*args):
                raise Killed

            checkpoints.save_preempted_progress = killed
        handler = signal.getsignal(signal.SIGTERM)
        try:
            with pytest.raises(
                Killed if kill_before_progress else (interrupts.Terminated)
            ) as stop:
                t.train()
        finally:
            checkpoints.save_preempted_progress = save
        assert signal.getsignal(signal.SIGTERM) is handler  # put back
        return stop.value, logged

    # Twice within epoch 2, the second time killed before its
    # progress.json, then at the end of epoch 2 (below).
    stop, _ = stop_at(5)
    prefix = str(run / "checkpoints" / "preempted" / "ckpt-5")
    assert str(stop) == (
        "Training stopped on SIGTERM at step 5 (1 of the 4 steps of epoch "
        f"2) and saved {prefix}; rerun the same command to resume from "
        "there."
    )
    progress = json.loads(
        (run / "checkpoints/preempted/progress.json").read_text()
    )
    floats = ("loss_sum", "weight_decay_loss", "train_images_per_sec")
    assert {k: v for k, v in progress.items() if k not in floats} == {
        "backend": keras.backend.backend(),
        "checkpoint": "ckpt-5",
        "epoch": 1,
        "step": 5,
        "epoch_steps": 4,
        "epoch_steps_done": 1,
        "records_skipped": 0,
    }
    # The tools still read the epoch checkpoints only.
    assert os.path.basename(checkpoints.find_checkpoint(str(run))) == "ckpt-1"
    # Ctrl-C names it too (before: the epoch checkpoint before it).
    interrupted, _ = trainer(run)

    def ctrl_c(*args):
        raise KeyboardInterrupt

    interrupted.backend.train_loop = ctrl_c
    with pytest.raises(trainer_lib.TrainingInterrupted) as error:
        interrupted.train()
    assert str(error.value) == (
        "Training stopped at step 5; rerun the same command to resume from "
        f"step 5 ({prefix})."
    )
    stop_at(6, kill_before_progress=True)
    # (before: the checkpoint progress.json names was deleted by then)
    stop, logged = stop_at(8)  # in the run's last loop
    assert logged[0] == (
        f"Resumed from {prefix} (step 5: 1 of the 4 steps of epoch 2 done, "
        "saved when it was stopped)."
    )
    assert "at step 8 (4 of the 4 steps of epoch 2)" in str(stop)
    # Stopped again before a step ran: the same checkpoint is named, not
    # rewritten over the only resume point.
    last = run / "checkpoints" / "preempted" / "ckpt-8"
    files = {p: p.stat().st_mtime_ns for p in last.parent.glob("ckpt-8*")}
    again, _ = trainer(run)
    epoch_state = again._epoch_state

    def sigterm_first(epoch):
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 10
        while not interrupts.termination_requested():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        return epoch_state(epoch)

    again._epoch_state = sigterm_first
    with pytest.raises(interrupts.Terminated, match=f"saved {last};"):
        again.train()
    assert (
        files
        and {p: p.stat().st_mtime_ns for p in last.parent.glob("ckpt-8*")}
        == files
    )
    # Every step ran: the rerun still evaluates and checkpoints epoch 2
    # (before: it did nothing, and the weights stayed in preempted/).
    resumed, logged = trainer(run)
    tf_warnings = _LogLines()
    logging.getLogger("tensorflow").addHandler(tf_warnings)
    try:
        history = resumed.train()
    finally:
        logging.getLogger("tensorflow").removeHandler(tf_warnings)
    # Quiet: the restore of the model, optimizer and epoch warned 16 lines
    # ("Value in checkpoint could not be found in the restored object:
    # (root).rng.N") about the generator states it leaves to the next.
    assert not [w for w in tf_warnings.lines if "restored object" in w]
    assert logged[0] == (
        f"Resumed from {last} (step 8: 4 of the 4 steps of epoch 2 done, "
        "saved when it was stopped)."
    )
    assert resumed.step == 8
    assert os.path.basename(checkpoints.find_checkpoint(str(run))) == "ckpt-2"
    assert not (run / "checkpoints" / "preempted").exists()
    for a, b in zip(weights(whole), weights(resumed), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert [r["epoch"] for r in history] == [1, 2]
    # The epoch's record, written by a rerun that ran none of its steps,
    # has its weight decay and speed (before: 0 for both).
    keys = ("train_loss", "val_loss", "val_top1", "learning_rate")
    for key in (*keys, "weight_decay_loss"):
        assert history[-1][key] == pytest.approx(expected[-1][key], rel=1e-5)
    assert history[-1]["train_images_per_sec"] > 0
    # A stale progress.json (an epoch checkpoint came after it) is removed;
    # a damaged one is named with the fix.
    preempted = run / "checkpoints" / "preempted"
    preempted.mkdir()
    (preempted / "progress.json").write_text(json.dumps(progress))
    again, _ = trainer(run)
    again.prepare()
    assert again.step == 8 and not preempted.exists()
    preempted.mkdir()
    (preempted / "progress.json").write_text('{"epoch": 2}')
    again, _ = trainer(run)
    with pytest.raises(ValueError) as error:
        again.prepare()
    assert str(error.value) == (
        f"{preempted / 'progress.json'} is not the progress of a mid-epoch "
        "checkpoint (fields backend, checkpoint, epoch, step, epoch_steps, "
        "epoch_steps_done, loss_sum, records_skipped, weight_decay_loss, "
        "train_images_per_sec); delete "
        f"{preempted} to resume from the last epoch checkpoint instead."
    )


def test_a_tensorflow_run_is_found_without_its_newest_files(tmp_path):
    """Under JAX, a TensorFlow run whose `checkpoint` state file lists a
    newest checkpoint whose files were deleted is still the other backend's
    run (before: `tf.train.latest_checkpoint` said None, and the JAX run
    trained from epoch 1 into the folder, replacing its history)."""
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    for n in (8, 9):
        (ckpts / f"ckpt-{n}.index").write_bytes(b"")
        (ckpts / f"ckpt-{n}.data-00000-of-00001").write_bytes(b"")
    (ckpts / "ckpt-10.tmp.index").write_bytes(b"")  # not a checkpoint
    (ckpts / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt-10"\n'
        'all_model_checkpoint_paths: "ckpt-10"\n'
    )
    found = trainer_lib._other_format_checkpoint(str(tmp_path), "jax")
    assert found == str(ckpts / "ckpt-9")
    assert (
        trainer_lib._other_format_checkpoint(str(tmp_path), "tensorflow")
        is None
    )
    # The tools (evaluate, export) find it as well, with the state file
    # and without (before: "no checkpoint").
    from assemble_tf.runs import checkpoints

    assert checkpoints.find_checkpoint(str(tmp_path)) == found
    (ckpts / "checkpoint").unlink()
    assert checkpoints.find_checkpoint(str(tmp_path)) == found


def test_best_scores_mark_the_epochs_max_steps_cut_as_their_offer_did():
    """What rebuilds a damaged best.json: each evaluated epoch's top-1,
    and whether max_steps cut it (not the schedule's own fractional last
    epoch)."""
    from types import SimpleNamespace

    plan = SimpleNamespace(steps_per_epoch=4, schedule_steps=10)
    history = [
        {"epoch": 1, "step": 4, "val_top1": 0.5},
        {"epoch": 2, "step": 8},  # not evaluated
        {"epoch": 3, "step": 10, "val_top1": 0.7},  # the schedule's end
    ]
    assert trainer_lib._best_scores(history, plan) == {
        1: (0.5, False),
        3: (0.7, False),
    }
    history[-1]["step"] = 9  # max_steps 9
    assert trainer_lib._best_scores(history, plan)[3] == (0.7, True)


@pytest.mark.slow  # trains three epochs
def test_the_best_epoch_is_kept_whatever_the_checkpoint_cadence(
    tmp_path, tmp_path_factory
):
    """Checkpoints every 2 epochs, evaluation every epoch: the best epoch
    (1, by the top-1 scripted here) is saved and kept in best/ (before:
    only a checkpointed epoch could enter best/, and best.json named
    epoch 2)."""
    import json

    tiny_data = str(  # the tiny records of tests/training, shared
        training_conftest.shared_once(
            tmp_path_factory, "tiny_data", training_conftest._write_tiny_data
        )
    )
    cfg = _config(
        tmp_path,
        train={"epochs": 3.0, "checkpoint_every_epochs": 2, "keep_best": 1},
        data={
            "data_dir": tiny_data,  # 64 train images: 4 steps of 16
            "num_classes": 4,
            "image_size": 32,
            "eval_preprocessing": "imagenet_32",
        },
    )
    trainer = trainer_lib.Trainer(
        cfg, runtime.setup_runtime(cfg), log=lambda s: None
    )
    scripted = iter([0.9, 0.2, 0.1])
    evaluate = trainer.evaluate
    trainer.evaluate = lambda: {**evaluate(), "top1": next(scripted)}
    history = trainer.train()
    assert [r["val_top1"] for r in history] == [0.9, 0.2, 0.1]
    best = json.loads((tmp_path / "best" / "best.json").read_text())
    assert [(e["epoch"], e["top1"]) for e in best] == [(1, 0.9)]
    assert list((tmp_path / "best").glob("epoch0001.*"))
    saved = {p.name.split(".")[0] for p in tmp_path.glob("checkpoints/ckpt-*")}
    assert saved == {"ckpt-1", "ckpt-2", "ckpt-3"}
    # best.json cut off (`truncate -s 10`): a rerun warns and rebuilds it
    # from best/ and the history (before: it stopped at json.load's
    # "Unterminated string starting at ...", naming no file).
    index = tmp_path / "best" / "best.json"
    whole = index.read_text()
    index.write_text(whole[:10])
    logged = []
    rerun = trainer_lib.Trainer(
        cfg, runtime.setup_runtime(cfg), log=logged.append
    )
    rerun.train()
    assert (
        f"WARNING: {index} is not valid JSON (Unterminated string starting "
        "at: line 3 column 3 (char 7)); keeping the best anew from the "
        f"checkpoints in {index.parent} (epoch0001), ranked by their "
        "val_top1 in history.json."
    ) in logged
    assert index.read_text() == whole


@pytest.mark.slow  # trains
def test_a_skipped_loss_scaled_step_still_counts_as_a_step(tmp_path):
    """mixed_float16's dynamic loss scale skips the first steps, whose
    scaled gradients overflow float16. Keras' LossScaleOptimizer does not
    advance its iterations there; they drove the trainer's step, the
    learning-rate schedule and the per-step seed, which fell behind the
    batches (before: 8 batches, "steps": 6 under TensorFlow, and a resume
    trained a batch twice; the JAX schedule ran 2 steps behind)."""
    cfg = _config(
        tmp_path,
        train={**DETERMINISTIC, "mixed_precision": "mixed_float16"},
    )
    trainer = trainer_lib.Trainer(
        cfg, runtime.setup_runtime(cfg), log=lambda s: None
    )
    optimizer = trainer.optimizer
    # A scale whose gradients overflow float16: the first steps are skipped
    # until it has halved enough.
    optimizer.dynamic_scale.assign(2.0**22)
    history = trainer.train()
    skips = round(np.log2(2.0**22 / float(optimizer.dynamic_scale)))
    assert 1 <= skips < 8  # the premise: some steps skipped, not all
    assert trainer.step == 8  # 2 epochs of 4 batches
    assert [r["step"] for r in history] == [4, 8]
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 8
    # The rate the optimizer applies is the schedule's at the steps run:
    # the cosine's end (was the rate 2 steps before it).
    rate = optimizer.learning_rate
    assert float(keras.ops.convert_to_numpy(rate)) == pytest.approx(
        history[-1]["learning_rate"], abs=1e-9
    )
