"""The experiment configuration: one frozen tree, written to config.json.

Shape after TF Model Garden `ExperimentConfig` (a dataclass tree serialized
next to the checkpoints, from which evaluation, export and resumption rebuild
everything), without its registry machinery. Defaults of a run come from a
preset's recipe (`assemble_tf.presets`, Lee et al. 2020,
https://arxiv.org/abs/2001.06268); overrides replace only the fields the user
set. Every field carries its help text, from which the binaries' flags are
made (a field named `name` in backticks reads as its flag there).
"""

import dataclasses
import json
import math
import os
import typing

from assemble_tf import presets
from official.utils.misc import file_utils
from official.utils.misc.validation import (
    OptionError,
    check_creatable_path,
    check_local_path,
)


def _f(default, help_text, check=None, parse=None):
    """A config field with its help text.

    Args:
        default: the default value.
        help_text: the help of the field (and of its flag); other fields
            are named in backticks (`source`).
        check: `(predicate, allowed)`: a value that is not None must pass
            `predicate`, else `validate()` says "is invalid: {allowed}".
        parse: turns any accepted form of the value (text such as
            "3,4,6,3", a JSON list) into the field's type; `from_dict`
            applies it.
    """
    meta = {"help": help_text}
    if check is not None:
        meta["check"] = check
    if parse is not None:
        meta["parse"] = parse
    return dataclasses.field(default=default, metadata=meta)


def _one_of(*values):
    allowed = ", ".join(str(v) for v in values[:-1]) + f" or {values[-1]}"
    return (lambda v: v in values, allowed)


def _at_least(low):
    return (lambda v: v >= low, f"must be >= {low}")


def _whole_epochs():
    """Checkpoints and evaluations happen at epoch ends: 1, 2, ..."""
    return (
        lambda v: v >= 1 and float(v).is_integer(),
        "must be a whole number of epochs >= 1 (checkpoints and "
        "evaluations happen at epoch ends)",
    )


def _above(low):
    return (lambda v: v > low, f"must be > {low}")


def _fraction(closed_low, closed_high, low=0, high=1):
    """In [low, high] with open or closed ends."""
    text = "[" if closed_low else "("
    text += f"{low}, {high}" + ("]" if closed_high else ")")

    def ok(v):
        return (v >= low if closed_low else v > low) and (
            v <= high if closed_high else v < high
        )

    return (ok, f"must be in {text}")


def invalid(field, value, allowed, others=()):
    """The error of a field whose value is not allowed (`OptionError`:
    the library names the field, a binary prints its flag).

    Args:
        field: the field at fault.
        value: its value.
        allowed: what is allowed, as text; `{name}` names each of `others`
            (other braces are literal).
        others: other fields `allowed` names.
    """
    allowed = allowed.replace("{", "{{").replace("}", "}}")
    for name in others:
        allowed = allowed.replace("{{" + name + "}}", "{" + name + "}")
    return OptionError(
        field,
        "{field}={value!r} is invalid: " + allowed + ".",
        others=others,
        value=value,
    )


def parse_keep_prob_range(value, flag="dropblock_keep_prob"):
    """DropBlock's keep-probability schedule as `(start, end)` floats.

    Accepts None / "" / "none" (no schedule), "1.0,0.9", or a pair.

    Raises:
        OptionError: not two probabilities in (0, 1]; names the field.
    """
    if value is None or (
        isinstance(value, str) and value.strip() in ("", "none")
    ):
        return None
    try:
        items = value.split(",") if isinstance(value, str) else list(value)
        pair = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        pair = ()
    if len(pair) != 2 or not all(0 < v <= 1 for v in pair):
        raise invalid(
            flag, value, "two probabilities in (0, 1] such as 1.0,0.9"
        )
    return pair


def _whole(v):
    """An int from an int or its text ("3"); 2.7 or True is no integer
    (int() made them 2 and 1)."""
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise TypeError(f"{v!r} is no integer")
    return int(v)


def parse_int_list(flag, value):
    """'2,2,2,1' (or a list) -> (2, 2, 2, 1) of positive ints."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        items = value.split(",") if isinstance(value, str) else list(value)
        values = tuple(_whole(v) for v in items)
    except (TypeError, ValueError):
        values = ()
    if not values or min(values) < 1:
        raise invalid(
            flag,
            value,
            "comma-separated positive integers such as 3,4,6,3",
        )
    return values


def _block_sizes(value):
    return parse_int_list("block_sizes", value)


def parse_class_range(value):
    """'low,high' (or a pair) -> (low, high) ints, or None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        items = value.split(",") if isinstance(value, str) else list(value)
        low, high = (int(v) for v in items)
    except (TypeError, ValueError):
        raise invalid(
            "class_range", value, "'low,high' integers such as 0,100"
        ) from None
    if not 0 <= low < high - 1:
        # Before: named as num_classes=high-low, a flag not given.
        raise invalid(
            "class_range",
            f"{low},{high}",
            "'low,high' with 0 <= low and high >= low + 2 (a head of at "
            "least 2 classes)",
        )
    return low, high


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number"}


def _check_type(field, value):
    """Raises `OptionError` unless `value` has the field's annotated type
    (a float field takes an integer too; an optional one None). A config
    edited by hand, e.g. "base_width": "eight", fails here, named, rather
    than as a TypeError deep in the model builder."""
    types = typing.get_args(field.type) or (field.type,)
    if value is None and type(None) in types:
        return
    for kind in types:
        if kind is bool and isinstance(value, bool):
            return
        if (
            kind is int
            and isinstance(value, int)
            and not isinstance(value, bool)
        ):
            return
        if kind is float and isinstance(value, (int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                # Before: inf passed the range checks (a KD temperature of
                # inf trained to a NaN loss), and NaN was "must be >= 0".
                raise invalid(field.name, value, "must be a finite number")
            if not isinstance(value, bool):
                return
        if kind is str and isinstance(value, str):
            return
    wanted = [_TYPE_NAMES.get(k, "text") for k in types if k is not type(None)]
    if type(None) in types:
        wanted.append("null")
    raise invalid(field.name, value, "must be " + " or ".join(wanted))


class _Group:
    """A config group: typed fields (a field's `parse` turns a flag's text
    or a JSON list into its type however the group is made), each field's
    own check, then `_check_together`."""

    def __post_init__(self):
        for field in dataclasses.fields(self):
            parse = field.metadata.get("parse")
            if parse is not None:
                value = parse(getattr(self, field.name))
                object.__setattr__(self, field.name, value)
            else:
                _check_type(field, getattr(self, field.name))

    def validate(self):
        """Raises `OptionError` naming the first field that is invalid."""
        for field in dataclasses.fields(self):
            check = field.metadata.get("check")
            value = getattr(self, field.name)
            if check and value is not None and not check[0](value):
                raise invalid(field.name, value, check[1])
        self._check_together()

    def _check_together(self):
        """Checks between the group's fields (none by default)."""


@dataclasses.dataclass(frozen=True)
class ModelConfig(_Group):
    preset: str = _f("assemble_resnet50", "Named model (docs/models.md).")
    base_width: int | None = _f(
        None, "Override the stem / S1 width.", check=_at_least(1)
    )
    block_sizes: tuple[int, ...] | None = _f(
        None,
        "Override blocks per stage: '2,2,2,1'.",
        check=(lambda v: len(v) == 4, "must be 4 numbers, one per stage"),
        parse=_block_sizes,
    )
    bn_momentum: float | None = _f(
        None, "Override BN momentum (0.997).", check=_fraction(True, False)
    )
    dropblock: bool = _f(
        True, "Keep the preset's DropBlock layers (False removes them)."
    )
    add_dropblock: bool = _f(
        False,
        "Add the paper's DropBlock layers (groups 3 and 4, block 7) to a "
        "preset that has none, e.g. to fine-tune with a keep-prob schedule "
        "(Table 8 rows F5-F8).",
    )
    dropblock_shared_mask: bool = _f(
        False,
        "One DropBlock mask for the whole batch, as the original code "
        "(default: one per example, as the DropBlock paper; "
        "docs/fidelity.md).",
    )
    pooling: str | None = _f(
        None,
        "Override the head pooling: avg or gem.",
        check=_one_of("avg", "gem"),
    )
    shortcut: str | None = _f(
        None,
        "Override the downsampling shortcut: conv, avg2 (ResNet-D), avg3 "
        "(BigLittleNet) or avg2_tf1 (the original code's ResNet-D "
        "shortcut, which its ResNet-D checkpoints need).",
        check=_one_of(*presets.SHORTCUTS),
    )
    embedding_size: int | None = _f(
        None,
        "Embedding head (1x1 conv + BN before the classifier) of this "
        "size, e.g. 512 for retrieval; None keeps the preset's (none).",
        check=_at_least(0),
    )
    classifier: str | None = _f(
        None,
        "Classifier head: dense (default) or cosine: NormSoftmax, cos / "
        "temperature (retrieval; Zhai & Wu 2019, arXiv 1811.12649).",
        check=(lambda v: v in ("dense", "cosine"), "must be dense or cosine"),
    )
    cosine_temperature: float | None = _f(
        None,
        "Temperature T > 0 of the cosine classifier (default 0.05, as "
        "NormSoftmax); its logits lie in [-1/T, 1/T].",
        check=_above(0),
    )

    def _check_together(self):
        presets.get(self.preset)
        if self.add_dropblock and not self.dropblock:
            raise invalid(
                "add_dropblock",
                self.add_dropblock,
                "contradicts {dropblock}=False (which removes DropBlock "
                "layers)",
                others=("dropblock",),
            )
        if self.dropblock_shared_mask and not self._dropblock():
            raise invalid(
                "dropblock_shared_mask",
                self.dropblock_shared_mask,
                "sets up DropBlock layers this model does not have ("
                + (
                    "{dropblock}=False removes them"
                    if not self.dropblock
                    else f"{self.preset} has none; {{add_dropblock}} adds them"
                )
                + ")",
                others=("dropblock", "add_dropblock"),
            )

    def _dropblock(self):
        """The model's DropBlock settings (a dict), or None."""
        if not self.dropblock:
            return None
        own = presets.get(self.preset).model.get("dropblock")
        if own:
            return dict(own)
        if self.add_dropblock:
            return dict(presets.DROPBLOCK["dropblock"])
        return None

    def build_overrides(self, num_classes, image_size=None):
        """Keyword overrides for `assemble_tf.models.build_model`."""
        out = {"num_classes": num_classes}
        if image_size is not None:
            out["image_size"] = image_size
        if self.base_width is not None:
            out["base_width"] = self.base_width
        if self.block_sizes:
            out["block_sizes"] = tuple(self.block_sizes)
        if self.bn_momentum is not None:
            out["bn_momentum"] = self.bn_momentum
        dropblock = self._dropblock()
        if not self.dropblock:
            out["dropblock"] = None
        elif dropblock and (self.add_dropblock or self.dropblock_shared_mask):
            if self.dropblock_shared_mask:
                dropblock["shared_mask"] = True
            out["dropblock"] = dropblock
        if self.pooling is not None:
            out["pooling"] = self.pooling
        if self.shortcut is not None:
            out["shortcut"] = self.shortcut
        if self.embedding_size:
            out["embedding_size"] = self.embedding_size
        if self.classifier is not None:
            out["classifier"] = self.classifier
        if self.cosine_temperature is not None:
            out["cosine_temperature"] = self.cosine_temperature
        return out


@dataclasses.dataclass(frozen=True)
class DataConfig(_Group):
    data_dir: str | None = _f(None, "Folder of TFRecord shards.")
    train_pattern: str = _f("train-*", "Train shard glob inside `data_dir`.")
    validation_pattern: str = _f(
        "validation-*", "Validation shard glob inside `data_dir`."
    )
    num_classes: int = _f(
        1001, "Logits (1001 for ImageNet as the original).", check=_at_least(2)
    )
    label_offset: int = _f(
        0,
        "Subtracted from stored labels (0 keeps ImageNet's 1..1000 in a "
        "1001-way head; 1 maps them onto 1000 classes).",
        check=_at_least(0),
    )
    num_train_examples: int | None = _f(
        None,
        "Train images; None reads summary.json or counts records.",
        check=_at_least(1),
    )
    image_size: int = _f(224, "Train crop side.", check=_at_least(16))
    eval_preprocessing: str = _f(
        "imagenet",
        "Eval resize/crop: imagenet, imagenet_224_256, "
        "imagenet_224_256a, imagenet_NNN, imagenet_NNNa.",
    )
    use_bboxes: bool = _f(False, "Sample train crops around stored boxes.")
    min_crop_area: float = _f(
        0.05,
        "Smallest random train crop as a fraction of the image area "
        "(0.05 as the original; small images may want more). A crop also "
        "covers at least 10 % of the box it is drawn around (the whole "
        "image without use_bboxes), as the original's: below 0.1 this "
        "only matters with boxes.",
        check=_fraction(False, True),
    )
    shuffle_buffer: int = _f(
        10_000, "Record shuffle buffer.", check=_at_least(1)
    )
    cache: bool = _f(False, "Cache the records in memory (small datasets).")
    synthetic: bool = _f(False, "Random data (benchmarks, smoke tests).")
    source: str | None = _f(
        None,
        "A tfds dataset name (e.g. oxford_flowers102) or an image folder "
        "<root>/<split>/<class>/<image>, read instead of TFRecords.",
    )
    tfds_data_dir: str | None = _f(
        None, "tfds data_dir of `source` (default: tfds' own)."
    )
    train_split: str = _f("train", "Split of `source` to train on.")
    validation_split: str = _f(
        "validation", "Split of `source` to evaluate on."
    )
    download: bool = _f(
        False, "Let tfds download and prepare `source` (off: never)."
    )
    class_range: tuple[int, int] | None = _f(
        None,
        "Keep only labels in [low, high) of `source`, shifted to start at "
        "0: 'low,high' (class-disjoint retrieval training, e.g. 0,100 on "
        "caltech_birds2011).",
        parse=parse_class_range,
    )

    def _check_together(self):
        from assemble_tf.data.sizes import eval_sizes

        if self.source and self.synthetic:
            raise invalid(
                "synthetic", self.synthetic, "not with {source}", ["source"]
            )
        if self.source and self.data_dir:
            # Before: data_dir was ignored without a word.
            raise invalid(
                "data_dir",
                self.data_dir,
                "not with {source}: pass one dataset, TFRecords (this) or "
                "a tfds set or image folder ({source}; its tfds folder is "
                "{tfds_data_dir})",
                ["source", "tfds_data_dir"],
            )
        if not self.source and not self.synthetic and not self.data_dir:
            raise invalid(
                "data_dir",
                self.data_dir,
                "required unless {synthetic}",
                ["synthetic"],
            )
        if self.class_range:
            text = ",".join(map(str, self.class_range))
            if not self.source:
                raise invalid("class_range", text, "needs {source}", ["source"])
            low, high = self.class_range
            if not (0 <= low < high and high - low == self.num_classes):
                raise invalid(
                    "class_range",
                    text,
                    "'low,high' with 0 <= low < high and high - low == "
                    f"{{num_classes}} ({self.num_classes})",
                    ["num_classes"],
                )
        eval_sizes(self.eval_preprocessing, "eval_preprocessing")


@dataclasses.dataclass(frozen=True)
class AugmentConfig(_Group):
    autoaugment: str | None = _f(
        None, "AutoAugment policy: imagenet, v0, good, test, or none."
    )
    randaugment_layers: int = _f(
        0, "RandAugment N (0 = off).", check=_at_least(0)
    )
    randaugment_magnitude: int = _f(
        10,
        "RandAugment M, of the 10 levels of the original's scale.",
        check=(lambda v: 0 <= v <= 10, "must be in [0, 10]"),
    )
    mixup_type: int = _f(
        0, "Mixup: 0 off, 1 two batches, 2 halves.", check=_one_of(0, 1, 2)
    )
    mixup_alpha: float = _f(
        0.2, "Beta(alpha, alpha) of Mixup.", check=_above(0)
    )
    mixup_mode: str = _f(
        "mixup", "mixup or cutmix.", check=_one_of("mixup", "cutmix")
    )
    label_smoothing: float = _f(
        0.0, "Label smoothing after mixing.", check=_fraction(True, False)
    )

    def _check_together(self):
        if self.mixup_mode != "mixup" and not self.mixup_type:
            # Before: accepted, and CutMix silently never ran.
            raise invalid(
                "mixup_mode",
                self.mixup_mode,
                "mixes nothing with {mixup_type}=0 (the preset's or yours): "
                "set {mixup_type}=1 (two batches) or 2 (halves)",
                ["mixup_type"],
            )
        if self.autoaugment and self.autoaugment != "none":
            from assemble_tf.augment.policies import POLICIES

            if self.autoaugment not in POLICIES:
                raise invalid(
                    "autoaugment",
                    self.autoaugment,
                    f"one of {sorted(POLICIES)} or none",
                )
            if self.randaugment_layers:
                # AutoAugment is applied instead (every Assemble preset
                # sets it): RandAugment was silently ignored.
                raise invalid(
                    "randaugment_layers",
                    self.randaugment_layers,
                    "RandAugment replaces AutoAugment, and {autoaugment}="
                    f"{self.autoaugment} is set (the preset's or yours); "
                    "add {autoaugment}=none to use RandAugment",
                    ["autoaugment"],
                )


@dataclasses.dataclass(frozen=True)
class TrainConfig(_Group):
    epochs: float = _f(120.0, "Training epochs.", check=_above(0))
    batch_size: int = _f(
        1024, "Global batch size (examples per step).", check=_at_least(1)
    )
    eval_batch_size: int | None = _f(
        None,
        "Eval batch (default batch_size).",
        check=(
            lambda v: v >= 1,
            "must be >= 1 (or unset: the training batch size)",
        ),
    )
    base_learning_rate: float = _f(0.4, "Peak learning rate.", check=_above(0))
    scale_learning_rate: bool = _f(
        False, "Multiply the learning rate by batch_size / 256."
    )
    lr_schedule: str = _f(
        "cosine",
        "cosine, piecewise (x0.1 at epochs 30, 60, 80 and 90, as the "
        "original) or constant.",
        check=_one_of("cosine", "piecewise", "constant"),
    )
    warmup_epochs: float = _f(
        5.0, "Linear warm-up epochs from 0.", check=_at_least(0)
    )
    momentum: float = _f(
        0.9, "SGD momentum (no Nesterov).", check=_fraction(True, False)
    )
    optimizer: str = _f(
        "momentum",
        "momentum: the original's TF1 MomentumOptimizer (a = m * a + g; "
        "w -= lr * a); keras_sgd: keras.optimizers.SGD (the learning rate "
        "inside the velocity: other steps while the rate moves), what runs "
        "written before this option trained with.",
        check=_one_of("momentum", "keras_sgd"),
    )
    weight_decay: float = _f(
        1e-4,
        "wd * 1/2 * sum(w^2) over all trainable variables except BN "
        "gamma/beta (FC bias included), as the original master.",
        check=_at_least(0),
    )
    dropblock_keep_prob: tuple | None = _f(
        None,
        "DropBlock keep probability 'start,end', decayed linearly "
        "over the run (e.g. 1.0,0.9); None keeps 1.0. Only for models "
        "with DropBlock layers.",
        parse=parse_keep_prob_range,
    )
    kd_temperature: float = _f(
        0.0,
        "Knowledge distillation temperature T (0 = off); teacher "
        "logits come from image/logit in the records.",
        check=_at_least(0),
    )
    mixed_precision: str = _f(
        "float32",
        "float32, mixed_float16 or mixed_bfloat16.",
        check=_one_of("float32", "mixed_float16", "mixed_bfloat16"),
    )
    jit_compile: bool = _f(
        False,
        "XLA-compile the per-replica train step (off by default; "
        "TensorFlow only: under JAX every step is compiled). On CPU it "
        "makes the step ~2.8x slower, as for Keras' own step: an option for "
        "GPUs and TPUs.",
    )
    seed: int = _f(
        0,
        "Seed of data order, crops, mixing and init (0 to 2**32 - 1).",
        # Before: Keras' "Seed must be between 0 and 2**32 - 1", no flag.
        check=(lambda v: 0 <= v < 2**32, "must be between 0 and 2**32 - 1"),
    )
    deterministic: bool = _f(
        False, "Op determinism and a fixed data order (slower)."
    )
    max_steps: int | None = _f(
        None, "Stop after this many steps.", check=_above(0)
    )
    steps_per_loop: int = _f(
        100,
        "Steps run on the device per host round trip: the loss is read, "
        "checked for NaN and shown once per loop (loops end at epoch "
        "ends).",
        check=_at_least(1),
    )
    log_every: int = _f(
        50,
        "Steps between TensorBoard step scalars (step/train_loss, "
        "step/learning_rate, step/train_images_per_sec in logs/train).",
        check=_at_least(1),
    )
    checkpoint_every_epochs: float = _f(
        1.0, "Epochs between checkpoints.", check=_whole_epochs()
    )
    eval_every_epochs: float = _f(
        1.0, "Epochs between evaluations.", check=_whole_epochs()
    )
    keep_checkpoints: int = _f(
        3, "Latest checkpoints kept.", check=_at_least(1)
    )
    keep_best: int = _f(
        3,
        "Best checkpoints kept by validation top-1 (0 = none).",
        check=_at_least(0),
    )
    warm_start: str | None = _f(
        None,
        "A run's model_dir, a checkpoint prefix, a .weights.h5 or .keras "
        "file, or a SavedModel to start from.",
    )
    warm_start_head: bool = _f(
        False, "Also load the classifier head (False re-initialises it)."
    )
    warm_start_bn_stats: bool = _f(
        True, "Keep BN moving statistics when warm starting (False resets)."
    )
    bn_reestimate_steps: int = _f(
        0,
        "Before training, re-estimate BN moving statistics as the exact "
        "mean over this many training batches (0 = off).",
        check=_at_least(0),
    )
    freeze_backbone: bool = _f(
        False, "Train only the head (embedding + classifier)."
    )
    backbone_lr_multiplier: float = _f(
        1.0,
        "Learning rate of the backbone relative to the head.",
        check=_at_least(0),
    )

    def _check_together(self):
        if self.warmup_epochs and self.warmup_epochs >= self.epochs:
            raise invalid(
                "warmup_epochs",
                self.warmup_epochs,
                f"must be < {{epochs}}={self.epochs}",
                ["epochs"],
            )
        if self.freeze_backbone and not self.warm_start:
            # Before: a head trained on a random, frozen backbone (BN
            # statistics 0 / 1), with "training from scratch" as the only
            # word.
            raise invalid(
                "freeze_backbone",
                self.freeze_backbone,
                "trains only the head, on the backbone's initial random "
                "weights without {warm_start}: give the run or weights to "
                "start from ({warm_start}=...), or train the backbone too",
                ["warm_start"],
            )
        if (
            self.freeze_backbone
            and self.warm_start
            and not (self.warm_start_bn_stats or self.bn_reestimate_steps)
        ):
            # A frozen BatchNorm runs in inference mode: the reset
            # statistics (0 / 1) would never be updated (train loss 135
            # where the kept statistics give 6).
            raise invalid(
                "freeze_backbone",
                self.freeze_backbone,
                "a frozen backbone never updates its BN statistics, and "
                "{warm_start_bn_stats}=False resets them to 0 / 1: keep them "
                "({warm_start_bn_stats}) or re-estimate them on the new data "
                "({bn_reestimate_steps}=N)",
                ["warm_start_bn_stats", "bn_reestimate_steps"],
            )


@dataclasses.dataclass(frozen=True)
class RuntimeConfig(_Group):
    distribution_strategy: str = _f(
        "off",
        "off, one_device, mirrored, multi_worker_mirrored or tpu.",
        check=_one_of(
            "off", "one_device", "mirrored", "multi_worker_mirrored", "tpu"
        ),
    )
    num_gpus: int | None = _f(
        None,
        "GPUs for mirrored (default: all; 0 = the CPU, under TensorFlow).",
        check=_at_least(0),
    )
    tpu: str = _f("", "TPU name or address for the tpu strategy.")


GROUPS = {
    "model": ModelConfig,
    "data": DataConfig,
    "augment": AugmentConfig,
    "train": TrainConfig,
    "runtime": RuntimeConfig,
}


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """The whole run. `model_dir` is not stored in config.json: a run is
    the folder that holds its config.json, wherever it has been moved."""

    model_dir: str
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self, path):
        """Writes the config (atomically); `model_dir` becomes "." (the
        folder of `path`)."""
        from official.utils.misc import file_utils

        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        values = dict(self.to_dict(), model_dir=".")
        file_utils.atomic_write(
            path, json.dumps(values, indent=2, sort_keys=True)
        )

    @classmethod
    def from_dict(cls, d):
        kwargs = {"model_dir": d["model_dir"]}
        for name, group in GROUPS.items():
            values = d.get(name, {})
            known = {f.name for f in dataclasses.fields(group)}
            unknown = set(values) - known
            if unknown:
                raise ValueError(
                    f"Unknown {name} config keys {sorted(unknown)}."
                )
            kwargs[name] = group(**values)  # its fields parse themselves
        return cls(**kwargs)

    @classmethod
    def from_json(cls, path):
        from official.utils.misc import file_utils

        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"No config at {path}; pass the model_dir of a training run "
                "(it holds config.json)."
            )
        fix = (
            "tools.train writes it; restore it from a copy (the tools that "
            "read a run also take --preset and --weights instead)"
        )
        values = file_utils.read_json(path, fix)
        if not isinstance(values, dict):
            raise ValueError(
                f"{path} holds a {type(values).__name__}, not a config "
                f"object; {fix}."
            )
        # tools.train writes every group; one left out (or its preset)
        # silently became the defaults: another model than the weights'.
        model = values.get("model")
        if not isinstance(model, dict) or "preset" not in model:
            raise ValueError(
                f'{path} has no model preset ("model": {{"preset": '
                f"...}}); {fix}."
            )
        # The run is where its config.json is (older runs stored an
        # absolute model_dir that a move makes stale).
        values["model_dir"] = os.path.dirname(os.path.abspath(path))
        train = values.get("train")
        if isinstance(train, dict) and "optimizer" not in train:
            # Written before the option: those runs trained with Keras'
            # SGD, whose state a resume must not read as the original's.
            train["optimizer"] = "keras_sgd"
        try:
            config = cls.from_dict(values)
            validate(config)  # e.g. "eval_preprocessing": "foo", edited
            return config
        except (TypeError, KeyError, AttributeError, ValueError) as e:
            reason = str(e).rstrip(".")
            raise ValueError(
                f"{path} does not read as a config ({reason}); {fix}."
            ) from None


def preset_defaults(preset_name):
    """Field overrides implied by a preset: its recipe and eval size."""
    preset = presets.get(preset_name)
    out = {group: dict(values) for group, values in preset.recipe.items()}
    out["data"] = {
        "image_size": preset.train_image_size,
        "eval_preprocessing": preset.eval_preprocessing,
    }
    return out


def parse_model_overrides(value):
    """`build_model` overrides from a dict or a JSON object's text.

    Lists become tuples (`block_sizes`, `stage_strides`), as do those two
    written as their flags are ("3,4,6,3": the run config's overrides took
    it, a teacher's or a preset's build refused it); None or "" give {}.

    Raises:
        OptionError: the text is not a JSON object (names
            `model_overrides` and echoes the text).
    """
    if not value:
        return {}
    if isinstance(value, dict):
        out = dict(value)
    else:
        try:
            out = json.loads(value)
        except json.JSONDecodeError:
            out = None
        if not isinstance(out, dict):
            raise OptionError(
                "model_overrides",
                "{field} must be a JSON object, e.g. "
                "'{{\"base_width\": 16}}'. Received: {value!r}",
                value=value,
            )
    for key in ("block_sizes", "stage_strides"):
        if isinstance(out.get(key), str):
            out[key] = parse_int_list(key, out[key])
    return {k: tuple(v) if isinstance(v, list) else v for k, v in out.items()}


def synthetic_train_examples(config):
    """Training examples of a synthetic-data run (default: 10 batches)."""
    return config.data.num_train_examples or 10 * config.train.batch_size


def make_config(model_dir, preset, overrides=None, recipe=None):
    """Preset defaults, then a fine-tuning `recipe`'s, then `overrides`
    ({group: {field: value}} each), then validation, then what the data
    says (`_read_data`, the one step that reads the disk).

    An option that the others make do nothing is refused where
    `overrides` gives it, and reset to its default where the preset or
    the recipe does (e.g. the recipe's Mixup alpha once Mixup is turned
    off; `refuse_ignored_options`).

    A TFRecord `data_dir` whose summary.json / labels.txt states its
    classes sets `num_classes` (the head must fit the labels); an explicit
    `num_classes` that does not fit is refused.

    Returns:
        An `ExperimentConfig`.
    """
    check_local_path("model_dir", model_dir)
    # Before: "[Errno 17] File exists: '<path>'", naming no flag.
    check_creatable_path("model_dir", model_dir)
    presets.get(preset)
    groups = {name: {} for name in GROUPS}
    for name, values in preset_defaults(preset).items():
        groups[name].update(values)
    groups["model"]["preset"] = preset
    for name, values in [*(recipe or {}).items(), *(overrides or {}).items()]:
        if name not in GROUPS:
            raise ValueError(f"Unknown config group {name!r}")
        groups[name].update(values)
    given = (overrides or {}).get("data", {})
    if given.get("class_range") and "num_classes" not in given:
        low, high = parse_class_range(given["class_range"])
        groups["data"]["num_classes"] = high - low  # the kept classes
    explicit_schedule = "dropblock_keep_prob" in (overrides or {}).get(
        "train", {}
    )
    if not explicit_schedule and not _has_dropblock(preset, groups["model"]):
        # The preset's schedule does not apply to a model built without
        # its DropBlock layers (`dropblock` False); an explicit one is
        # refused.
        groups["train"]["dropblock_keep_prob"] = None
    config = ExperimentConfig.from_dict(
        {
            "model_dir": os.path.abspath(model_dir) if model_dir else None,
            **groups,
        }
    )
    config = absolute_paths(config)
    try:
        validate(config)
    except OptionError as e:
        raise _noted_if_a_default(e, preset, overrides, recipe) from None
    _refuse_a_run_in_the_data(config)
    refuse_ignored_options(config, overrides or {})
    config = without_ignored_options(config)  # the preset's or recipe's
    if config.data.source and not config.data.synthetic:
        return _read_source(config, set(given))
    return _read_data(config, "num_classes" in given)


def _noted_if_a_default(error, preset, overrides, recipe):
    """`error`, saying so where its field's value was not given
    (`overrides`) but is a fine-tuning `recipe`'s or the preset's
    (before: "--warmup_epochs=5.0 is invalid: must be < --epochs=2.0" for
    a user who set --epochs=2 only; a fine-tuning recipe's value had no
    note). `overrides` and `recipe`: {group: {field: value}} or None."""

    def fields(groups):
        return {f for values in (groups or {}).values() for f in values}

    if error.field in fields(overrides):
        return error
    if error.field in fields(recipe):
        return error.noted(
            "(That value is the fine-tuning recipe's; set {field} to change "
            "it.)"
        )
    if error.field not in fields(preset_defaults(preset)):
        return error
    return error.noted(
        "(That value is the {recipe} recipe's; set {field} to change it.)",
        recipe=preset,
    )


def _refuse_a_run_in_the_data(config):
    """Refuses a `model_dir` that is the TFRecord folder `data_dir` (before:
    accepted, writing checkpoints and config.json among the shards)."""
    d = config.data
    if not (d.data_dir and config.model_dir):
        return
    if os.path.normpath(config.model_dir) == os.path.normpath(d.data_dir):
        raise OptionError(
            "model_dir",
            "{field}={path} is {data_dir}, the folder of the records: give "
            "the run a folder of its own.",
            ["data_dir"],
            path=config.model_dir,
        )


def absolute_paths(config):
    """`config` with its local data and warm-start paths made absolute.

    config.json keeps them as they are now: a run trained with
    `--data_dir=data/digits` is evaluated, exported and resumed from any
    folder (before: relative to whichever folder the tool ran in, so
    `tools.evaluate` found no records from another one). URLs (gs://...)
    and tfds names stay as they are.
    """

    def absolute(path):
        if not path or "://" in path:
            return path
        return os.path.abspath(os.path.expanduser(path))

    def folder(source):  # `data.sources.is_folder`, TensorFlow only if needed
        if source.startswith(("/", ".", "~")):
            return True
        if not os.path.isdir(os.path.expanduser(source)):
            return False
        from assemble_tf.data import sources

        return sources.is_folder(source)

    d, t = config.data, config.train
    source = d.source
    if source and "://" not in source and folder(source):
        source = absolute(source)
    data = dataclasses.replace(
        d,
        data_dir=absolute(d.data_dir),
        tfds_data_dir=absolute(d.tfds_data_dir),
        source=source,
    )
    train = dataclasses.replace(t, warm_start=absolute(t.warm_start))
    return dataclasses.replace(config, data=data, train=train)


def _read_source(config, given):
    """`config` with the class count and held-out split of its tfds or
    folder `source`, where `given` (the data fields set) lacks them:
    before, `tools.train --source=<folder>` trained a 1001-way head on a
    3-class folder and looked for a split "validation" the folder did not
    have (tools.finetune resolved both)."""
    from assemble_tf.data import sources

    d = config.data
    if {"num_classes", "validation_split"} <= given:
        return config  # nothing to read (tools.finetune gives both)
    info = sources.open_source_cached(d.source, d.tfds_data_dir, d.download)
    changes = {}
    if "validation_split" not in given:
        held_out = sources.held_out_split(d.source, info.splits)
        if held_out:
            changes["validation_split"] = held_out
    if not ({"num_classes", "class_range"} & given):
        sources.require_classes(info, d.source)
        changes["num_classes"] = info.num_classes
    return dataclasses.replace(config, data=dataclasses.replace(d, **changes))


def ignored_options(config):
    """[(group, field, value, allowed, others)] of the options that the
    config's other options make do nothing (e.g. `tpu` with another
    strategy); `others` are the options `allowed` names, the one that
    ignores it first."""
    model, rt = config.model, config.runtime
    preset = presets.get(model.preset)
    classifier = model.classifier or preset.model.get("classifier", "dense")
    strategy = rt.distribution_strategy
    found = []
    if model.cosine_temperature is not None and classifier != "cosine":
        found.append(
            (
                "model",
                "cosine_temperature",
                model.cosine_temperature,
                "applies to {classifier}=cosine only",
                ("classifier",),
            )
        )
    if rt.tpu and strategy != "tpu":
        found.append(
            (
                "runtime",
                "tpu",
                rt.tpu,
                f"applies to {{distribution_strategy}}=tpu only (here "
                f"{strategy})",
                ("distribution_strategy",),
            )
        )
    if rt.num_gpus is not None and strategy not in ("mirrored", "one_device"):
        found.append(
            (
                "runtime",
                "num_gpus",
                rt.num_gpus,
                "applies to {distribution_strategy}=mirrored or one_device "
                f"only (here {strategy})",
                ("distribution_strategy",),
            )
        )
    found += _ignored_data_options(config.data)
    found += _ignored_recipe_options(config.augment, config.train)
    return found


def _default(values, name):
    """The default of field `name` of the config group `values`."""
    return next(f.default for f in dataclasses.fields(values) if f.name == name)


def _changed(values, name):
    """Whether field `name` of the group `values` differs from its
    default (a value given, or a preset's)."""
    return getattr(values, name) != _default(values, name)


def _ignored_data_options(data):
    """`ignored_options` of the data group: TFRecord options with a tfds or
    folder `source`, a `data_dir` of synthetic data (before: each trained
    without a word; `label_offset` shifted a folder's labels, dropping its
    first class as out of range)."""
    found = []
    if data.source:
        tfrecords = "applies to TFRecords ({data_dir}) only, not to {source}"
        why = ("source", "data_dir")
        for name in ("train_pattern", "validation_pattern", "use_bboxes"):
            if _changed(data, name):
                value = getattr(data, name)
                found.append(("data", name, value, tfrecords, why))
        if data.label_offset:
            found.append(
                (
                    "data",
                    "label_offset",
                    data.label_offset,
                    tfrecords + ", whose labels start at 0",
                    why,
                )
            )
    else:
        # Before: --train_split=foo with TFRecords trained without a word.
        for name in ("tfds_data_dir", "train_split", "validation_split"):
            if _changed(data, name):
                value = getattr(data, name)
                found.append(
                    (
                        "data",
                        name,
                        value,
                        "applies to a tfds or folder {source} only",
                        ("source",),
                    )
                )
    if data.synthetic and data.data_dir:
        found.append(
            (
                "data",
                "data_dir",
                data.data_dir,
                "not read with {synthetic} (random images): leave one out",
                ("synthetic",),
            )
        )
    return found


def _ignored_recipe_options(augment, train):
    """`ignored_options` of options whose feature another option turns
    off: Mixup's alpha without Mixup, RandAugment's magnitude without its
    layers, warm-start options without a warm start, the backbone's
    learning-rate multiplier with a frozen backbone."""
    found = []
    if not augment.mixup_type and _changed(augment, "mixup_alpha"):
        found.append(
            (
                "augment",
                "mixup_alpha",
                augment.mixup_alpha,
                "applies to {mixup_type}=1 or 2 only (here 0: no Mixup)",
                ("mixup_type",),
            )
        )
    if not augment.randaugment_layers and _changed(
        augment, "randaugment_magnitude"
    ):
        found.append(
            (
                "augment",
                "randaugment_magnitude",
                augment.randaugment_magnitude,
                "applies to {randaugment_layers} > 0 only (here 0: no "
                "RandAugment)",
                ("randaugment_layers",),
            )
        )
    if not train.warm_start:
        for name in ("warm_start_head", "warm_start_bn_stats"):
            if _changed(train, name):
                found.append(
                    (
                        "train",
                        name,
                        getattr(train, name),
                        "applies with {warm_start} only",
                        ("warm_start",),
                    )
                )
    if train.freeze_backbone and _changed(train, "backbone_lr_multiplier"):
        found.append(
            (
                "train",
                "backbone_lr_multiplier",
                train.backbone_lr_multiplier,
                "applies to a backbone that trains (here {freeze_backbone}: "
                "only the head trains)",
                ("freeze_backbone",),
            )
        )
    return found


def refuse_ignored_options(config, given):
    """Options given that a new run's other options make do nothing
    (before: accepted and ignored, e.g. `tpu` with another strategy
    trained on one device). Checked for new configs only: a stored
    config.json that holds them still loads (its run trained without
    them), and resumes compare without them (`without_ignored_options`).

    Args:
        config: the new run's `ExperimentConfig`.
        given: {group: {field: value}} the user set (others come from
            the preset or a recipe, and are reset instead).

    Raises:
        OptionError: naming the ignored option and the one that ignores it.
    """
    for group, field, value, allowed, others in ignored_options(config):
        if field in given.get(group, {}):
            raise invalid(field, value, allowed, others=others)


def without_ignored_options(config):
    """`config` with its ignored options at their defaults: what a run
    trained with (a config.json of an earlier version may hold them)."""
    for group, field, _, _, _ in ignored_options(config):
        values = getattr(config, group)
        default = _default(values, field)
        config = dataclasses.replace(
            config, **{group: dataclasses.replace(values, **{field: default})}
        )
    return config


def _has_dropblock(preset, model_values):
    """Whether `preset` with these model fields builds DropBlock layers."""
    own = bool(presets.get(preset).model.get("dropblock"))
    added = bool(model_values.get("add_dropblock", False))
    return (own or added) and model_values.get("dropblock", True)


def _read_data(config, explicit):
    """`config` with the head width the data's labels need (see
    `make_config`), once `data_dir` is known to be a folder."""
    from assemble_tf.data import metadata

    d = config.data
    if d.synthetic or d.source or not d.data_dir:
        return config
    if not file_utils.isdir(d.data_dir):
        raise invalid("data_dir", d.data_dir, "no such directory")
    info = metadata.dataset_info(d.data_dir)
    if info is None:
        return config
    if info.num_classes < 2:  # before: a 1-way head trained to loss 0
        raise OptionError(
            "data_dir",
            "{field}={path}: its {file} lists {count} class(es): a "
            "classifier needs at least 2 (build the records from a folder "
            "of 2 or more class folders).",
            path=d.data_dir,
            file=os.path.basename(info.source),
            count=info.num_classes,
        )
    width = info.head_width(d.label_offset)
    if width == d.num_classes:
        return config
    if explicit:
        raise OptionError(
            "num_classes",
            "{field}={value} does not fit {data_dir}={path}: its {file} "
            "lists {count} classes stored as {low}..{high}, so with "
            "{label_offset}={offset} the head needs {width} outputs. Leave "
            "{field} out to take it from the data.",
            others=("data_dir", "label_offset"),
            value=d.num_classes,
            path=d.data_dir,
            file=os.path.basename(info.source),
            count=info.num_classes,
            low=info.label_base,
            high=info.label_base + info.num_classes - 1,
            offset=d.label_offset,
            width=width,
        )
    return dataclasses.replace(
        config, data=dataclasses.replace(d, num_classes=width)
    )


def validate(config):
    """Each group's checks, then the checks across groups.

    Raises:
        OptionError: naming the field, its value and what is allowed.
    """
    for name in GROUPS:
        getattr(config, name).validate()
    d, t, m = config.data, config.train, config.model
    if d.source and t.kd_temperature != 0:
        raise invalid(
            "kd_temperature",
            t.kd_temperature,
            "must be 0 with {source}: teacher logits for knowledge "
            "distillation are read from TFRecords (image/logit), and a "
            "tfds or folder source has none",
            ["source"],
        )
    if t.dropblock_keep_prob and not _has_dropblock(
        m.preset, dataclasses.asdict(m)
    ):
        has_layers = _has_dropblock(m.preset, {})
        raise invalid(
            "dropblock_keep_prob",
            t.dropblock_keep_prob,
            "the model has no DropBlock layers ("
            + (
                "{dropblock}=False removes them"
                if has_layers or m.add_dropblock
                else f"{m.preset} has none; {{add_dropblock}} adds them"
            )
            + "), so a schedule would silently do nothing; leave it out "
            "(or set it to none)",
            ["dropblock", "add_dropblock"],
        )
    if m.add_dropblock and not t.dropblock_keep_prob:
        # The reverse (before: trained with layers that dropped nothing).
        raise invalid(
            "add_dropblock",
            m.add_dropblock,
            "adds DropBlock layers that keep every activation without "
            "{dropblock_keep_prob}: give the schedule too, e.g. "
            "{dropblock_keep_prob}=0.9,0.7 (Table 8's rows F5-F8)",
            ["dropblock_keep_prob"],
        )
    if config.augment.mixup_type == 2 and t.batch_size % 2:
        # Type 2 mixes the two halves of each (per-replica) batch: an odd
        # one lost an image per step, a batch of 1 failed at its first.
        raise invalid(
            "batch_size",
            t.batch_size,
            "{mixup_type}=2 mixes the two halves of each batch: it must be "
            "even",
            ["mixup_type"],
        )
    _check_big_little_sizes(m, d)


def eval_size_warning(data, preset=None):
    """A warning (an `OptionError`, not raised: printed, it names the
    option as the reader set it) when the eval crops of `data` (a
    `DataConfig`) are more than twice, or under half, the training crops'
    side: a model trained
    at 32 px scored on a preset's 256-px crops (`tools.train
    --image_size=32` kept `eval_preprocessing` without a word). None
    otherwise, and for synthetic data. `preset`: the size is that preset's,
    not a run's (weights of unknown training size)."""
    if data.synthetic:
        return None
    return crop_size_warning(
        "eval_preprocessing",
        data.eval_preprocessing,
        data.image_size,
        preset=preset,
    )


def crop_size_warning(
    field, preprocessing, image_size, verb="evaluates", preset=None
):
    """`eval_size_warning` for the eval preprocessing `preprocessing` that
    option `field` gives a model trained on `image_size`-px crops (with
    `preset`: the size that preset trains at, weights of unknown size)."""
    from assemble_tf.data.sizes import eval_sizes

    crop = eval_sizes(preprocessing, field)[2]
    if image_size / 2 <= crop <= 2 * image_size:
        return None
    values = dict(value=preprocessing, crop=crop, size=image_size)
    if preset:
        # Before: "a model trained on 224-px ones" of weights trained at
        # any size.
        return OptionError(
            field,
            "{field}={value} " + verb + " {crop}-px crops, and {preset} "
            "trains on {size}-px ones: set {field} to imagenet_{size} unless "
            "these weights were trained near {crop} px.",
            preset=preset,
            **values,
        )
    return OptionError(
        field,
        "{field}={value} " + verb + " {crop}-px crops of a model trained on "
        "{size}-px ones; set {field} to imagenet_{size} (or a size near the "
        "training one).",
        **values,
    )


def _check_big_little_sizes(m, d):
    """A BigLittleNet model merges its big branch, which runs at half the
    resolution, with the little one: other sizes than multiples of 32 give
    them different shapes, and training failed at its first step."""
    from assemble_tf.data.sizes import eval_sizes

    if not presets.get(m.preset).model.get("big_little"):
        return
    crop = eval_sizes(d.eval_preprocessing)[2]
    for field, size in (
        ("image_size", d.image_size),
        ("eval_preprocessing", crop),
    ):
        if size % 32:
            value = (
                d.image_size
                if field == "image_size"
                else (d.eval_preprocessing)
            )
            raise invalid(
                field,
                value,
                f"{m.preset} is a BigLittleNet model: its "
                + ("crops" if field == "image_size" else f"crop ({size} px)")
                + " must be a multiple of 32 px (its big branch runs at "
                "half the resolution of the little one it merges with)",
            )


def class_range(data_config):
    """(low, high) of `data.class_range`, or None."""
    return data_config.class_range
