"""The training controller: epochs, loops, evaluation, checkpoints, resume.

Backend-neutral, in the shape of Orbit's `Controller` over a trainer (TF
Model Garden): this module owns the schedule of a run (Lee et al. 2020,
https://arxiv.org/abs/2001.06268; clovaai/assembled-cnn
`nets/run_loop_classification.py`) and a backend step owns the arithmetic:

* `tf_step.TFStep` under TensorFlow (any `tf.distribute` strategy, loss
  scaling, optional XLA);
* `jax_step.JaxStep` under `KERAS_BACKEND=jax` (one jitted stateless step,
  data parallel over the local devices).

Both run `steps_per_loop` steps per call on the device and hand back the
mean loss: the host reads the loss once per loop (the NaN check, progress
bar and TensorBoard step scalars happen there), never once per step.

The controller keeps epochs, evaluation and checkpoint timing, the best-N
keeper, `history.json`, TensorBoard scalars and the DropBlock schedule's
readout. Checkpoints are written at epoch ends; a rerun of the same command
resumes from the latest one. Each epoch's data order depends only on
(seed, epoch), and each step's mixing only on (seed, epoch, step), so with
`deterministic=True` a resumed run ends with the same weights as an
uninterrupted one.

SIGTERM (a preempted machine) stops the run at the next loop boundary with
a checkpoint of where it is within the epoch (`checkpoints/preempted`); the
rerun resumes from that step, skipping the records the epoch had used, so a
preemption costs at most one loop (`steps_per_loop`) of work. Keep a loop
shorter than the scheduler's grace period (30 s on Compute Engine and
Kubernetes by default).
"""

import dataclasses
import os
import sys
import time
import zipfile

import keras
import numpy as np

from assemble_tf.runs import checkpoints
from assemble_tf.runs import runtime as runtime_lib
from assemble_tf.training import step_lib, summaries
from official.utils.misc import interrupts, seeds
from official.utils.misc import progress as progress_lib
from official.utils.misc.validation import OptionError

# TensorFlow (tf.data, TensorBoard, warm start) is imported where it is
# used: building a Trainer and running its JAX step needs none, so the
# training benchmark runs on a JAX-only machine.


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite."""


class OtherBackendRunError(OptionError):
    """`model_dir` holds checkpoints of the other Keras backend (the one
    in `values["writer"]`)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; the message says where a rerun resumes."""


def make_step(config, plan, runtime):
    """The backend step of the current Keras backend."""
    if keras.backend.backend() == "jax":
        from assemble_tf.training.jax_step import JaxStep

        return JaxStep(config, plan, runtime)
    from assemble_tf.training.tf_step import TFStep

    return TFStep(config, plan, runtime)


def to_host(*values):
    """Device scalars -> Python floats: the loop's one host sync."""
    return [float(np.asarray(v)) for v in values]


def _other_format_checkpoint(model_dir, backend):
    """A checkpoint of the other backend's format in `model_dir`, or None."""
    ckpt_dir = os.path.join(model_dir, "checkpoints")
    if backend == "jax":
        # From the files: the state file may list a newest checkpoint
        # whose files were deleted (tf.train.latest_checkpoint said None,
        # and the run trained over the older ones from the start).
        return checkpoints.latest_tf_checkpoint(ckpt_dir)
    return checkpoints.latest_keras_checkpoint(ckpt_dir)


def _among_best(history, train):
    """Whether the last record of `history` ranks among the `keep_best`
    evaluated epochs of the run (by top-1, then the earlier epoch, as
    `checkpoints.BestKeeper` ranks them). From the history, which every
    worker holds alike: the save it calls for is collective."""
    last = history[-1]
    if train.keep_best <= 0 or "val_top1" not in last:
        return False
    scored = [r for r in history if "val_top1" in r]
    rank = sorted(scored, key=lambda r: (-r["val_top1"], r["epoch"]))
    return last in rank[: train.keep_best]


def _best_scores(history, plan):
    """{epoch: (val_top1, cut)} of the evaluated epochs of `history`, as
    `_finish_epoch` offered them to `checkpoints.BestKeeper`: what it
    rebuilds a damaged or missing best.json from (before: the resume
    stopped at json.load's error, naming no file)."""
    scores = {}
    for r in history:
        if "val_top1" not in r:
            continue
        step = r.get("step")
        done = step - (r["epoch"] - 1) * plan.steps_per_epoch if step else 0
        cut = 0 < done < plan.steps_per_epoch and step < plan.schedule_steps
        scores[r["epoch"]] = (r["val_top1"], cut)
    return scores


class Trainer:
    """Runs a training job on the current Keras backend.

    Args:
        config: `ExperimentConfig`.
        runtime: what `runtime.setup_runtime` returned (a
            `tf.distribute.Strategy` or a `JaxRuntime`).
        log: callable(str) for progress lines (default: print to stderr).
    """

    def __init__(self, config, runtime, log=None):
        self.config = config
        self.log = log or (lambda s: print(s, file=sys.stderr, flush=True))
        t = config.train
        replicas = runtime.num_replicas_in_sync
        if t.batch_size % replicas:
            raise OptionError(
                "batch_size",
                "{field}={value} is not divisible by the {replicas} replicas.",
                value=t.batch_size,
                replicas=replicas,
            )
        if keras.backend.backend() == "tensorflow":
            # Before: TensorFlow's "The global_batch_size 7 is not divisible
            # by num_replicas_in_sync 2" after the first epoch had trained.
            runtime_lib.check_eval_batch(
                "eval_batch_size", t.eval_batch_size or t.batch_size, replicas
            )
        # (Under JAX the step mixes the global batch.)
        if (
            config.augment.mixup_type == 2
            and (t.batch_size // replicas) % 2
            and keras.backend.backend() == "tensorflow"
        ):
            raise OptionError(
                "batch_size",
                "{field}={value} gives each of the {replicas} replicas "
                "{per_replica} images, and {mixup_type}=2 mixes the two "
                "halves of each replica's batch: make it even.",
                ["mixup_type"],
                value=t.batch_size,
                replicas=replicas,
                per_replica=t.batch_size // replicas,
            )
        self.plan = step_lib.make_plan(config)
        for warning in step_lib.plan_warnings(config, self.plan):
            self.log(f"WARNING: {warning}")
        self.backend = make_step(config, self.plan, runtime)
        self._prepared = False
        self._validation_counted = False
        self._resume = None  # a mid-epoch checkpoint's progress
        self._reopened_cut = False  # resumes an epoch max_steps cut short
        self._finished_state = None  # the `_EpochState` being evaluated

    # What the tools and tests read -----------------------------------------

    model = property(lambda self: self.backend.model)
    optimizer = property(lambda self: self.backend.optimizer)
    post = property(lambda self: self.backend.post)
    strategy = property(lambda self: self.backend.strategy)
    step = property(lambda self: self.backend.step)
    num_train = property(lambda self: self.plan.num_train)
    steps_per_epoch = property(lambda self: self.plan.steps_per_epoch)
    total_steps = property(lambda self: self.plan.total_steps)
    lr_schedule = property(lambda self: self.plan.lr_schedule)
    dropblock_layers = property(
        lambda self: self.backend.parts.dropblock_layers
    )

    def train_function(self):
        """One compiled step `fn(iterator, seed_base) -> (loss, wd)`."""
        return self.backend.train_function()

    def train_dataset(self, epoch, stats=None):
        return self.backend.dataset(epoch, stats)

    def evaluate(self, dataset=None):
        """Top-1, top-5, ECE (10 bins) and loss over the whole split."""
        return self.backend.evaluate(dataset)

    # Start ------------------------------------------------------------------

    def _bn_batches(self):
        """Training crops (no mixing), normalized, one replica's batches."""
        import dataclasses

        from assemble_tf.data import input_pipeline
        from assemble_tf.runs import inputs

        cfg = dataclasses.replace(
            inputs.input_config(self.config, True),
            mixup_type=0,
            augmenter=None,
            dtype="float32",
        )
        if self.config.data.synthetic:
            ds = input_pipeline.build_synthetic_dataset(cfg)
        else:
            ds = input_pipeline.build_dataset(cfg)
        return (images for images, _ in ds)

    def restore(self):
        """Resumes from the latest checkpoint; returns True if it did.

        Raises:
            ValueError: the run's checkpoints are of the other backend.
        """
        backend = self.backend.backend
        other = _other_format_checkpoint(self.config.model_dir, backend)
        latest = self.backend.latest_checkpoint
        if other and not latest:
            writer = "tensorflow" if backend == "jax" else "jax"
            raise OtherBackendRunError(
                "model_dir",
                "{field}={path} holds checkpoints written under the {writer} "
                "backend ({other}); resume it with KERAS_BACKEND={writer}, "
                "or use a new {field} and {warm_start} from it.",
                ["warm_start"],
                path=self.config.model_dir,
                writer=writer,
                other=other,
            )
        try:
            restored = self.backend.restore()
        except (IndexError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise _damaged_checkpoint(latest, e) from None
        except checkpoints.tf_errors() as e:
            raise _damaged_checkpoint(latest, e) from None
        if restored and not latest:
            self.log(
                f"WARNING: {self.backend.checkpoint_dir}/checkpoint listed "
                "no checkpoint (deleted, or not copied with the run); "
                f"resumed from {restored}, the newest in the folder."
            )
        elif restored and restored != latest:
            self.log(
                f"WARNING: {latest}, the newest checkpoint listed, has no "
                f"files; resumed from {restored}, the newest that has."
            )
        if cut := self.backend.incomplete_checkpoint(restored):
            # Before: the resume fell back to the one before without a word.
            self.log(
                f"WARNING: {cut} is incomplete (a save cut short, or a file "
                "deleted); "
                + (
                    f"resumed from {restored}, the newest whole one."
                    if restored
                    else "no whole checkpoint is left."
                )
            )
        if restored and (reason := self.backend.repair_weights(restored)):
            self.log(
                f"WARNING: {restored}.weights.h5 could not be opened "
                f"({reason}); rewritten from {restored}.state.npz, the "
                "checkpoint the run resumed from."
            )
        if self._restore_preempted():
            return True
        if restored:
            self.log(
                f"Resumed from {restored} (epoch {self.backend.epoch}, "
                f"step {self.step})."
            )
            if self.step >= self.plan.total_steps:
                # Before: the old summary again, without a word of why.
                self.log(
                    f"Nothing to train: the run is at step {self.step:,}, "
                    f"and this one ends at step {self.plan.total_steps:,} "
                    "(max_steps, else epochs x steps per epoch)."
                )
            self._reopen_cut_epoch()
            return True
        self._refuse_a_start_over_a_run()
        return False

    def _refuse_a_start_over_a_run(self):
        """Refuses to train from the start in a `model_dir` whose history
        has epochs but no checkpoint resumes (before: it trained from
        epoch 1 and wrote its checkpoints, history and best/ over the
        earlier run's, without a word).

        Raises:
            OptionError: naming `model_dir`, the epochs and the fixes.
        """
        history = checkpoints.load_history(self.config.model_dir)
        if not history:
            return
        cut = self.backend.incomplete_checkpoint(None)
        if (
            cut
            and cut.endswith("ckpt-1")
            and [r["epoch"] for r in history] == [1]
        ):
            # Stopped while saving its first checkpoint, the history
            # written before it: only that epoch is lost (before: refused
            # as a run whose checkpoints were gone).
            self.log(
                f"The run was stopped while it saved its first checkpoint "
                f"({cut}): training from the start."
            )
            return
        raise OptionError(
            "model_dir",
            "{field}={path} holds a run of {epochs} epoch(s) (history.json) "
            "but no checkpoint to resume from in {folder}: restore its "
            "checkpoints from a copy to resume, or pass a new {field} to "
            "train from the start.",
            path=self.config.model_dir,
            epochs=len(history),
            folder=self.backend.checkpoint_dir,
        )

    def _reopen_cut_epoch(self):
        """Continues the epoch `max_steps` cut short. That run ended with
        the epoch's checkpoint (evaluated, in the history) at the step it
        reached; a rerun with a larger or no `max_steps` trains the rest
        of that epoch from there, as after a SIGTERM, and its record is
        replaced at the epoch's end (before: the rerun was refused, and
        the cut epoch counted as a whole one)."""
        backend, plan = self.backend, self.plan
        epoch = backend.epoch
        done = self.step - (epoch - 1) * plan.steps_per_epoch
        if not 0 < done < plan.steps_per_epoch or self.step >= plan.total_steps:
            return
        self._reopened_cut = True
        history = checkpoints.load_history(self.config.model_dir)
        cut = next((r for r in history if r["epoch"] == epoch), {})
        backend.set_epoch(epoch - 1)
        self._resume = {
            "epoch": epoch - 1,
            "step": self.step,
            "epoch_steps": plan.steps_per_epoch,
            "epoch_steps_done": done,
            "loss_sum": cut.get("train_loss", 0.0) * done,
            "records_skipped": cut.get("train_records_skipped", 0),
            "weight_decay_loss": cut.get("weight_decay_loss", 0.0),
            "train_images_per_sec": cut.get("train_images_per_sec", 0.0),
        }
        rest = plan.steps_per_epoch - done
        more = min(rest, plan.total_steps - self.step)
        self.log(
            f"Epoch {epoch} ran {done} of its {plan.steps_per_epoch} steps "
            "before max_steps stopped it: training "
            + (
                f"the other {rest}."
                if more == rest
                else f"{more} more of them (max_steps ends this run at "
                f"step {plan.total_steps:,})."
            )
        )

    def _restore_preempted(self):
        """Restores the mid-epoch checkpoint that continues the restored
        epochs (a stale one is removed); returns True if it did."""
        backend = self.backend
        found = checkpoints.load_preempted(backend.checkpoint_dir)
        if found is None:
            return False
        prefix, progress = found
        # An epoch checkpoint saved after it (at most as many steps: one
        # that max_steps cut short may have fewer) makes it stale.
        if progress["step"] <= self.step:
            checkpoints.clear_preempted(backend.checkpoint_dir)
            return False
        if progress["backend"] != backend.backend:
            raise OptionError(
                "model_dir",
                "{field}={path} was stopped within an epoch under another "
                "Keras backend ({other}); resume it with that backend "
                "(KERAS_BACKEND).",
                path=self.config.model_dir,
                other=progress["backend"],
            )
        try:
            backend.restore_preempted(prefix)
        except (IndexError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise _damaged_preempted(prefix, e) from None
        except checkpoints.tf_errors() as e:
            raise _damaged_preempted(prefix, e) from None
        self._resume = progress
        self.log(
            f"Resumed from {prefix} (step {self.step}: "
            f"{progress['epoch_steps_done']} of the "
            f"{progress['epoch_steps']} steps of epoch {progress['epoch'] + 1} "
            "done, saved when it was stopped)."
        )
        return True

    def prepare(self):
        """Resumes from the latest checkpoint, or warm starts a new run
        (and re-estimates BN statistics). Idempotent; `train` calls it."""
        if self._prepared:
            return
        from assemble_tf.data import input_pipeline
        from assemble_tf.runs import warm_start

        t = self.config.train
        resumed = self.restore()
        if resumed:
            self._check_same_data()
            self._check_same_classes()
        if not resumed and t.warm_start:
            warm_start.warm_start_model(
                self.model,
                t.warm_start,
                t.warm_start_head,
                t.warm_start_bn_stats,
            )
            self.log(f"Warm start from {t.warm_start}.")
            if t.warm_start_head:
                from assemble_tf.runs import class_names

                note = warm_start.head_names_note(
                    t.warm_start, class_names.from_data(self.config.data)
                )
                if note:
                    self.log(f"WARNING: {note}")
            if t.bn_reestimate_steps:
                with input_pipeline.reraise_data_errors():
                    count = warm_start.reestimate_bn_statistics(
                        self.model,
                        self._bn_batches(),
                        t.bn_reestimate_steps,
                        keras.config.dtype_policy().compute_dtype,
                    )
                self.log(
                    f"Re-estimated BN statistics of {count} layers on "
                    f"{t.bn_reestimate_steps} batches."
                )
        self._prepared = True

    def _check_same_classes(self):
        """Refuses to resume where the data name the logits otherwise than
        the run's class_names.txt (a class folder renamed, added or
        removed: before, logit 1 trained as "banana" went on as "cherry"
        and class_names.txt was rewritten, without a word)."""
        from assemble_tf.runs import class_names

        path = os.path.join(self.config.model_dir, class_names.FILE)
        if not os.path.isfile(path):
            return
        now = class_names.from_data(self.config.data)
        if now is None:
            return
        before = class_names.read(path, field="model_dir")
        if before == now:
            return
        data = self.config.data
        raise OptionError(
            "data_dir" if data.data_dir else "source",
            "{field}={data} names the classes otherwise than the run's "
            "{path} ({differ}): resume it on the data it started on, or "
            "train a new {model_dir} with {warm_start} from this run.",
            ["model_dir", "warm_start"],
            data=data.data_dir or data.source,
            path=path,
            differ=class_names.difference(before, now),
        )

    def _check_same_data(self):
        """Refuses to resume on a training split of another size than the
        run's (its history's image count, or the steps of the epoch a
        SIGTERM stopped): the schedules, epochs and steps are planned on
        it (before: a rebuilt, larger split resumed without a word, and
        the learning rate rose again and never reached 0)."""
        plan = self.plan
        history = checkpoints.load_history(self.config.model_dir)
        before = next(
            (
                r["train_images"]
                for r in reversed(history)
                if "train_images" in r
            ),
            None,
        )
        if before is None and self._resume is not None:
            steps = self._resume["epoch_steps"]
            if steps != plan.steps_per_epoch:
                before = f"{steps} steps of {self.config.train.batch_size}"
        if before is None or before == plan.num_train:
            return
        data = self.config.data
        raise OptionError(
            "data_dir" if data.data_dir else "source",
            "{field}={data} now holds {now:,} training images, and the run "
            "was trained on {before} (its learning-rate and DropBlock "
            "schedules, epochs and steps are planned on them): resume it "
            "on the data it started on, or train a new {model_dir} with "
            "{warm_start} from this run.",
            ["model_dir", "warm_start"],
            data=data.data_dir or data.source,
            now=plan.num_train,
            before=f"{before:,}" if isinstance(before, int) else before,
        )

    # The loop ---------------------------------------------------------------

    def train(self, on_epoch_end=None):
        """Runs to the end; returns the history (one dict per epoch).

        Raises:
            DataError: the data stopped yielding usable records.
            NonFiniteLossError: the loss became NaN or infinite.
            interrupts.Terminated: SIGTERM; the message names the
                mid-epoch checkpoint a rerun resumes from.
        """
        from assemble_tf.data import input_pipeline

        try:
            with (
                interrupts.graceful_termination(
                    self.backend.graceful_termination
                ),
                input_pipeline.reraise_data_errors(),
            ):
                return self._train(on_epoch_end)
        except KeyboardInterrupt:
            latest, step = self._resume_point()
            if step is not None:  # a mid-epoch checkpoint is newer
                where = f"from step {step} ({latest})"
            elif latest:
                # Epoch checkpoints are numbered by their epochs (ckpt-N).
                where = f"after epoch {latest.rsplit('-', 1)[-1]} ({latest})"
            else:
                where = "from the start (no checkpoint yet)"
            raise TrainingInterrupted(
                f"Training stopped at step {self.step}; rerun the same "
                f"command to resume {where}."
            ) from None

    def _resume_point(self):
        """(the checkpoint a rerun resumes from or None, its step when it
        is a mid-epoch one, else None)."""
        latest = self.backend.latest_checkpoint
        try:
            found = checkpoints.load_preempted(self.backend.checkpoint_dir)
        except ValueError:  # damaged: the rerun says so
            found = None
        if found is None:
            return latest, None
        # Once prepared, a stale one is gone; before, a crash between an
        # epoch's checkpoint and the clean-up may have left one.
        done = int(latest.rsplit("-", 1)[-1]) if latest else 0
        if self._prepared or found[1]["epoch"] >= done:
            return found[0], found[1]["step"]
        return latest, None

    def _train(self, on_epoch_end):
        self.prepare()
        plan, backend = self.plan, self.backend
        history = [
            r
            for r in checkpoints.load_history(self.config.model_dir)
            if r["epoch"] <= backend.epoch
        ]
        lost = backend.epoch - len({r["epoch"] for r in history})
        if lost > 0:
            self.log(
                f"WARNING: {checkpoints.history_path(self.config.model_dir)} "
                f"has no record of {lost} of the {backend.epoch} epochs "
                "trained (deleted or replaced?): the history and training "
                "curves lack them."
            )
        writer = summaries.SummaryWriter(
            os.path.join(self.config.model_dir, "logs", "train"),
            backend.is_chief,
            self.step,
            # A cut epoch's points go, as its history record will.
            epoch_points_at_step=self._reopened_cut,
        )
        best = checkpoints.BestKeeper(
            self.config.model_dir,
            self.config.train.keep_best,
            _best_scores(checkpoints.load_history(self.config.model_dir), plan),
        )
        if best.rebuilt and backend.is_chief:
            self.log(f"WARNING: {best.rebuilt}")
        if backend.is_chief:
            best.prune()
        # (A run stopped on SIGTERM in its last loop has run every step,
        # and its last epoch is still to evaluate and checkpoint.)
        while self.step < plan.total_steps or self._resume is not None:
            epoch = backend.epoch
            if epoch >= plan.num_epochs:
                break
            record = self._train_epoch(epoch, writer)
            self._finish_epoch(epoch, record, history, writer, best)
            if on_epoch_end is not None:
                on_epoch_end(record)
        backend.sync()
        return history

    def _train_epoch(self, epoch, writer):
        """One epoch of loops; returns its history record (no eval yet)."""
        t, backend = self.config.train, self.backend
        state = self._epoch_state(epoch)
        # (Saved at the epoch's end: no data to skip through.)
        iterator = (
            iter(backend.dataset(epoch, state.stats, skip_steps=state.done))
            if state.done < state.steps
            else None
        )
        seed_base = seeds.derive_seed(t.seed, "step", epoch)
        progress = _Progress(
            state.steps, epoch + 1, self.plan.num_epochs, state.done
        )
        start = time.perf_counter()
        try:
            while state.done < state.steps:
                self._check_signals(state)
                self._run_loop(state, iterator, seed_base, writer, start)
                progress.update(state.done, state.loss, state.loop_rate)
            elapsed = time.perf_counter() - start
            self._check_signals(state)  # before the evaluation (minutes)
            self._finished_state = state  # saved on a Ctrl-C in its eval
        finally:
            # Before any message, a Ctrl-C's or a NaN's too: a line of its
            # own (it was glued to the bar).
            progress.bar.close()
        return self._epoch_record(state, elapsed)

    def _epoch_state(self, epoch):
        """The `_EpochState` of `epoch`: from its start, or from where a
        mid-epoch checkpoint stopped it."""
        from assemble_tf.data import input_pipeline

        resume, self._resume = self._resume, None
        stats = input_pipeline.PipelineStats()
        if resume is None or resume["epoch"] != epoch:
            steps = min(
                self.plan.steps_per_epoch, self.plan.total_steps - self.step
            )
            return _EpochState(epoch, steps, 0, stats=stats)
        # The rest of the epoch, up to max_steps (before: a rerun with a
        # larger max_steps trained to the end of the epoch).
        done = resume["epoch_steps_done"]
        steps = min(
            resume["epoch_steps"], done + self.plan.total_steps - self.step
        )
        return _EpochState(
            epoch,
            max(done, steps),
            done,
            loss_sum=resume["loss_sum"],
            skipped_before=resume["records_skipped"],
            # Those of the steps before the resume, until a loop runs here
            # (a stop at the epoch's end logged 0 for both).
            wd=resume.get("weight_decay_loss", 0.0),
            rate=resume.get("train_images_per_sec", 0.0),
            stats=stats,
        )

    def _check_signals(self, state):
        interrupts.check()  # a Ctrl-C whose exception was swallowed
        if interrupts.termination_requested():
            raise self._stop_on_sigterm(state)

    def _run_loop(self, state, iterator, seed_base, writer, start):
        """One loop of `steps_per_loop` steps (fewer at the epoch's end):
        the one host read, the NaN check and the step scalars."""
        t, plan = self.config.train, self.plan
        n = min(t.steps_per_loop, state.steps - state.done)
        first = self.step
        began = time.perf_counter()
        mean, wd_value = self.backend.train_loop(iterator, seed_base, n)
        loss, state.wd = to_host(mean, wd_value)
        if not np.isfinite(loss):
            where = (
                f"at step {first + 1}"
                if n == 1
                else f"in steps {first + 1}-{first + n}"
            )
            good = self._resume_point()[0]
            raise NonFiniteLossError(
                f"Loss is {loss} {where} (epoch {state.epoch + 1}); "
                "stopping. "
                + (
                    f"The last good checkpoint is {good}."
                    if good
                    else "No checkpoint was written yet."
                )
            )
        state.done += n
        state.loss = loss
        state.loss_sum += loss * n
        now = time.perf_counter()
        state.rate = (state.done - state.first) * t.batch_size / (now - start)
        state.loop_rate = n * t.batch_size / max(now - began, 1e-9)
        if self.step // t.log_every > first // t.log_every:
            # The rate since the last scalar (before: since the epoch's
            # start, its compile and input warm-up included, so the curve
            # climbed within every epoch).
            done, since = state.logged or (state.first, start)
            rate = (state.done - done) * t.batch_size / max(now - since, 1e-9)
            state.logged = (state.done, now)
            writer.scalars(
                self.step,
                {
                    "step/train_loss": loss,
                    "step/learning_rate": float(
                        np.asarray(plan.lr_schedule(self.step))
                    ),
                    "step/train_images_per_sec": rate,
                },
            )

    def _epoch_record(self, state, elapsed):
        """The epoch's history record (before its evaluation)."""
        ran = state.steps - state.first  # steps of this process
        record = {
            "epoch": state.epoch + 1,
            "step": self.step,
            "train_images": self.plan.num_train,
            "train_loss": state.loss_sum / max(state.steps, 1),
            "weight_decay_loss": state.wd,
            "learning_rate": float(
                np.asarray(self.plan.lr_schedule(self.step))
            ),
            "train_images_per_sec": ran
            * self.config.train.batch_size
            / max(elapsed, 1e-9)
            if ran
            else state.rate,
        }
        if not self.config.data.synthetic:
            # In-flight records are read but not yet emitted: count only
            # what was found unusable (as it was read, read-ahead included).
            # One reading of the counters: the pipeline reads on.
            counts = state.stats.counts()
            skipped = state.skipped_before + counts.unusable
            record["train_records_skipped"] = skipped
            if skipped:
                kinds = counts.describe() or "none"
                if state.skipped_before:  # the kinds are this process's
                    kinds = (
                        f"{state.skipped_before:,} before the resume; "
                        f"since: {kinds}"
                    )
                self.log(
                    f"WARNING: epoch {state.epoch + 1} skipped {skipped:,} "
                    f"unusable training records ({kinds}; "
                    "counted as read, records read ahead included)."
                )
        keep = self.backend.keep_prob()
        if keep is not None:
            record["dropblock_keep_prob"] = keep
        return record

    def _finish_epoch(self, epoch, record, history, writer, best):
        """Evaluation, scalars, history and checkpoints of an epoch."""
        t, plan, backend = self.config.train, self.plan, self.backend
        backend.sync()
        backend.set_epoch(epoch + 1)
        last = self.step >= plan.total_steps or epoch + 1 >= plan.num_epochs
        if (epoch + 1) % max(1, round(t.eval_every_epochs)) == 0 or last:
            if not self.config.data.synthetic:
                try:
                    metrics = self.evaluate()
                except KeyboardInterrupt:
                    # Every step of the epoch ran: keep them (before: a
                    # Ctrl-C in the evaluation lost the epoch), as SIGTERM
                    # at the epoch's end does; the rerun evaluates it.
                    backend.set_epoch(epoch)
                    self._save_mid_epoch(self._finished_state)
                    raise
                self._check_evaluation(metrics)
                record.update({f"val_{k}": v for k, v in metrics.items()})
        writer.scalars(
            self.step, {k: v for k, v in record.items() if isinstance(v, float)}
        )
        history.append(record)
        # History first: a kill between the two leaves an entry that the
        # resumed run drops (it keeps epochs <= the restored one).
        if backend.is_chief:
            checkpoints.save_history(self.config.model_dir, history)
        every = max(1, round(t.checkpoint_every_epochs))
        # An epoch that enters best/ is saved whatever the cadence (before:
        # with checkpoint_every_epochs 2, an odd best epoch was lost).
        if (epoch + 1) % every == 0 or last or _among_best(history, t):
            path = backend.save(epoch + 1)
            if backend.is_chief:
                checkpoints.clear_preempted(backend.checkpoint_dir)
            if "val_top1" in record and backend.is_chief:
                # An epoch max_steps cut short (a rerun completes it), not
                # the schedule's own last, fractional one.
                done = self.step - epoch * plan.steps_per_epoch
                cut = (
                    done < plan.steps_per_epoch
                    and self.step < plan.schedule_steps
                )
                best.offer(path, record["val_top1"], epoch + 1, cut=cut)
        self.log(_format_record(record))

    def _check_evaluation(self, metrics):
        """Warns where the evaluation's loss is not finite, and once where
        the validation split read fewer records than its summary.json
        lists (a cut-off or missing shard)."""
        from assemble_tf.evaluation import checks as evaluation_checks

        warning = evaluation_checks.nonfinite_warning(
            metrics, self.config.train.mixed_precision
        )
        if warning:
            self.log(f"WARNING: epoch {self.backend.epoch}: {warning}")
        if self._validation_counted:
            return
        self._validation_counted = True
        from assemble_tf.runs import inputs

        read = metrics.get("count", 0) + metrics.get("skipped", 0)
        short = inputs.validation_shortfall(self.config, read)
        if short is not None:
            self.log(f"WARNING: {short[0]}")

    def _stop_on_sigterm(self, state):
        """Saves the mid-epoch checkpoint of `state`; returns the
        `Terminated` to raise."""
        prefix = self._save_mid_epoch(state)
        return interrupts.Terminated(
            f"Training stopped on SIGTERM at step {self.step} ({state.done} "
            f"of the {state.steps} steps of epoch {state.epoch + 1}) and "
            f"saved {prefix}; rerun the same command to resume from there."
        )

    def _save_mid_epoch(self, state):
        """Saves the mid-epoch checkpoint of `state` and its progress.json;
        returns its prefix."""
        backend = self.backend
        backend.sync()
        # Only the checkpoint progress.json names stays until the new one
        # is named (a kill in between resumes from the one before).
        named = checkpoints.load_preempted_name(backend.checkpoint_dir)
        if named and os.path.basename(named) == f"ckpt-{self.step}":
            # Stopped again before a step ran: that checkpoint is this
            # state (rewriting it in place risked the only resume point).
            prefix = named
        else:
            checkpoints.prune_preempted(backend.checkpoint_dir, named)
            prefix = backend.save_preempted(self.step)
        checkpoints.save_preempted_progress(
            backend.checkpoint_dir,
            {
                "backend": backend.backend,
                "checkpoint": os.path.basename(prefix),
                "epoch": state.epoch,
                "step": self.step,
                "epoch_steps": state.steps,
                "epoch_steps_done": state.done,
                "loss_sum": float(state.loss_sum),
                "records_skipped": int(state.skipped),
                "weight_decay_loss": float(state.wd),
                "train_images_per_sec": float(state.rate),
            },
        )
        checkpoints.prune_preempted(backend.checkpoint_dir, prefix)
        return prefix


@dataclasses.dataclass
class _EpochState:
    """Where an epoch is: its steps, those done (`first` of them before
    this process), their summed loss, the last loss, weight-decay loss and
    images/s (since the epoch's start, and of the last loop), the
    (steps done, time) of the last step scalars, and its unusable records
    (those before a resume, and the pipeline's `stats` since)."""

    epoch: int
    steps: int
    first: int
    loss_sum: float = 0.0
    skipped_before: int = 0
    wd: float = 0.0
    rate: float = 0.0
    loop_rate: float = 0.0
    logged: tuple | None = None
    stats: object = None
    loss: float = 0.0
    done: int = dataclasses.field(init=False)

    def __post_init__(self):
        self.done = self.first

    @property
    def skipped(self):
        return self.skipped_before + self.stats.unusable


class _Progress:
    """A one-line progress bar with loss and images/s, updated per loop."""

    def __init__(self, steps, epoch, num_epochs, done=0):
        self.bar = progress_lib.bar(
            total=steps,
            initial=done,
            desc=f"epoch {epoch}/{num_epochs}",
            unit="step",
            leave=False,
            mininterval=1.0,
        )
        self.done = done

    def update(self, done, loss, images_per_sec):
        self.bar.update(done - self.done)
        self.done = done
        self.bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{images_per_sec:.0f}")


def _format_record(record):
    return " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in record.items()
        if k != "val_reliability"
    )


__all__ = [
    "NonFiniteLossError",
    "Trainer",
    "TrainingInterrupted",
    "make_step",
    "to_host",
]


def _damaged_preempted(prefix, error):
    """The one-line error of a mid-epoch checkpoint that does not read."""
    folder = os.path.dirname(prefix)
    return checkpoints.unreadable_error(
        prefix,
        error,
        f"Delete {folder} and rerun to resume from the last epoch checkpoint.",
    )


def _damaged_checkpoint(prefix, error):
    """The one-line error of a resume whose checkpoint does not read."""
    return checkpoints.unreadable_error(
        prefix,
        error,
        f"Delete {os.path.basename(prefix)}.* in {os.path.dirname(prefix)} "
        "and rerun to resume from the checkpoint before it, or train into "
        "a new model_dir.",
    )
