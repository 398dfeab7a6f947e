"""Batch-level Mixup and CutMix with soft targets, smoothing and KD.

Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018
(https://arxiv.org/abs/1710.09412); Yun et al., "CutMix", ICCV 2019
(https://arxiv.org/abs/1905.04899); label smoothing, Szegedy et al. 2016
(https://arxiv.org/abs/1512.00567). Assemble-ResNet (Lee et al. 2020,
https://arxiv.org/abs/2001.06268) follows clovaai/assembled-cnn
`utils/data_util.py: mixup`: lambda ~ Beta(0.2, 0.2) drawn per example (no
max(lambda, 1 - lambda)), the same lambda mixes images, one-hot targets and
the teacher distribution, and label smoothing is applied after mixing:

* type 1: the pipeline delivers 2B images; example i is mixed with example
  i + B, so every step consumes two fresh minibatches (B outputs);
* type 2: a batch of B is split into halves x1, x2; out1 mixes x1 with x2,
  out2 mixes x1 with reverse(x2) under a fresh lambda (B outputs). The
  original's type-2 bug (the second half's teacher target taken from the
  one-hot labels) is fixed here, on purpose.

CutMix is an addition: a box of area (1 - lambda) from the partner replaces
the same box of the image, and lambda becomes the exact kept area. Runs as a
post-process after `batch()`, on the whole batch, in `keras.ops`: the same
code mixes inside a TensorFlow step, a `tf.data` pipeline or a `jax.jit` step
(random draws from an explicit seed, `stateless_random`).
"""

import keras
from keras import ops

from assemble_tf.augment import stateless_random

MIXUP_TYPES = (0, 1, 2)
MODES = ("mixup", "cutmix")


def smooth_targets(targets, label_smoothing):
    """y (1 - ls) + ls / K over all K outputs (the original's TF1 loss)."""
    if not label_smoothing:
        return targets
    k = targets.shape[-1]
    return targets * (1.0 - label_smoothing) + label_smoothing / k


def sample_lambda(batch, alpha, seed):
    """Per-example lambda ~ Beta(alpha, alpha), float32 [batch]."""
    return stateless_random.beta(batch, float(alpha), seed)


def _mix(a, b, lam):
    lam = ops.reshape(lam, [-1] + [1] * (len(a.shape) - 1))
    lam = ops.cast(lam, a.dtype)
    return lam * a + (1.0 - lam) * b


def _cutmix_boxes(lam, height, width, seed):
    """Boxes of area ~ (1 - lam) H W; returns a [B, H, W, 1] paste mask
    and the exact kept fraction."""
    cut = ops.sqrt(1.0 - lam)
    h, w = float(height), float(width)
    cut_h = ops.cast(cut * h, "int32")
    cut_w = ops.cast(cut * w, "int32")
    centers = stateless_random.uniform((ops.shape(lam)[0], 2), seed)
    cy = ops.cast(centers[:, 0] * h, "int32")
    cx = ops.cast(centers[:, 1] * w, "int32")
    y0 = ops.clip(cy - cut_h // 2, 0, height)
    y1 = ops.clip(cy + cut_h // 2, 0, height)
    x0 = ops.clip(cx - cut_w // 2, 0, width)
    x1 = ops.clip(cx + cut_w // 2, 0, width)
    rows = ops.reshape(ops.arange(height, dtype="int32"), [1, -1, 1])
    cols = ops.reshape(ops.arange(width, dtype="int32"), [1, 1, -1])
    inside = (
        (rows >= y0[:, None, None])
        & (rows < y1[:, None, None])
        & (cols >= x0[:, None, None])
        & (cols < x1[:, None, None])
    )
    area = ops.cast((y1 - y0) * (x1 - x0), "float32")
    kept = 1.0 - area / (h * w)
    return ops.expand_dims(ops.cast(inside, "float32"), -1), kept


def _combine(x1, x2, lam, mode, seed):
    """Mixes images; returns (images, effective lambda)."""
    if mode == "mixup":
        return _mix(x1, x2, lam), lam
    # CutMix needs the spatial size when the graph is built (known for
    # every training pipeline: crops have a fixed size).
    paste, kept = _cutmix_boxes(lam, x1.shape[1], x1.shape[2], seed)
    paste = ops.cast(paste, x1.dtype)
    return x1 * (1.0 - paste) + x2 * paste, kept


def _is_floating(x):
    return "float" in keras.backend.standardize_dtype(x.dtype)


def _check_pairable(images):
    """Float images of an even count, where the count is known (the
    pipeline's batches are; before: uint8 images failed in the mixing with
    "Cannot convert 1.0 to EagerTensor of dtype uint8", and an odd batch
    lost its last image without a word)."""
    dtype = str(getattr(images, "dtype", ""))
    if "float" not in dtype:
        raise ValueError(
            f"Mixup / CutMix mix float images; `images` are {dtype}: cast "
            "them to float32 first (the training step's post-processing "
            "does)."
        )
    n = images.shape[0]
    if n is not None and n % 2:
        raise ValueError(
            f"Mixup / CutMix pair the first half of the batch with the "
            f"second: a batch of {n} images would lose its last one. Give "
            "an even batch."
        )


class MixupAndCutmix:
    """Mixes a batch of images and targets (a `tf.data` post-process).

    Call on a dict with `images` [N, H, W, 3], `targets` [N, K] (one-hot or
    soft), optional `teacher_probs` [N, K], and a `seed` int32 [2]; returns
    the same keys with N / 2 (type 1) or N (type 2) examples, plus `lambda`
    (the per-example weight of the first image).

    Args:
        mixup_type: int. 0 (off: smoothing only), 1 or 2 (see module doc).
        alpha: float. Beta(alpha, alpha) concentration (0.2 in the paper).
        mode: str. "mixup" or "cutmix".
        label_smoothing: float. Applied to the targets after mixing.
    """

    def __init__(
        self, mixup_type=1, alpha=0.2, mode="mixup", label_smoothing=0.0
    ):
        if mixup_type not in MIXUP_TYPES:
            raise ValueError(
                f"mixup_type must be one of {MIXUP_TYPES}. "
                f"Received: mixup_type={mixup_type!r}"
            )
        if not alpha > 0:
            raise ValueError(f"mixup alpha must be > 0. Received: {alpha!r}")
        if mode not in MODES:
            raise ValueError(
                f"mode must be one of {MODES}. Received: mode={mode!r}"
            )
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                "label_smoothing must be in [0, 1). "
                f"Received: label_smoothing={label_smoothing!r}"
            )
        self.mixup_type = mixup_type
        self.alpha = float(alpha)
        self.mode = mode
        self.label_smoothing = float(label_smoothing)

    @property
    def batch_multiplier(self):
        """Images the pipeline must deliver per output example."""
        return 2 if self.mixup_type == 1 else 1

    def __call__(self, batch):
        batch = dict(batch)
        seed = batch.pop("seed")
        keys = [k for k in ("images", "targets", "teacher_probs") if k in batch]
        if self.mixup_type == 0:
            batch["targets"] = smooth_targets(
                batch["targets"], self.label_smoothing
            )
            return batch
        _check_pairable(batch["images"])
        seeds = stateless_random.split(seed, 4)
        n = ops.shape(batch["images"])[0]
        half = n // 2
        first = {k: batch[k][:half] for k in keys}
        second = {k: batch[k][half : 2 * half] for k in keys}
        if self.mixup_type == 1:
            lam = sample_lambda(half, self.alpha, seeds[0])
            images, lam = _combine(
                first["images"], second["images"], lam, self.mode, seeds[1]
            )
            out = {"images": images, "lambda": lam}
            for k in keys[1:]:
                out[k] = _mix(first[k], second[k], lam)
        else:
            lam1 = sample_lambda(half, self.alpha, seeds[0])
            lam2 = sample_lambda(half, self.alpha, seeds[1])
            rev = {k: ops.flip(v, axis=0) for k, v in second.items()}
            im1, lam1 = _combine(
                first["images"], second["images"], lam1, self.mode, seeds[2]
            )
            im2, lam2 = _combine(
                first["images"], rev["images"], lam2, self.mode, seeds[3]
            )
            out = {
                "images": ops.concatenate([im1, im2], 0),
                "lambda": ops.concatenate([lam1, lam2], 0),
            }
            for k in keys[1:]:
                out[k] = ops.concatenate(
                    [
                        _mix(first[k], second[k], lam1),
                        _mix(first[k], rev[k], lam2),
                    ],
                    0,
                )
        out["targets"] = smooth_targets(out["targets"], self.label_smoothing)
        for k, v in batch.items():
            if k not in out and k not in keys:
                # Per-example extras (labels, filenames) follow the first
                # image of each pair.
                out[k] = (
                    v[:half]
                    if self.mixup_type == 1
                    else ops.concatenate([v[:half], v[:half]], 0)
                )
        return {
            k: ops.stop_gradient(v) if _is_floating(v) else v
            for k, v in out.items()
        }
