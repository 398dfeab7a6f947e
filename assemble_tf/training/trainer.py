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

Checkpoints are written at epoch ends by a `tf.train.CheckpointManager`
(model, optimizer, epoch); a rerun of the same command resumes from the
latest one. Each epoch's data order depends only on (seed, epoch), so with
`deterministic=True` a resumed run ends with the same weights as an
uninterrupted one.
"""

import dataclasses
import json
import math
import os
import shutil
import sys
import time
import warnings

import keras
import numpy as np
import tensorflow as tf

from assemble_tf import config as config_lib
from assemble_tf.data import input_pipeline, metadata
from assemble_tf.evaluation.evaluator import Evaluator
from assemble_tf.layers import DropBlock2D
from assemble_tf.models import build_model
from assemble_tf.training import losses, schedules
from official.utils.misc import distribution_utils, file_utils


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite."""


def setup_runtime(config):
    """Precision policy, seeds and determinism; returns the strategy."""
    t, rt = config.train, config.runtime
    # The strategy first: multi-worker collectives must be configured
    # before the TF runtime starts.
    strategy = distribution_utils.get_distribution_strategy(
        rt.distribution_strategy, rt.num_gpus, rt.tpu
    )
    keras.config.set_dtype_policy(t.mixed_precision)
    keras.utils.set_random_seed(t.seed)
    if t.deterministic:
        tf.config.experimental.enable_op_determinism()
    return strategy


def count_examples(data_dir, split, pattern):
    """Images of a split: from the builder's summary.json, else counted."""
    images = metadata.split_images(data_dir, split)
    if images is not None:
        return images
    files = tf.io.gfile.glob(os.path.join(data_dir, pattern))
    return sum(1 for f in files for _ in tf.data.TFRecordDataset(f))


def make_augmenter(augment, seed=0):
    """AutoAugment / RandAugment from the config (seeded: the pipeline
    passes per-image stateless seeds, and op determinism forbids unseeded
    generators)."""
    if augment.autoaugment and augment.autoaugment != "none":
        from assemble_tf.augment.autoaugment import AutoAugment

        return AutoAugment(augment.autoaugment, seed=seed)
    if augment.randaugment_layers:
        from assemble_tf.augment.autoaugment import RandAugment

        return RandAugment(
            augment.randaugment_layers,
            augment.randaugment_magnitude,
            seed=seed,
        )
    return None


def input_config(config, is_training, epoch=0):
    """The `InputConfig` of the train or eval split."""
    d, a, t = config.data, config.augment, config.train
    num_logits = None
    if t.kd_temperature > 0 and is_training:
        num_logits = d.num_classes + d.label_offset
    return input_pipeline.InputConfig(
        file_pattern=os.path.join(
            d.data_dir or "",
            d.train_pattern if is_training else d.validation_pattern,
        ),
        is_training=is_training,
        batch_size=t.batch_size
        if is_training
        else (t.eval_batch_size or t.batch_size),
        num_classes=d.num_classes,
        image_size=d.image_size,
        preprocessing_type=d.eval_preprocessing,
        label_offset=d.label_offset,
        use_bboxes=d.use_bboxes,
        min_crop_area=d.min_crop_area,
        num_logits=num_logits,
        teacher_temperature=t.kd_temperature or 1.0,
        mixup_type=a.mixup_type,
        mixup_alpha=a.mixup_alpha,
        mixup_mode=a.mixup_mode,
        label_smoothing=a.label_smoothing,
        augmenter=make_augmenter(a, t.seed) if is_training else None,
        dtype="uint8" if is_training else "float32",
        shuffle_buffer=d.shuffle_buffer,
        deterministic=t.deterministic,
        seed=t.seed * 1000 + epoch,
        cache=d.cache,
        record_source=_record_source(d, is_training),
    )


def open_data_source(data_config):
    """The `SourceInfo` of `data.source` (tfds name or image folder)."""

    return open_source_cached(
        data_config.source, data_config.tfds_data_dir, data_config.download
    )


_SOURCES = {}


def open_source_cached(source, data_dir, download):
    from assemble_tf.data import tfds_source

    key = (source, data_dir, download)
    if key not in _SOURCES:
        _SOURCES[key] = tfds_source.open_source(source, data_dir, download)
    return _SOURCES[key]


def _record_source(data_config, is_training):
    """A `record_source` callable for `InputConfig`, or None (TFRecords)."""
    if not data_config.source:
        return None
    from assemble_tf.data import tfds_source

    info = open_data_source(data_config)
    split = (
        data_config.train_split if is_training else data_config.validation_split
    )
    tfds_source.num_examples(info, split)  # validates the split name now

    bounds = config_lib.class_range(data_config)

    def source(input_context, training, seed):
        ds = tfds_source.encoded_dataset(
            info,
            split,
            shuffle_files=training,
            input_context=input_context,
            seed=seed,
        )
        if bounds:
            low = tf.constant(bounds[0], tf.int64)
            ds = tfds_source.filter_classes(ds, *bounds)
            ds = ds.map(lambda image, label: (image, label - low))
        return ds

    return source


def count_source_examples(data_config, split):
    """Examples of `split` of `data.source` within `data.class_range`."""
    source = _record_source(
        dataclasses.replace(data_config, train_split=split), True
    )
    ds = source(None, False, 0).map(lambda image, label: label)
    return int(ds.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


def build_run_model(config, image_size=None, **extra):
    """The preset's model with the run's overrides (and `extra` ones)."""
    return build_model(
        config.model.preset,
        **config.model.build_overrides(config.data.num_classes, image_size),
        **extra,
    )


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
        d, t = config.data, config.train
        self.num_replicas = strategy.num_replicas_in_sync
        if t.batch_size % self.num_replicas:
            raise ValueError(
                f"--batch_size={t.batch_size} is not divisible by the "
                f"{self.num_replicas} replicas."
            )
        if d.synthetic:
            self.num_train = d.num_train_examples or 10 * t.batch_size
        elif d.source:
            from assemble_tf.data import tfds_source

            if d.num_train_examples:
                self.num_train = d.num_train_examples
            elif d.class_range:
                # Filtered by label: count once (labels only).
                self.num_train = count_source_examples(d, d.train_split)
            else:
                self.num_train = tfds_source.num_examples(
                    open_data_source(d), d.train_split
                )
        else:
            self.num_train = d.num_train_examples or count_examples(
                d.data_dir, "train", d.train_pattern
            )
        if self.num_train < 1:
            where = d.source or d.data_dir
            raise input_pipeline.DataError(
                f"The training split of {where} has no images "
                f"({self.num_train}); check the data (summary.json of "
                "tools.build_imagenet_tfrecords lists what was skipped) or "
                "--num_train_examples."
            )
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
        self.dropblock = config_lib.dropblock_range(t)
        self.post = input_pipeline.BatchPostprocess(input_config(config, True))
        with strategy.scope():
            self.model = build_run_model(config)
            if t.freeze_backbone:
                for layer in self.model.layers:
                    if not layer.name.startswith(HEAD_PREFIXES):
                        layer.trainable = False
            self.lr_multipliers = None
            if t.backbone_lr_multiplier != 1.0 and not t.freeze_backbone:
                self.lr_multipliers = [
                    1.0
                    if _is_head_variable(v)
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
        self.is_chief, ckpt_dir = _chief_and_dir(strategy, config.model_dir)
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

    def _replica_train_step(self, images, batch, seed):
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
        variables = self.model.trainable_variables
        grads = tape.gradient(scaled, variables)
        if self.lr_multipliers is not None:
            # SGD (+ momentum) is linear in the gradient: scaling a
            # variable's gradient scales its learning rate.
            grads = [
                g if m == 1.0 else g * tf.cast(m, g.dtype)
                for g, m in zip(grads, self.lr_multipliers, strict=True)
            ]
        self.optimizer.apply(grads, variables)
        return total, wd / self.num_replicas

    def _make_train_fn(self):
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
                self._replica_train_step, args=(images, batch, seed)
            )
            return (
                self.strategy.reduce("SUM", total, axis=None),
                self.strategy.reduce("SUM", wd, axis=None),
            )

        return tf.function(train_fn, jit_compile=self.config.train.jit_compile)

    # Loops ---------------------------------------------------------------

    def train_dataset(self, epoch, stats=None):
        """The distributed train set of `epoch` (counted into `stats`)."""
        cfg = input_config(self.config, True, epoch)
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
            input_config(self.config, True),
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
            dataset = self.evaluator.dataset(input_config(self.config, False))
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
            warm_start_model(
                self.model,
                t.warm_start,
                t.warm_start_head,
                t.warm_start_bn_stats,
                rebuild=lambda n: build_model(
                    self.config.model.preset,
                    **self.config.model.build_overrides(n),
                ),
            )
            self.log(f"Warm start from {t.warm_start}.")
            if t.bn_reestimate_steps:
                with input_pipeline.reraise_data_errors():
                    count = reestimate_bn_statistics(
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
        if self._train_fn is None:
            self._train_fn = self._make_train_fn()
        history = [
            r
            for r in _load_history(self.config.model_dir)
            if r["epoch"] <= int(self.epoch.numpy())
        ]
        writer = tf.summary.create_file_writer(
            os.path.join(self.config.model_dir, "logs", "train")
        )
        num_epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        best = _BestKeeper(self.config.model_dir, t.keep_best)
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
                total, wd = self._train_fn(iterator, seed_base)
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
                _save_history(self.config.model_dir, history)
            every = max(1, round(t.checkpoint_every_epochs))
            if (epoch + 1) % every == 0 or last:
                path = self.manager.save(checkpoint_number=epoch + 1)
                if "val_top1" in record and self.is_chief:
                    best.offer(path, record["val_top1"], epoch + 1)
            progress.close(record)
            if on_epoch_end is not None:
                on_epoch_end(record)
        return history


def find_checkpoint(model_dir, which="latest"):
    """A run's checkpoint prefix: "latest", "best" or an explicit prefix."""
    if which == "latest":
        found = tf.train.latest_checkpoint(
            os.path.join(model_dir, "checkpoints")
        )
    elif which == "best":
        entries = _BestKeeper(model_dir, 0).entries
        found = entries[0]["prefix"] if entries else None
    else:
        found = which if tf.io.gfile.glob(which + ".index") else None
    if not found:
        raise FileNotFoundError(
            f"No checkpoint '{which}' under {model_dir}; train first or pass "
            "--checkpoint=PREFIX / --weights=FILE."
        )
    return found


# Layers of the classification / embedding head (everything else is the
# backbone for freeze_backbone and backbone_lr_multiplier).
HEAD_PREFIXES = ("head_", "logits")
# Layers re-initialised by a warm start without the head.
_REINIT_LAYERS = ("head_dense", "head_embedding")


def _is_head_variable(variable):
    return variable.path.startswith(HEAD_PREFIXES)


def _layer_of(path):
    return path.split("/")[0]


def _source_weights(path, rebuild):
    """{variable path: numpy value} of a SavedModel or a run checkpoint
    whose model differs from ours (another class count), or None when the
    checkpoint can be restored directly."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        if rebuild is None:
            raise ValueError(
                f"--warm_start={path} is a SavedModel: warm starting from it "
                "needs the run's config (use the training binaries)."
            )
        loaded = tf.saved_model.load(path)
        if "preprocessed" not in loaded.signatures:
            raise ValueError(
                f"--warm_start={path} is not a SavedModel of "
                "tools.export_saved_model (no 'preprocessed' signature)."
            )
        outputs = loaded.signatures["preprocessed"].structured_outputs
        twin = rebuild(int(outputs["logits"].shape[-1]))
        tf.train.Checkpoint(model=twin).read(
            os.path.join(path, "variables", "variables")
        ).expect_partial()
        return {v.path: v.numpy() for v in twin.variables}
    run_dir = path if os.path.isdir(path) else os.path.dirname(path)
    for candidate in (run_dir, os.path.dirname(run_dir)):
        cfg = os.path.join(candidate, "config.json")
        if os.path.isfile(cfg):
            source = build_run_model(config_lib.ExperimentConfig.from_json(cfg))
            prefix = (
                tf.train.latest_checkpoint(path)
                if os.path.isdir(path)
                else path
            )
            if prefix is None and os.path.isdir(path):
                prefix = tf.train.latest_checkpoint(
                    os.path.join(path, "checkpoints")
                )
            if not prefix or not tf.io.gfile.glob(prefix + ".index"):
                return None
            tf.train.Checkpoint(model=source).restore(prefix).expect_partial()
            return {v.path: v.numpy() for v in source.variables}
    return None


def is_rng_state(variable):
    """True for the state of a `keras.random.SeedGenerator` (DropBlock's
    noise): not a weight, and named by a process-wide counter
    (`seed_generator_<n>`) that differs between two builds of one model."""
    return variable.path.rsplit("/", 1)[-1] == "seed_generator_state"


def _assign_by_path(model, weights, load_head, origin):
    """Copies `weights` ({path: value}) into `model`; returns the count.
    Random generator states are neither copied nor required."""
    missing, mismatched, count = [], [], 0
    for v in model.variables:
        if is_rng_state(v):
            continue
        if not load_head and _layer_of(v.path) in _REINIT_LAYERS:
            continue
        value = weights.get(v.path)
        if value is None:
            missing.append(v.path)
        elif tuple(value.shape) != tuple(v.shape):
            mismatched.append(f"{v.path} {value.shape} vs {tuple(v.shape)}")
        else:
            v.assign(value)
            count += 1
    if missing or mismatched:
        raise ValueError(
            f"--warm_start={origin} does not fit the model: "
            f"{len(missing)} variables missing (e.g. {missing[:3]}), "
            f"{len(mismatched)} of another shape (e.g. {mismatched[:3]}). "
            "Use the preset (and overrides) the weights were trained with."
        )
    return count


def warm_start_model(
    model, path, load_head=False, keep_bn_stats=True, rebuild=None
):
    """Loads pretrained weights for fine-tuning.

    Args:
        model: the freshly built model.
        path: a `.weights.h5` file (e.g. from the checkpoint importer), a
            run's model_dir / checkpoints dir / checkpoint prefix (its
            config.json may have another class count), or a SavedModel
            exported by `tools.export_saved_model`.
        load_head: also take the classifier; False re-initialises it (its
            shape may differ: 1001 ImageNet classes vs the new task).
        keep_bn_stats: keep BN moving statistics; False resets them to
            0 / 1 (the original warm start restored trainable variables
            only, ASSEMBLE_SPEC 8.3).
        rebuild: callable(num_classes) -> a model of the same architecture
            with another class count (needed for SavedModels, whose
            variables are matched through such a twin; BN-folded exports
            cannot be used).
    """
    if path.endswith(".weights.h5"):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--warm_start={path} does not exist.")
        with warnings.catch_warnings():
            # Without the head its shape may differ (e.g. 1001 -> 102):
            # Keras warns about the skipped layer, which is intended here.
            if not load_head:
                warnings.filterwarnings(
                    "ignore", message=".*could not be loaded.*"
                )
            model.load_weights(path, skip_mismatch=not load_head)
    elif not tf.io.gfile.exists(path) and not tf.io.gfile.glob(path + ".index"):
        raise FileNotFoundError(f"--warm_start={path} does not exist.")
    else:
        weights = _source_weights(path, rebuild)
        if weights is not None:
            _assign_by_path(model, weights, load_head, path)
        else:
            prefix = (
                tf.train.latest_checkpoint(path)
                if os.path.isdir(path)
                else path
            )
            if not prefix or not tf.io.gfile.glob(prefix + ".index"):
                raise FileNotFoundError(
                    f"--warm_start={path}: no checkpoint found (pass a "
                    "run's model_dir or checkpoints/ dir, a prefix, a "
                    "SavedModel or a .weights.h5 file)."
                )
            tf.train.Checkpoint(model=model).restore(prefix).expect_partial()
    if not load_head:
        for name in _REINIT_LAYERS:
            try:
                layer = model.get_layer(name)
            except ValueError:
                continue
            for var, init in (
                (layer.kernel, layer.kernel_initializer),
                (
                    getattr(layer, "bias", None),
                    getattr(layer, "bias_initializer", None),
                ),
            ):
                if var is not None:
                    var.assign(init(var.shape, var.dtype))
    if not keep_bn_stats:
        for layer in model._flatten_layers(include_self=False):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.moving_mean.assign(tf.zeros_like(layer.moving_mean))
                layer.moving_variance.assign(
                    tf.ones_like(layer.moving_variance)
                )


def reestimate_bn_statistics(model, batches, steps, dtype="float32"):
    """Sets BN moving statistics to the mean over `steps` batches.

    Fine-tuning from weights whose statistics were reset (the original
    restored trainable variables only) or that come from another domain.
    Batch k is given momentum k / (k + 1), so after n batches the moving
    mean is exactly the mean of the n batch means (likewise the variance).
    DropBlock is switched off (keep probability 1) meanwhile.

    Args:
        model: the model (its BN layers are updated in place).
        batches: an iterable of normalized image batches.
        steps: number of batches to use.
        dtype: compute dtype the images are cast to.

    Returns:
        The number of BN layers updated.
    """
    from assemble_tf.layers import set_dropblock_keep_prob

    layers = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
        and layer.trainable
    ]
    momentum = [layer.momentum for layer in layers]
    set_dropblock_keep_prob(model, 1.0)
    done = 0
    try:
        for k, images in enumerate(batches):
            if k >= steps:
                break
            for layer in layers:
                layer.momentum = k / (k + 1.0)
            model(tf.cast(images, dtype), training=True)
            done += 1
    finally:
        for layer, m in zip(layers, momentum, strict=True):
            layer.momentum = m
    if done < steps:
        raise ValueError(
            f"--bn_reestimate_steps={steps}: the data gave only {done} batches."
        )
    return len(layers)


def _chief_and_dir(strategy, model_dir):
    """(is_chief, checkpoint dir) following the multi-worker convention."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", 0) or 0
    if task_type is None or task_type == "chief":
        chief = True
    else:
        spec = resolver.cluster_spec().as_dict() if resolver else {}
        chief = "chief" not in spec and task_type == "worker" and task_id == 0
    base = os.path.join(model_dir, "checkpoints")
    if chief:
        return True, base
    return False, os.path.join(model_dir, f".scratch_{task_type}{task_id}")


class _Progress:
    """A one-line progress display with loss and images/s."""

    def __init__(self, steps, epoch, num_epochs, log):
        from tqdm import tqdm

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


class _BestKeeper:
    """Copies the N best checkpoints by validation top-1 to model_dir/best.

    best.json stores each prefix by name inside `best/` (a moved run
    stays whole); `entries` holds them as full paths.
    """

    def __init__(self, model_dir, keep):
        self.dir = os.path.join(model_dir, "best")
        self.keep = keep
        self.index_path = os.path.join(self.dir, "best.json")
        self.entries = []
        if os.path.isfile(self.index_path):
            with open(self.index_path) as f:
                self.entries = [
                    # basename: older runs stored absolute paths.
                    dict(e, prefix=os.path.join(self.dir, _name(e["prefix"])))
                    for e in json.load(f)
                ]

    def offer(self, prefix, top1, epoch):
        if self.keep <= 0:
            return
        os.makedirs(self.dir, exist_ok=True)
        name = f"epoch{epoch:04d}"
        for src in tf.io.gfile.glob(prefix + ".*"):
            suffix = src[len(prefix) :]
            shutil.copyfile(src, os.path.join(self.dir, name + suffix))
        self.entries = [e for e in self.entries if e["epoch"] != epoch]
        self.entries.append(
            {
                "epoch": epoch,
                "top1": top1,
                "prefix": os.path.join(self.dir, name),
            }
        )
        self.entries.sort(key=lambda e: (-e["top1"], e["epoch"]))
        for gone in self.entries[self.keep :]:
            for f in tf.io.gfile.glob(gone["prefix"] + ".*"):
                os.remove(f)
        self.entries = self.entries[: self.keep]
        stored = [dict(e, prefix=_name(e["prefix"])) for e in self.entries]
        file_utils.atomic_write_json(self.index_path, stored, indent=1)


def _name(prefix):
    return os.path.basename(prefix.replace("\\", "/"))


def _history_path(model_dir):
    return os.path.join(model_dir, "history.json")


def _load_history(model_dir):
    path = _history_path(model_dir)
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    return []


def _save_history(model_dir, history):
    file_utils.atomic_write_json(_history_path(model_dir), history, indent=1)


__all__ = [
    "NonFiniteLossError",
    "Trainer",
    "count_examples",
    "input_config",
    "setup_runtime",
]
