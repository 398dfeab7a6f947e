"""On-device batch post-processing: normalization, Mixup / CutMix, label
smoothing, in `keras.ops` for every backend.

Lee et al. 2020 (https://arxiv.org/abs/2001.06268) normalize and mix the
batch after batching (clovaai/assembled-cnn `utils/data_util.py: mixup`).
The same `BatchPostprocess` runs inside a float `tf.data` pipeline, the
TensorFlow train step and the jitted JAX step; the module imports no
TensorFlow, so a JAX-only machine can run the JAX step.
"""

import dataclasses

import keras
import numpy as np
from keras import ops

from assemble_tf.augment.mixup import MixupAndCutmix
from assemble_tf.data.schema import MEAN_RGB


@dataclasses.dataclass(frozen=True)
class MixingConfig:
    """What `BatchPostprocess` reads (an `InputConfig` has the same
    fields): the training recipe's mixing and the normalization."""

    is_training: bool = True
    mixup_type: int = 0
    mixup_alpha: float = 0.2
    mixup_mode: str = "mixup"
    label_smoothing: float = 0.0
    stddev: tuple | None = None

    @classmethod
    def from_augment(cls, augment):
        """The training post-process of a run's `AugmentConfig`."""
        return cls(
            mixup_type=augment.mixup_type,
            mixup_alpha=augment.mixup_alpha,
            mixup_mode=augment.mixup_mode,
            label_smoothing=augment.label_smoothing,
        )


def normalize_batch(images, dtype="float32", stddev=None):
    """uint8 [B, H, W, 3] -> mean-subtracted (and `stddev`-scaled) `dtype`
    images, in `keras.ops` (the train step's normalization on every backend;
    the same numbers as `preprocessing.normalize`)."""
    images = ops.cast(images, "float32") - np.array(MEAN_RGB, np.float32)
    if stddev is not None:
        images = images / np.array(stddev, np.float32)
    return ops.cast(images, dtype)


class BatchPostprocess:
    """Normalization, Mixup / CutMix and label smoothing of a batch.

    The same code runs inside `tf.data` (float pipelines) or in the train
    step on the accelerator (`dtype="uint8"` pipelines):
    `images, batch = post(batch_with_images, seed)`.
    """

    def __init__(self, config):
        self.config = config
        self.mixer = None
        if config.is_training and (config.mixup_type or config.label_smoothing):
            self.mixer = MixupAndCutmix(
                config.mixup_type,
                config.mixup_alpha,
                config.mixup_mode,
                config.label_smoothing,
            )

    @property
    def active(self):
        return self.mixer is not None

    @property
    def batch_multiplier(self):
        """Images the pipeline delivers per training example (2: type 1)."""
        return self.mixer.batch_multiplier if self.mixer else 1

    def __call__(self, batch, seed, dtype=None):
        batch = dict(batch)
        images = batch["images"]
        if keras.backend.standardize_dtype(images.dtype) == "uint8":
            # Mixed in float32, then cast: mixing bfloat16 images weighed
            # them by a rounded lambda (0.5977) and their targets by the
            # exact one (0.5974).
            images = normalize_batch(images, "float32", self.config.stddev)
        batch["images"] = images
        if self.mixer is not None:
            batch = self.mixer(dict(batch, seed=seed))
        images = batch.pop("images")
        if dtype is not None and keras.backend.standardize_dtype(
            images.dtype
        ) != keras.backend.standardize_dtype(dtype):
            images = keras.ops.cast(images, dtype)
        return images, batch
