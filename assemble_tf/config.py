"""The experiment configuration: one frozen tree, written to config.json.

Shape after TF Model Garden `ExperimentConfig` (a dataclass tree serialized
next to the checkpoints, from which evaluation, export and resumption rebuild
everything), without its registry machinery. Defaults of a run come from a
preset's recipe (`assemble_tf.presets`, Lee et al. 2020,
https://arxiv.org/abs/2001.06268); flags override only what the user set.
Every field carries its help text, from which the binaries' flags are made.
"""

import dataclasses
import json
import os

from assemble_tf import presets


def _f(default, help_text, **kw):
    """A config field with its help text (and `parse`: a function that
    turns any accepted form of the value, e.g. a flag's text or a JSON
    list, into the field's type; `from_dict` applies it)."""
    return dataclasses.field(
        default=default, metadata={"help": help_text, **kw}
    )


def parse_keep_prob_range(value, flag="dropblock_keep_prob"):
    """DropBlock's keep-probability schedule as `(start, end)` floats.

    Accepts None / "" / "none" (no schedule), "1.0,0.9", or a pair.

    Raises:
        ValueError: not two probabilities in (0, 1]; names the flag.
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
        raise ValueError(
            f"--{flag}={value!r} is invalid: two probabilities in (0, 1] "
            "such as 1.0,0.9."
        )
    return pair


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    preset: str = _f("assemble_resnet50", "Named model (docs/models.md).")
    base_width: int | None = _f(None, "Override the stem / S1 width.")
    block_sizes: str | None = _f(None, "Override blocks per stage: '2,2,2,1'.")
    bn_momentum: float | None = _f(None, "Override BN momentum (0.997).")
    dropblock: bool = _f(
        True, "Keep the preset's DropBlock layers (False removes them)."
    )
    add_dropblock: bool = _f(
        False,
        "Add the paper's DropBlock layers (groups 3 and 4, block 7) to a "
        "preset that has none, e.g. to fine-tune with a keep-prob schedule "
        "(Table 8 rows F5-F8).",
    )
    pooling: str | None = _f(None, "Override the head pooling: avg or gem.")
    embedding_size: int | None = _f(
        None,
        "Embedding head (1x1 conv + BN before the classifier) of this "
        "size, e.g. 512 for retrieval; None keeps the preset's (none).",
    )
    classifier: str | None = _f(
        None,
        "Classifier head: dense (default) or cosine: NormSoftmax, cos / "
        "temperature (retrieval; Zhai & Wu 2019, arXiv 1811.12649).",
    )
    cosine_temperature: float | None = _f(
        None,
        "Temperature T > 0 of the cosine classifier (default 0.05, as "
        "NormSoftmax); its logits lie in [-1/T, 1/T].",
    )

    def build_overrides(self, num_classes, image_size=None):
        """Keyword overrides for `assemble_tf.models.build_model`."""
        out = {"num_classes": num_classes}
        if image_size is not None:
            out["image_size"] = image_size
        if self.base_width is not None:
            out["base_width"] = self.base_width
        if self.block_sizes:
            out["block_sizes"] = parse_int_list("block_sizes", self.block_sizes)
        if self.bn_momentum is not None:
            out["bn_momentum"] = self.bn_momentum
        if not self.dropblock:
            out["dropblock"] = None
        elif self.add_dropblock and not presets.get(self.preset).model.get(
            "dropblock"
        ):
            out["dropblock"] = dict(presets.DROPBLOCK["dropblock"])
        if self.pooling is not None:
            out["pooling"] = self.pooling
        if self.embedding_size:
            out["embedding_size"] = self.embedding_size
        if self.classifier is not None:
            out["classifier"] = self.classifier
        if self.cosine_temperature is not None:
            out["cosine_temperature"] = self.cosine_temperature
        return out


@dataclasses.dataclass(frozen=True)
class DataConfig:
    data_dir: str | None = _f(None, "Folder of TFRecord shards.")
    train_pattern: str = _f("train-*", "Train shard glob inside data_dir.")
    validation_pattern: str = _f(
        "validation-*", "Validation shard glob inside data_dir."
    )
    num_classes: int = _f(1001, "Logits (1001 for ImageNet as the original).")
    label_offset: int = _f(
        0,
        "Subtracted from stored labels (0 keeps ImageNet's 1..1000 in a "
        "1001-way head; 1 maps them onto 1000 classes).",
    )
    num_train_examples: int | None = _f(
        None, "Train images; None reads summary.json or counts records."
    )
    image_size: int = _f(224, "Train crop side.")
    eval_preprocessing: str = _f(
        "imagenet",
        "Eval resize/crop: imagenet, imagenet_224_256, "
        "imagenet_224_256a, imagenet_NNN, imagenet_NNNa.",
    )
    use_bboxes: bool = _f(False, "Sample train crops around stored boxes.")
    min_crop_area: float = _f(
        0.05,
        "Smallest random train crop as a fraction of the image area "
        "(0.05 as the original; small images may want more).",
    )
    shuffle_buffer: int = _f(10_000, "Record shuffle buffer.")
    cache: bool = _f(False, "Cache the records in memory (small datasets).")
    synthetic: bool = _f(False, "Random data (benchmarks, smoke tests).")
    source: str | None = _f(
        None,
        "A tfds dataset name (e.g. oxford_flowers102) or an image folder "
        "<root>/<split>/<class>/<image>, read instead of TFRecords.",
    )
    tfds_data_dir: str | None = _f(
        None, "tfds data_dir of --source (default: tfds' own)."
    )
    train_split: str = _f("train", "Split of --source to train on.")
    validation_split: str = _f(
        "validation", "Split of --source to evaluate on."
    )
    download: bool = _f(
        False, "Let tfds download and prepare --source (off: never)."
    )
    class_range: str | None = _f(
        None,
        "Keep only labels in [low, high) of --source, shifted to start at "
        "0: 'low,high' (class-disjoint retrieval training, e.g. 0,100 on "
        "caltech_birds2011).",
    )


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    autoaugment: str | None = _f(
        None, "AutoAugment policy: imagenet, v0, good, test, or none."
    )
    randaugment_layers: int = _f(0, "RandAugment N (0 = off).")
    randaugment_magnitude: int = _f(10, "RandAugment M.")
    mixup_type: int = _f(0, "Mixup: 0 off, 1 two batches, 2 halves.")
    mixup_alpha: float = _f(0.2, "Beta(alpha, alpha) of Mixup.")
    mixup_mode: str = _f("mixup", "mixup or cutmix.")
    label_smoothing: float = _f(0.0, "Label smoothing after mixing.")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: float = _f(120.0, "Training epochs.")
    batch_size: int = _f(1024, "Global batch size (examples per step).")
    eval_batch_size: int | None = _f(None, "Eval batch (default batch_size).")
    base_learning_rate: float = _f(0.4, "Peak learning rate.")
    scale_learning_rate: bool = _f(
        False, "Multiply the learning rate by batch_size / 256."
    )
    lr_schedule: str = _f("cosine", "cosine, piecewise or constant.")
    warmup_epochs: float = _f(5.0, "Linear warm-up epochs from 0.")
    momentum: float = _f(0.9, "SGD momentum (no Nesterov).")
    weight_decay: float = _f(
        1e-4,
        "wd * 1/2 * sum(w^2) over all trainable variables except BN "
        "gamma/beta (FC bias included), as the original master.",
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
    )
    mixed_precision: str = _f(
        "float32", "float32, mixed_float16 or mixed_bfloat16."
    )
    jit_compile: bool = _f(
        False,
        "XLA-compile the per-replica train step (off by default). On CPU it "
        "makes the step ~2.8x slower, as for Keras' own step: an option for "
        "GPUs and TPUs.",
    )
    seed: int = _f(0, "Seed of data order, crops, mixing and init.")
    deterministic: bool = _f(
        False, "Op determinism and a fixed data order (slower)."
    )
    max_steps: int | None = _f(None, "Stop after this many steps.")
    steps_per_loop: int = _f(
        100,
        "Steps run on the device per host round trip: the loss is read, "
        "checked for NaN and shown once per loop (loops end at epoch "
        "ends).",
    )
    log_every: int = _f(
        50,
        "Steps between TensorBoard step scalars (step/train_loss, "
        "step/learning_rate, step/train_images_per_sec in logs/train).",
    )
    checkpoint_every_epochs: float = _f(1.0, "Epochs between checkpoints.")
    eval_every_epochs: float = _f(1.0, "Epochs between evaluations.")
    keep_checkpoints: int = _f(3, "Latest checkpoints kept.")
    keep_best: int = _f(3, "Best checkpoints kept by validation top-1.")
    warm_start: str | None = _f(
        None, "Checkpoint dir/prefix or .weights.h5 to start from."
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
    )
    freeze_backbone: bool = _f(
        False, "Train only the head (embedding + classifier)."
    )
    backbone_lr_multiplier: float = _f(
        1.0, "Learning rate of the backbone relative to the head."
    )


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    distribution_strategy: str = _f(
        "off", "off, one_device, mirrored, multi_worker_mirrored or tpu."
    )
    num_gpus: int | None = _f(None, "GPUs for mirrored (default: all).")
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
            values = dict(values)
            for field in dataclasses.fields(group):
                parse = field.metadata.get("parse")
                if parse and field.name in values:
                    values[field.name] = parse(values[field.name])
            kwargs[name] = group(**values)
        return cls(**kwargs)

    @classmethod
    def from_json(cls, path):
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"No config at {path}; pass the model_dir of a training run "
                "(it holds config.json)."
            )
        with open(path) as f:
            values = json.load(f)
        # The run is where its config.json is (older runs stored an
        # absolute model_dir that a move makes stale).
        values["model_dir"] = os.path.dirname(os.path.abspath(path))
        return cls.from_dict(values)


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

    Lists become tuples (`block_sizes`, `stage_strides`); None or "" give {}.

    Raises:
        ValueError: the text is not a JSON object; the message echoes it.
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
            raise ValueError(
                "--model_overrides must be a JSON object, e.g. "
                f"'{{\"base_width\": 16}}'. Received: {value!r}"
            )
    return {k: tuple(v) if isinstance(v, list) else v for k, v in out.items()}


def synthetic_train_examples(config):
    """Training examples of a synthetic-data run (default: 10 batches)."""
    return config.data.num_train_examples or 10 * config.train.batch_size


def make_config(model_dir, preset, overrides=None):
    """Preset defaults, then `overrides` ({group: {field: value}}), then
    the class count of the data, then validation.

    A TFRecord `data_dir` whose summary.json / labels.txt states its
    classes sets `num_classes` (the head must fit the labels); an explicit
    `num_classes` that does not fit is refused.

    Returns:
        An `ExperimentConfig`.
    """
    presets.get(preset)
    groups = {name: {} for name in GROUPS}
    for name, values in preset_defaults(preset).items():
        groups[name].update(values)
    groups["model"]["preset"] = preset
    for name, values in (overrides or {}).items():
        if name not in GROUPS:
            raise ValueError(f"Unknown config group {name!r}")
        groups[name].update(values)
    explicit_schedule = "dropblock_keep_prob" in (overrides or {}).get(
        "train", {}
    )
    if not explicit_schedule and not _has_dropblock(preset, groups["model"]):
        # The preset's schedule does not apply to a model built without
        # its DropBlock layers (--nodropblock); an explicit one is refused.
        groups["train"]["dropblock_keep_prob"] = None
    config = ExperimentConfig.from_dict(
        {
            "model_dir": os.path.abspath(model_dir) if model_dir else None,
            **groups,
        }
    )
    explicit = "num_classes" in (overrides or {}).get("data", {})
    config = _classes_from_data(config, explicit)
    validate(config)
    return config


def _has_dropblock(preset, model_values):
    """Whether `preset` with these model fields builds DropBlock layers."""
    own = bool(presets.get(preset).model.get("dropblock"))
    added = bool(model_values.get("add_dropblock", False))
    return (own or added) and model_values.get("dropblock", True)


def _classes_from_data(config, explicit):
    """`config` with the head width the data's labels need (see
    `make_config`)."""
    from assemble_tf.data import metadata

    d = config.data
    if d.synthetic or d.source or not d.data_dir:
        return config
    if not os.path.isdir(d.data_dir):
        return config  # validate() names the missing folder
    info = metadata.dataset_info(d.data_dir)
    if info is None:
        return config
    width = info.head_width(d.label_offset)
    if width == d.num_classes:
        return config
    if explicit:
        raise ValueError(
            f"--num_classes={d.num_classes} does not fit --data_dir="
            f"{d.data_dir}: its {os.path.basename(info.source)} lists "
            f"{info.num_classes} classes stored as {info.label_base}.."
            f"{info.label_base + info.num_classes - 1}, so with "
            f"--label_offset={d.label_offset} the head needs {width} "
            "outputs. Leave --num_classes out to take it from the data."
        )
    return dataclasses.replace(
        config, data=dataclasses.replace(d, num_classes=width)
    )


def parse_int_list(flag, value):
    """'2,2,2,1' -> (2, 2, 2, 1) of positive ints; the error names --flag."""
    try:
        values = tuple(int(v) for v in str(value).split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise ValueError(
            f"--{flag}={value!r} is invalid: comma-separated positive "
            "integers such as 3,4,6,3."
        )
    return values


def _check(ok, flag, value, allowed):
    if not ok:
        raise ValueError(f"--{flag}={value!r} is invalid: {allowed}.")


def validate(config):
    """Raises ValueError naming the flag, its value and the allowed range."""
    presets.get(config.model.preset)
    d, a, t, rt = config.data, config.augment, config.train, config.runtime
    _check(d.num_classes >= 2, "num_classes", d.num_classes, "must be >= 2")
    if config.model.block_sizes:
        parse_int_list("block_sizes", config.model.block_sizes)
    _check(
        config.model.classifier in (None, "dense", "cosine"),
        "classifier",
        config.model.classifier,
        "must be dense or cosine",
    )
    if config.model.cosine_temperature is not None:
        _check(
            config.model.cosine_temperature > 0,
            "cosine_temperature",
            config.model.cosine_temperature,
            "must be > 0",
        )
    _check(
        not (config.model.add_dropblock and not config.model.dropblock),
        "add_dropblock",
        config.model.add_dropblock,
        "contradicts --nodropblock (which removes DropBlock layers)",
    )
    if d.source:
        _check(
            t.kd_temperature == 0,
            "kd_temperature",
            t.kd_temperature,
            "must be 0 with --source: teacher logits for knowledge "
            "distillation are read from TFRecords (image/logit), and a "
            "tfds or folder source has none",
        )
    _check(d.label_offset >= 0, "label_offset", d.label_offset, "must be >= 0")
    _check(d.image_size >= 16, "image_size", d.image_size, "must be >= 16")
    _check(
        0 < d.min_crop_area <= 1,
        "min_crop_area",
        d.min_crop_area,
        "must be in (0, 1]",
    )
    _check(t.batch_size >= 1, "batch_size", t.batch_size, "must be >= 1")
    _check(t.epochs > 0, "epochs", t.epochs, "must be > 0")
    _check(
        t.base_learning_rate > 0,
        "base_learning_rate",
        t.base_learning_rate,
        "must be > 0",
    )
    _check(
        t.warmup_epochs >= 0, "warmup_epochs", t.warmup_epochs, "must be >= 0"
    )
    _check(
        t.warmup_epochs < t.epochs or t.warmup_epochs == 0,
        "warmup_epochs",
        t.warmup_epochs,
        f"must be < epochs={t.epochs}",
    )
    _check(0 <= t.momentum < 1, "momentum", t.momentum, "must be in [0, 1)")
    _check(t.weight_decay >= 0, "weight_decay", t.weight_decay, "must be >= 0")
    _check(
        t.lr_schedule in ("cosine", "piecewise", "constant"),
        "lr_schedule",
        t.lr_schedule,
        "cosine, piecewise or constant",
    )
    _check(
        t.mixed_precision in ("float32", "mixed_float16", "mixed_bfloat16"),
        "mixed_precision",
        t.mixed_precision,
        "float32, mixed_float16 or mixed_bfloat16",
    )
    _check(
        t.kd_temperature >= 0,
        "kd_temperature",
        t.kd_temperature,
        "must be >= 0",
    )
    _check(a.mixup_type in (0, 1, 2), "mixup_type", a.mixup_type, "0, 1 or 2")
    _check(
        a.mixup_mode in ("mixup", "cutmix"),
        "mixup_mode",
        a.mixup_mode,
        "mixup or cutmix",
    )
    _check(
        0 <= a.label_smoothing < 1,
        "label_smoothing",
        a.label_smoothing,
        "must be in [0, 1)",
    )
    _check(a.mixup_alpha > 0, "mixup_alpha", a.mixup_alpha, "must be > 0")
    _check(
        t.max_steps is None or t.max_steps > 0,
        "max_steps",
        t.max_steps,
        "must be > 0",
    )
    _check(t.log_every >= 1, "log_every", t.log_every, "must be >= 1")
    _check(
        t.eval_batch_size is None or t.eval_batch_size >= 1,
        "eval_batch_size",
        t.eval_batch_size,
        "must be >= 1 (or unset: the training batch size)",
    )
    _check(
        t.steps_per_loop >= 1,
        "steps_per_loop",
        t.steps_per_loop,
        "must be >= 1",
    )
    _check(
        rt.distribution_strategy
        in ("off", "one_device", "mirrored", "multi_worker_mirrored", "tpu"),
        "distribution_strategy",
        rt.distribution_strategy,
        "off, one_device, mirrored, multi_worker_mirrored or tpu",
    )
    if t.dropblock_keep_prob:
        preset = presets.get(config.model.preset)
        has_layers = _has_dropblock(preset.name, {})
        why = (
            "the model has no DropBlock layers ("
            + (
                "--nodropblock removes them"
                if has_layers or config.model.add_dropblock
                else f"{preset.name} has none; --add_dropblock adds them"
            )
            + "), so a schedule would silently do nothing; leave it out "
            "(or --dropblock_keep_prob=none)"
        )
        _check(
            _has_dropblock(preset.name, dataclasses.asdict(config.model)),
            "dropblock_keep_prob",
            t.dropblock_keep_prob,
            why,
        )
    if a.autoaugment and a.autoaugment != "none":
        from assemble_tf.augment.policies import POLICIES

        _check(
            a.autoaugment in POLICIES,
            "autoaugment",
            a.autoaugment,
            f"one of {sorted(POLICIES)} or none",
        )
    _check(
        0 <= t.backbone_lr_multiplier,
        "backbone_lr_multiplier",
        t.backbone_lr_multiplier,
        "must be >= 0",
    )
    _check(
        t.bn_reestimate_steps >= 0,
        "bn_reestimate_steps",
        t.bn_reestimate_steps,
        "must be >= 0",
    )
    if d.source:
        _check(not d.synthetic, "synthetic", d.synthetic, "not with --source")
    elif not d.synthetic:
        _check(
            bool(d.data_dir),
            "data_dir",
            d.data_dir,
            "required unless --synthetic",
        )
        _check(
            os.path.isdir(d.data_dir),
            "data_dir",
            d.data_dir,
            "no such directory",
        )
    if d.class_range:
        _check(bool(d.source), "class_range", d.class_range, "needs --source")
        low, high = class_range(d)
        _check(
            0 <= low < high and high - low == d.num_classes,
            "class_range",
            d.class_range,
            f"'low,high' with 0 <= low < high and high - low == "
            f"--num_classes ({d.num_classes})",
        )
    from assemble_tf.data.sizes import eval_sizes

    eval_sizes(d.eval_preprocessing)


def class_range(data_config):
    """(low, high) of `data.class_range`, or None."""
    if not data_config.class_range:
        return None
    try:
        low, high = (int(v) for v in str(data_config.class_range).split(","))
    except ValueError:
        raise ValueError(
            f"--class_range={data_config.class_range!r} is invalid: "
            "'low,high' integers such as 0,100."
        ) from None
    return low, high
