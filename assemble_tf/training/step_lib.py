"""What every backend's train step shares: the plan, the parts, the loss.

The recipe of Lee et al. 2020 (https://arxiv.org/abs/2001.06268;
clovaai/assembled-cnn `nets/run_loop_classification.py`) is written here
once, in `keras.ops`, and called by the TensorFlow step (`tf_step`) and the
JAX step (`jax_step`):

* `Plan`: steps per epoch, total steps, the warm-up + cosine learning rate
  and the DropBlock keep-probability range of a run (`plan_warnings`: what
  in it works but misleads);
* `build_parts`: the model, SGD with momentum in the original's form
  (`optimizers`; loss-scaled under
  mixed_float16), the weight-decayed variables, the DropBlock layers and
  the per-variable learning-rate multipliers of fine-tuning;
* `step_loss`: normalize and mix a uint8 batch (`BatchPostprocess`), then
  soft cross-entropy (Mixup, label smoothing) + T^2 KD + L2 weight decay,
  all float32.
"""

import dataclasses
import math

import keras

from assemble_tf import config as config_lib
from assemble_tf.data import postprocess
from assemble_tf.layers import DropBlock2D
from assemble_tf.runs import models
from assemble_tf.training import losses, optimizers, schedules
from official.utils.misc.validation import OptionError


@dataclasses.dataclass(frozen=True)
class Plan:
    """The step counts and schedules of a run.

    Attributes:
        num_train: training examples.
        steps_per_epoch: whole global batches per epoch.
        total_steps: steps of the run (`max_steps` included).
        schedule_steps: steps the schedules span, `epochs` of them
            (`max_steps` stops a run early: the start of the same run).
        num_epochs: epochs the loop runs (the last may be cut short).
        lr_schedule: the `WarmupSchedule`.
        dropblock: (start, end) keep probability, or None.
    """

    num_train: int
    steps_per_epoch: int
    total_steps: int
    schedule_steps: int
    num_epochs: int
    lr_schedule: schedules.WarmupSchedule
    dropblock: tuple | None

    def keep_prob(self, step):
        """The DropBlock keep probability at `step` (number or tensor)."""
        return schedules.dropblock_keep_prob(
            step, self.schedule_steps, *self.dropblock
        )


def make_plan(config):
    """The `Plan` of `config` (reads the training split's size)."""
    t = config.train
    if config.data.synthetic:  # nothing to read (nor TensorFlow to import)
        num_train = config_lib.synthetic_train_examples(config)
    else:
        from assemble_tf.runs import inputs

        num_train = inputs.num_train_examples(config)
    steps_per_epoch = max(1, num_train // t.batch_size)
    schedule_steps = max(1, int(steps_per_epoch * t.epochs))
    total_steps = schedule_steps
    if t.max_steps:
        total_steps = min(total_steps, t.max_steps)
    lr = t.base_learning_rate
    if t.scale_learning_rate:
        lr = lr * t.batch_size / 256.0
    # The schedule's epoch is the loop's: num_train // batch_size steps
    # (at least 1), so the learning rate ends where the run and the
    # DropBlock schedule end. The original's N / B (fractional) suits its
    # data repeating across epochs; with the loop dropping each epoch's
    # last partial batch it left the cosine at 16 % of its peak when a
    # run ended (Flowers-102: 1,020 images at batch 256, 300 of the
    # schedule's 398 steps), and a split smaller than a batch ended the
    # schedule after half the steps.
    schedule = schedules.WarmupSchedule(
        lr, steps_per_epoch, t.epochs, t.warmup_epochs, t.lr_schedule
    )
    return Plan(
        num_train=num_train,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        schedule_steps=schedule_steps,
        num_epochs=math.ceil(total_steps / steps_per_epoch),
        lr_schedule=schedule,
        dropblock=t.dropblock_keep_prob,
    )


@dataclasses.dataclass
class Parts:
    """The trainable pieces of a run (built inside the backend's scope)."""

    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    decayed: list
    dropblock_layers: list
    lr_multipliers: list | None
    post: postprocess.BatchPostprocess


def plan_warnings(config, plan):
    """`OptionError`s, not raised, of a plan that works but misleads:
    fewer training images than a batch, a step schedule that never
    decays."""
    t, warnings = config.train, []
    if plan.num_train < t.batch_size:
        warnings.append(
            OptionError(
                "batch_size",
                "the training split has {count:,} images, fewer than one "
                "batch of {value:,}: each step repeats images within its "
                "batch. A smaller {field} trains on each image once a step.",
                count=plan.num_train,
                value=t.batch_size,
            )
        )
    bounds = schedules.PIECEWISE_BOUNDARIES
    if t.lr_schedule == "piecewise" and t.epochs <= bounds[0]:
        # Before: the rate stayed at its peak without a word (the
        # resnet50 preset's Table 1 recipe is piecewise).
        warnings.append(
            OptionError(
                "lr_schedule",
                "{field}=piecewise drops the learning rate at epochs "
                "{bounds}, as the original's step schedule: a run of "
                "{epochs:g} epochs never decays. Set {field}=cosine for a "
                "short run.",
                bounds=", ".join(map(str, bounds)),
                epochs=t.epochs,
            )
        )
    return warnings


def build_parts(config, plan):
    """The model and optimizer of a run, with what the loss needs."""
    t = config.train
    model = models.build_run_model(config)
    if t.freeze_backbone:
        for layer in model.layers:
            if not layer.name.startswith(models.HEAD_PREFIXES):
                layer.trainable = False
    multipliers = None
    if t.backbone_lr_multiplier != 1.0 and not t.freeze_backbone:
        multipliers = [
            1.0
            if models.is_head_variable(v)
            else float(t.backbone_lr_multiplier)
            for v in model.trainable_variables
        ]
    optimizer = optimizers.make_optimizer(
        t.optimizer, plan.lr_schedule, t.momentum
    )
    if t.mixed_precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    layers = [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, DropBlock2D)
    ]
    return Parts(
        model=model,
        optimizer=optimizer,
        decayed=losses.decayed_variables(model),
        dropblock_layers=layers,
        lr_multipliers=multipliers,
        post=postprocess.BatchPostprocess(
            postprocess.MixingConfig.from_augment(config.augment)
        ),
    )


def numeric_entries(batch):
    """The numeric entries of a host (numpy) batch: steps take no strings
    (the filenames)."""
    return {k: v for k, v in batch.items() if v.dtype.kind not in "OSU"}


def step_loss(
    config, parts, images, batch, seed, logits_fn, decayed, num_replicas
):
    """Post-processes a uint8 batch, runs the model and returns the loss.

    Args:
        config: `ExperimentConfig`.
        parts: `Parts`.
        images: uint8 [N, H, W, 3] (N = 2B under Mixup type 1).
        batch: the batch dict (`targets`, optional `teacher_probs`).
        seed: int [2], the step's seed (mixing draws).
        logits_fn: callable(images) -> logits (a plain call under
            TensorFlow, a stateless call under JAX).
        decayed: the weight-decayed variables (or their values).
        num_replicas: replicas whose losses are summed (1 under JAX, where
            the step sees the global batch).

    Returns:
        (this replica's share of the total loss, of the weight decay).
    """
    compute_dtype = keras.config.dtype_policy().compute_dtype
    images, batch = parts.post(
        dict(batch, images=images), seed, dtype=compute_dtype
    )
    global_batch = images.shape[0]
    if global_batch is None:
        global_batch = keras.ops.shape(images)[0]
    logits = logits_fn(images)
    loss = losses.recipe_loss(
        batch,
        logits,
        config.train.kd_temperature,
        global_batch * num_replicas,
    )
    wd = (
        losses.weight_decay_loss(decayed, config.train.weight_decay)
        / num_replicas
    )
    return loss + wd, wd


def scale_gradients(grads, multipliers):
    """SGD (+ momentum) is linear in the gradient: scaling a variable's
    gradient scales its learning rate."""
    if multipliers is None:
        return grads
    return [
        g if m == 1.0 else g * keras.ops.cast(m, g.dtype)
        for g, m in zip(grads, multipliers, strict=True)
    ]
