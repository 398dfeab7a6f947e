"""Learning-rate and DropBlock keep-probability schedules, per step.

Follows clovaai/assembled-cnn `functions/model_fns.py:
learning_rate_with_decay` and `keep_prob_decay` (Lee et al. 2020,
https://arxiv.org/abs/2001.06268): the base learning rate is used as given
(no batch scaling unless asked), a linear warm-up from 0 over
int(steps_per_epoch * warmup_epochs) steps, then cosine to exactly 0 at
int(steps_per_epoch * epochs); the DropBlock keep probability falls
linearly from its start to its end value over the whole run. Both are
`keras.ops`: the optimizer evaluates the learning rate inside the TensorFlow
step and inside the JAX step alike.
"""

import math

import keras
from keras import ops

LR_SCHEDULES = ("cosine", "piecewise", "constant")
PIECEWISE_BOUNDARIES = (30, 60, 80, 90)
PIECEWISE_FACTORS = (1.0, 0.1, 0.01, 0.001, 1e-4)


@keras.saving.register_keras_serializable(package="assemble_tf")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0, then cosine to 0, step decay or constant.

    Args:
        base_learning_rate: float. Peak learning rate.
        steps_per_epoch: float. Steps of an epoch (the trainer's N_train //
            global batch; the original's N_train / batch is fractional).
        epochs: float. Length of the run.
        warmup_epochs: float. Warm-up length (5 in the paper).
        schedule: str. "cosine", "piecewise" (x0.1 at epochs 30, 60, 80, 90
            as the original) or "constant".
    """

    def __init__(
        self,
        base_learning_rate,
        steps_per_epoch,
        epochs,
        warmup_epochs=5.0,
        schedule="cosine",
    ):
        if schedule not in LR_SCHEDULES:
            raise ValueError(
                f"lr schedule must be one of {LR_SCHEDULES}. "
                f"Received: schedule={schedule!r}"
            )
        if not base_learning_rate > 0:
            raise ValueError(
                "base_learning_rate must be > 0. "
                f"Received: base_learning_rate={base_learning_rate!r}"
            )
        if not steps_per_epoch > 0 or not epochs > 0 or warmup_epochs < 0:
            raise ValueError(
                "steps_per_epoch and epochs must be > 0 and warmup_epochs "
                f">= 0. Received: steps_per_epoch={steps_per_epoch!r}, "
                f"epochs={epochs!r}, warmup_epochs={warmup_epochs!r}"
            )
        self.base_learning_rate = float(base_learning_rate)
        self.steps_per_epoch = float(steps_per_epoch)
        self.epochs = float(epochs)
        self.warmup_epochs = float(warmup_epochs)
        self.schedule = schedule
        self.warmup_steps = int(self.steps_per_epoch * self.warmup_epochs)
        self.total_steps = int(self.steps_per_epoch * self.epochs)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        lr = self.base_learning_rate
        w = float(self.warmup_steps)
        if self.schedule == "cosine":
            decay = max(float(self.total_steps) - w, 1.0)
            t = ops.minimum(ops.maximum(step - w, 0.0), decay)
            after = lr * 0.5 * (1.0 + ops.cos(math.pi * t / decay))
        elif self.schedule == "piecewise":
            # As the original: boundaries int(steps_per_epoch * epoch),
            # each rate kept through its boundary step
            # (`tf.train.piecewise_constant`); before, the rate dropped a
            # step early where a boundary was a whole number of steps.
            bounds = [
                int(b * self.steps_per_epoch) for b in PIECEWISE_BOUNDARIES
            ]
            after = ops.full_like(step, lr * PIECEWISE_FACTORS[0])
            for bound, factor in zip(
                bounds, PIECEWISE_FACTORS[1:], strict=True
            ):
                after = ops.where(step > bound, lr * factor, after)
        else:
            after = ops.full_like(step, lr)
        if self.warmup_steps > 0:
            return ops.where(step < w, lr * step / w, after)
        return after

    def get_config(self):
        return {
            "base_learning_rate": self.base_learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
            "epochs": self.epochs,
            "warmup_epochs": self.warmup_epochs,
            "schedule": self.schedule,
        }


def dropblock_keep_prob(step, total_steps, start=1.0, end=0.9):
    """Linear keep probability from `start` to `end` over `total_steps`.

    Works on Python numbers and on tensors (the train steps call it with
    the step counter); returns a float32 tensor.
    """
    frac = ops.clip(
        ops.cast(step, "float32") / max(float(total_steps), 1.0), 0.0, 1.0
    )
    return start + (end - start) * frac
