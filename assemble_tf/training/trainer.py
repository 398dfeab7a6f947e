"""The custom training loop: any tf.distribute strategy, resumable.

A `strategy.run` loop in the shape of TF Model Garden's and the authors'
tf2.1 branch (Keras 3.15's `model.fit` fails under
MultiWorkerMirroredStrategy, keras-team/keras#20585). One step, per replica:
normalize and mix the uint8 batch on the device (`BatchPostprocess`), run the
model, loss = soft CE (Mixup, label smoothing) + T^2 KD + weight decay, all
in float32, scaled so that the optimizer's cross-replica gradient sum is the
global mean (Keras 3 optimizers all-reduce-sum gradients), loss scaling under
mixed_float16. SGD with momentum, warm-up + cosine per step, the DropBlock
keep-probability schedule (Lee et al. 2020,
https://arxiv.org/abs/2001.06268; clovaai/assembled-cnn
`nets/run_loop_classification.py`).

`jit_compile` (off by default) XLA-compiles the per-replica step: the batch
is taken from the iterator and the DropBlock schedule set in a plain
`tf.function` around `strategy.run` (XLA has no `IteratorGetNext`). With one
replica the optimizer update is compiled too; with several it runs after
the compiled forward / backward pass, since its cross-replica gradient sum
cannot run in a nested `tf.function`. On CPU XLA makes the step ~2.6-2.8x
slower (Keras' own step alike): it is for GPUs and TPUs.

Checkpoints are written at epoch ends by a `tf.train.CheckpointManager`
(model, optimizer, epoch); a rerun of the same command resumes from the
latest one. Each epoch's data order depends only on (seed, epoch), so with
`deterministic=True` a resumed run ends with the same weights as an
uninterrupted one.
"""

import dataclasses
import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from assemble_tf.data import input_pipeline
from assemble_tf.evaluation.evaluator import Evaluator
from assemble_tf.layers import DropBlock2D
from assemble_tf.runs import checkpoints, inputs, models, warm_start
from assemble_tf.training import losses, schedules


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite."""


class Trainer:
    """Owns the model, optimizer, checkpoints and the train / eval steps.

    Args:
        config: `ExperimentConfig`.
        strategy: a `tf.distribute.Strategy` (from `setup_runtime`).
        log: callable(str) for progress lines (default: print to stderr).
    """

    def __init__(self, config, strategy, log=None):
        self.config = config
        self.strategy = strategy
        self.log = log or (lambda s: print(s, file=sys.stderr, flush=True))
        t = config.train
        self.num_replicas = strategy.num_replicas_in_sync
        if t.batch_size % self.num_replicas:
            raise ValueError(
                f"--batch_size={t.batch_size} is not divisible by the "
                f"{self.num_replicas} replicas."
            )
        self.num_train = inputs.num_train_examples(config)
        self.steps_per_epoch = max(1, self.num_train // t.batch_size)
        self.total_steps = max(1, int(self.steps_per_epoch * t.epochs))
        if t.max_steps:
            self.total_steps = min(self.total_steps, t.max_steps)
        lr = t.base_learning_rate
        if t.scale_learning_rate:
            lr = lr * t.batch_size / 256.0
        self.lr_schedule = schedules.WarmupSchedule(
            lr,
            self.num_train / t.batch_size,
            t.epochs,
            t.warmup_epochs,
            t.lr_schedule,
        )
        self.dropblock = t.dropblock_keep_prob  # (start, end) or None
        self.post = input_pipeline.BatchPostprocess(
            inputs.input_config(config, True)
        )
        with strategy.scope():
            self.model = models.build_run_model(config)
            if t.freeze_backbone:
                for layer in self.model.layers:
                    if not layer.name.startswith(models.HEAD_PREFIXES):
                        layer.trainable = False
            self.lr_multipliers = None
            if t.backbone_lr_multiplier != 1.0 and not t.freeze_backbone:
                self.lr_multipliers = [
                    1.0
                    if models.is_head_variable(v)
                    else float(t.backbone_lr_multiplier)
                    for v in self.model.trainable_variables
                ]
            optimizer = keras.optimizers.SGD(
                learning_rate=self.lr_schedule, momentum=t.momentum
            )
            if t.mixed_precision == "mixed_float16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            # Build the slots on the variables inside the scope, before the
            # first tf.function call (Keras 3 + strategy requirement).
            optimizer.build(self.model.trainable_variables)
            self.optimizer = optimizer
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.evaluator = Evaluator(self.model, strategy)
            self.decayed = losses.decayed_variables(self.model)
            self.dropblock_layers = [
                layer
                for layer in self.model._flatten_layers(include_self=False)
                if isinstance(layer, DropBlock2D)
            ]
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, epoch=self.epoch
        )
        # Every worker saves (the save is collective under multi-worker);
        # only the chief writes into model_dir, the others to a scratch dir.
        self.is_chief, ckpt_dir = checkpoints.chief_and_dir(
            strategy, config.model_dir
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, ckpt_dir, max_to_keep=t.keep_checkpoints
        )
        self.compute_dtype = keras.config.dtype_policy().compute_dtype
        self._train_fn = None
        self._prepared = False

    # Steps ---------------------------------------------------------------

    @property
    def step(self):
        return int(self.optimizer.iterations.numpy())

    def _replica_gradients(self, images, batch, seed):
        """One replica's forward pass, loss and gradients.

        Returns:
            (gradients of the trainable variables, scaled under
            mixed_float16 and by their learning-rate multipliers; the
            replica's share of the loss; its share of the weight decay).
        """
        t = self.config.train
        images, batch = self.post(
            dict(batch, images=images), seed, dtype=self.compute_dtype
        )
        global_batch = tf.cast(
            tf.shape(images)[0] * self.num_replicas, tf.float32
        )
        with tf.GradientTape() as tape:
            logits = self.model(images, training=True)
            ce = losses.soft_cross_entropy(batch["targets"], logits)
            loss = tf.reduce_sum(ce) / global_batch
            if t.kd_temperature > 0:
                kd = losses.distillation_loss(
                    batch["teacher_probs"], logits, t.kd_temperature
                )
                loss += tf.reduce_sum(kd) / global_batch
            wd = losses.weight_decay_loss(self.decayed, t.weight_decay)
            total = loss + wd / self.num_replicas
            scaled = (
                self.optimizer.scale_loss(total)
                if hasattr(self.optimizer, "scale_loss")
                else total
            )
        grads = tape.gradient(scaled, self.model.trainable_variables)
        if self.lr_multipliers is not None:
            # SGD (+ momentum) is linear in the gradient: scaling a
            # variable's gradient scales its learning rate.
            grads = [
                g if m == 1.0 else g * tf.cast(m, g.dtype)
                for g, m in zip(grads, self.lr_multipliers, strict=True)
            ]
        return grads, total, wd / self.num_replicas

    def _replica_train_step(self, images, batch, seed):
        """One replica's step: gradients, then the optimizer update (which
        sums the gradients across replicas)."""
        grads, total, wd = self._replica_gradients(images, batch, seed)
        self.optimizer.apply(grads, self.model.trainable_variables)
        return total, wd

    def _xla_replica_step(self):
        """`_replica_train_step` with its computation compiled by XLA.

        With one replica the whole step (optimizer update included) is one
        XLA computation. With several, the update sums the gradients across
        replicas through a `merge_call`, which cannot run inside a nested
        `tf.function`: XLA computes the gradients, the update runs outside.
        """
        whole = self.num_replicas == 1
        compiled = tf.function(
            self._replica_train_step if whole else self._replica_gradients,
            jit_compile=True,
        )

        def step(images, batch, seed):
            # XLA takes no strings (the batch's filenames).
            batch = {k: v for k, v in batch.items() if v.dtype != tf.string}
            if whole:
                return compiled(images, batch, seed)
            grads, total, wd = compiled(images, batch, seed)
            self.optimizer.apply(grads, self.model.trainable_variables)
            return total, wd

        return step

    def train_function(self):
        """The compiled step `fn(iterator, seed_base) -> (loss, wd loss)`.

        Built once; `train` runs it, benchmarks time it. `iterator` yields
        the distributed `(uint8 images, batch dict)` of `train_dataset`;
        `seed_base` is an int64 scalar (the per-step seed is
        `[seed_base, step]`).
        """
        if self._train_fn is None:
            self._train_fn = self._make_train_fn()
        return self._train_fn

    def _make_train_fn(self):
        """The step: `train_fn(iterator, seed_base) -> (loss, wd loss)`.

        The iterator is read and the DropBlock schedule set in a plain
        `tf.function`; with `jit_compile` only the per-replica computation
        inside `strategy.run` is XLA-compiled (XLA has no IteratorGetNext).
        """
        replica_step = self._replica_train_step
        if self.config.train.jit_compile:
            replica_step = self._xla_replica_step()

        def train_fn(iterator, seed_base):
            images, batch = next(iterator)
            step = tf.cast(self.optimizer.iterations, tf.int64)
            if self.dropblock and self.dropblock_layers:
                keep = schedules.dropblock_keep_prob(
                    step, self.total_steps, *self.dropblock
                )
                for layer in self.dropblock_layers:
                    layer.keep_prob_variable.assign(keep)
            seed = tf.stack([seed_base, step])
            total, wd = self.strategy.run(
                replica_step, args=(images, batch, seed)
            )
            return (
                self.strategy.reduce("SUM", total, axis=None),
                self.strategy.reduce("SUM", wd, axis=None),
            )

        return tf.function(train_fn, jit_compile=False)

    # Loops ---------------------------------------------------------------

    def train_dataset(self, epoch, stats=None):
        """The distributed train set of `epoch` (counted into `stats`)."""
        cfg = inputs.input_config(self.config, True, epoch)
        if self.config.data.synthetic:
            cfg = dataclasses.replace(cfg, dtype="float32", mixup_type=0)
            return self.strategy.distribute_datasets_from_function(
                lambda ctx: input_pipeline.build_synthetic_dataset(cfg, ctx)
            )
        return self.strategy.distribute_datasets_from_function(
            lambda ctx: input_pipeline.build_dataset(cfg, ctx, stats)
        )

    def _bn_batches(self):
        """Training crops (no mixing), normalized, one replica's batches."""
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

    def evaluate(self, dataset=None):
        """Top-1, top-5, ECE (10 bins) and loss over the whole split."""
        if dataset is None:
            dataset = self.evaluator.dataset(
                inputs.input_config(self.config, False)
            )
        return self.evaluator.evaluate(dataset)

    def restore(self):
        """Resumes from the latest checkpoint; returns True if it did."""
        latest = self.manager.latest_checkpoint
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
            self.log(
                f"Resumed from {latest} (epoch {int(self.epoch.numpy())}, "
                f"step {self.step})."
            )
            return True
        return False

    def prepare(self):
        """Resumes from the latest checkpoint, or warm starts a new run
        (and re-estimates BN statistics). Idempotent; `train` calls it."""
        if self._prepared:
            return
        t = self.config.train
        if not self.restore() and t.warm_start:
            warm_start.warm_start_model(
                self.model,
                t.warm_start,
                t.warm_start_head,
                t.warm_start_bn_stats,
                rebuild=models.rebuild_fn(self.config),
            )
            self.log(f"Warm start from {t.warm_start}.")
            if t.bn_reestimate_steps:
                with input_pipeline.reraise_data_errors():
                    count = warm_start.reestimate_bn_statistics(
                        self.model,
                        self._bn_batches(),
                        t.bn_reestimate_steps,
                        self.compute_dtype,
                    )
                self.log(
                    f"Re-estimated BN statistics of {count} layers on "
                    f"{t.bn_reestimate_steps} batches."
                )
        self._prepared = True

    def train(self, on_epoch_end=None):
        """Runs to the end; returns the history (one dict per epoch).

        Raises:
            DataError: the data stopped yielding usable records.
            NonFiniteLossError: the loss became NaN or infinite.
        """
        with input_pipeline.reraise_data_errors():
            return self._train(on_epoch_end)

    def _train(self, on_epoch_end):
        t = self.config.train
        self.prepare()
        train_fn = self.train_function()
        history = [
            r
            for r in checkpoints.load_history(self.config.model_dir)
            if r["epoch"] <= int(self.epoch.numpy())
        ]
        writer = tf.summary.create_file_writer(
            os.path.join(self.config.model_dir, "logs", "train")
        )
        num_epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        best = checkpoints.BestKeeper(self.config.model_dir, t.keep_best)
        while self.step < self.total_steps:
            epoch = int(self.epoch.numpy())
            if epoch >= num_epochs:
                break
            stats = input_pipeline.PipelineStats()
            iterator = iter(self.train_dataset(epoch, stats))
            steps = min(self.steps_per_epoch, self.total_steps - self.step)
            seed_base = tf.constant(t.seed * 7919 + epoch, tf.int64)
            start = time.perf_counter()
            losses_seen = []
            progress = _Progress(steps, epoch + 1, num_epochs, self.log)
            for i in range(steps):
                total, wd = train_fn(iterator, seed_base)
                value = float(total.numpy())
                if not math.isfinite(value):
                    raise NonFiniteLossError(
                        f"Loss is {value} at step {self.step} (epoch "
                        f"{epoch + 1}); stopping. The last good checkpoint "
                        f"is {self.manager.latest_checkpoint}."
                    )
                losses_seen.append(value)
                elapsed = time.perf_counter() - start
                rate = (i + 1) * t.batch_size / elapsed
                progress.update(i + 1, value, rate)
                if self.step % t.log_every == 0 and self.is_chief:
                    with writer.as_default(step=self.step):
                        tf.summary.scalar("step/train_loss", value)
                        tf.summary.scalar(
                            "step/learning_rate",
                            float(self.lr_schedule(self.step)),
                        )
                        tf.summary.scalar("step/train_images_per_sec", rate)
            elapsed = time.perf_counter() - start
            images_per_sec = steps * t.batch_size / max(elapsed, 1e-9)
            self.epoch.assign(epoch + 1)
            record = {
                "epoch": epoch + 1,
                "step": self.step,
                "train_loss": float(np.mean(losses_seen)),
                "weight_decay_loss": float(wd.numpy()),
                "learning_rate": float(self.lr_schedule(self.step)),
                "train_images_per_sec": images_per_sec,
            }
            if not self.config.data.synthetic:
                skipped = stats.as_dict()
                # In-flight records are read but not yet emitted: count
                # only what was found unusable.
                record["train_records_skipped"] = (
                    skipped["records_invalid_jpeg"]
                    + skipped["records_without_logits"]
                )
                if record["train_records_skipped"]:
                    self.log(
                        f"WARNING: epoch {epoch + 1} skipped "
                        f"{record['train_records_skipped']} unusable training "
                        f"records ({skipped['records_invalid_jpeg']} not "
                        f"images, {skipped['records_without_logits']} "
                        "without teacher logits)."
                    )
            if self.dropblock_layers:
                record["dropblock_keep_prob"] = float(
                    self.dropblock_layers[0].keep_prob_variable.numpy()
                )
            last = self.step >= self.total_steps or epoch + 1 >= num_epochs
            if (epoch + 1) % max(1, round(t.eval_every_epochs)) == 0 or last:
                if not self.config.data.synthetic:
                    metrics = self.evaluate()
                    record.update({f"val_{k}": v for k, v in metrics.items()})
            with writer.as_default(step=self.step):
                for k, v in record.items():
                    if isinstance(v, float):
                        tf.summary.scalar(k, v)
            history.append(record)
            # History first: a kill between the two leaves an entry that the
            # resumed run drops (it keeps epochs <= the restored one).
            if self.is_chief:
                checkpoints.save_history(self.config.model_dir, history)
            every = max(1, round(t.checkpoint_every_epochs))
            if (epoch + 1) % every == 0 or last:
                path = self.manager.save(checkpoint_number=epoch + 1)
                if "val_top1" in record and self.is_chief:
                    best.offer(path, record["val_top1"], epoch + 1)
            progress.close(record)
            if on_epoch_end is not None:
                on_epoch_end(record)
        return history


class _Progress:
    """A one-line progress display with loss and images/s."""

    def __init__(self, steps, epoch, num_epochs, log):
        self.bar = tqdm(
            total=steps,
            desc=f"epoch {epoch}/{num_epochs}",
            unit="step",
            file=sys.stderr,
            leave=False,
            mininterval=1.0,
        )
        self.done = 0
        self.log = log

    def update(self, done, loss, images_per_sec):
        self.bar.update(done - self.done)
        self.done = done
        self.bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{images_per_sec:.0f}")

    def close(self, record):
        self.bar.close()
        parts = [
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in record.items()
            if k != "val_reliability"
        ]
        self.log(" ".join(parts))


__all__ = ["NonFiniteLossError", "Trainer"]
