"""Input-pipeline benchmark of a TFRecord folder: the full training
pipeline vs decode-and-crop.

The work of `tools.benchmark_input`: images/s of the whole training
pipeline (crop, flip, resize, optional AutoAugment / RandAugment,
batching, Mixup) and of decode-and-crop alone on the same records, and
their ratio (the goal is >= 0.8). The two are timed in alternation,
`rounds` times for at least `min_seconds` each (after `settle_seconds`
untimed, which drain the batches a pipeline prefetched while the other one
ran), and the ratio is the median of the per-round ratios
(`assemble_tf.data.benchmark.run`; the input mechanics follow
clovaai/assembled-cnn, Lee et al. 2020, https://arxiv.org/abs/2001.06268).

    options = input_benchmark.InputBenchmarkOptions(data_dir="/data/imagenet")
    report = input_benchmark.run_benchmark(options)   # ratio, images/s, ...
"""

import dataclasses
import os

from official.utils.misc import progress as progress_lib
from official.utils.misc.validation import (
    OptionError,
    check_at_least,
    check_choices,
)

MIXUP_TYPES = (0, 1, 2)
DTYPES = ("uint8", "float32", "float16", "bfloat16")


@dataclasses.dataclass(frozen=True)
class InputBenchmarkOptions:
    """What to time; field names are `tools.benchmark_input`'s flags.

    Attributes:
        data_dir: folder with TFRecord shards.
        file_pattern: shard glob inside `data_dir`.
        batch_size: images per batch.
        image_size: train crop side.
        rounds: timed rounds; each times all three pipelines, one after the
            other.
        min_seconds: minimum timing per pipeline and round (whole
            batches).
        settle_seconds: untimed pulling before each timing (drains the
            batches a pipeline prefetched while the other one was timed).
        warmup_steps: untimed batches first.
        autoaugment: AutoAugment policy (imagenet, v0, good), none or None.
        randaugment_layers: RandAugment N (0: off).
        randaugment_magnitude: RandAugment M.
        mixup_type: Mixup type, 0 (off), 1 or 2.
        label_smoothing: label smoothing of the targets.
        num_classes: width of the targets.
        dtype: image dtype out of tf.data, one of `DTYPES`: uint8 (the
            trainer's setting) leaves normalization and Mixup to the train
            step; a float dtype does them in tf.data.
        progress: show a progress bar (on stderr).
    """

    data_dir: str
    file_pattern: str = "train-*"
    batch_size: int = 128
    image_size: int = 224
    rounds: int = 5
    min_seconds: float = 2.0
    settle_seconds: float = 0.5
    warmup_steps: int = 5
    autoaugment: str | None = None
    randaugment_layers: int = 0
    randaugment_magnitude: int = 10
    mixup_type: int = 0
    label_smoothing: float = 0.0
    num_classes: int = 1001
    dtype: str = "uint8"
    progress: bool = True


def validate(options):
    """Raises `OptionError` naming the option of a bad value."""
    if not options.data_dir:
        raise OptionError("data_dir", "{field} is required.")
    choices = {"mixup_type": MIXUP_TYPES, "dtype": DTYPES}
    check_choices(options, choices)
    lowest = dict(batch_size=1, image_size=8, rounds=1, warmup_steps=0)
    lowest.update(num_classes=2)  # before: 0 failed in the pipeline
    lowest.update(min_seconds=0.0, settle_seconds=0.0)
    check_at_least(options, lowest)
    from assemble_tf import config as config_lib

    # The recipe's own checks, before any timing (before: RandAugment
    # beside AutoAugment was dropped silently, a bad label smoothing
    # failed once the bar had started).
    config_lib.AugmentConfig(
        autoaugment=options.autoaugment or "none",
        randaugment_layers=options.randaugment_layers,
        randaugment_magnitude=options.randaugment_magnitude,
        label_smoothing=options.label_smoothing,
    ).validate()
    import keras

    if (
        options.dtype != "uint8"
        and options.mixup_type
        and keras.backend.backend() != "tensorflow"
    ):
        # Float pipelines mix inside tf.data with Keras ops, whose random
        # draws only the TensorFlow backend runs on tf.data tensors (a
        # traceback under JAX).
        raise OptionError(
            "dtype",
            "{field}={value} with {mixup_type} mixes inside tf.data, "
            "which needs KERAS_BACKEND=tensorflow; under {backend} time "
            "{field}=uint8 (mixed on the device, as training does).",
            ["mixup_type"],
            value=options.dtype,
            backend=keras.backend.backend(),
        )


def input_config(options):
    """The training `InputConfig` of `options` (shards, sizes, Mixup,
    label smoothing, dtype and augmenter)."""
    from assemble_tf import config as config_lib
    from assemble_tf.data import benchmark
    from assemble_tf.runs.inputs import make_augmenter

    return benchmark.InputConfig(
        file_pattern=os.path.join(options.data_dir, options.file_pattern),
        is_training=True,
        batch_size=options.batch_size,
        num_classes=options.num_classes,
        image_size=options.image_size,
        mixup_type=options.mixup_type,
        label_smoothing=options.label_smoothing,
        dtype=options.dtype,
        augmenter=make_augmenter(
            config_lib.AugmentConfig(
                autoaugment=options.autoaugment,
                randaugment_layers=options.randaugment_layers,
                randaugment_magnitude=options.randaugment_magnitude,
            )
        ),
    )


def run_benchmark(options):
    """Times the pipelines of `options` in alternation.

    Args:
        options: an `InputBenchmarkOptions`.

    Returns:
        `assemble_tf.data.benchmark.run`'s figures and ratios, then the
        settings (batch_size, image_size, autoaugment, mixup_type, dtype),
        cpu_count and the run information of
        `official.utils.logs.logger.run_info` (without devices).

    Raises:
        OptionError: a bad option (named).
    """
    from assemble_tf.data import benchmark, checks, input_pipeline

    validate(options)
    pattern = os.path.join(options.data_dir, options.file_pattern)
    sample = checks.sample_records(pattern, others=("file_pattern",))
    checks.check_records("benchmarked", sample)
    _check_labels_fit(options, sample)
    config = input_config(options)
    with (
        progress_lib.bar(
            total=3 * options.rounds,
            desc="timing (3 pipelines x rounds)",
            progress=options.progress,
        ) as bar,
        input_pipeline.reraise_data_errors(),
    ):
        result = benchmark.run(
            config,
            options.rounds,
            options.min_seconds,
            options.warmup_steps,
            bar,
            settle_seconds=options.settle_seconds,
        )
    return {**result, **_settings(options)}


def _check_labels_fit(options, sample):
    """Refuses a `num_classes` below the labels the data's summary.json /
    labels.txt states (before: the pipeline dropped the other records,
    the baselines did not, and the ratio fell without a word)."""
    from assemble_tf.data import metadata

    info = metadata.dataset_info(options.data_dir)
    if info is None:  # no summary.json / labels.txt: the records tell
        _check_sampled_labels_fit(options, sample)
        return
    width = info.head_width(0)
    if options.num_classes < width:
        raise OptionError(
            "num_classes",
            "{field}={value} does not cover the labels of {data_dir}={path} "
            "({count} classes stored as {low}..{high}): the pipeline would "
            "drop the other records and time less work than the baselines; "
            "pass {field}={width} or more.",
            ["data_dir"],
            value=options.num_classes,
            path=options.data_dir,
            count=info.num_classes,
            low=info.label_base,
            high=info.label_base + info.num_classes - 1,
            width=width,
        )


def _check_sampled_labels_fit(options, sample):
    """`_check_labels_fit` from the labels of the first records (`sample`),
    for a folder without metadata (before: a `num_classes` below them timed
    a pipeline that dropped records, without a word)."""
    if sample.max_label is not None and sample.max_label >= options.num_classes:
        raise OptionError(
            "num_classes",
            "{field}={value} does not cover the labels of {data_dir}={path}: "
            "its first {count} records hold labels up to {high}, and the "
            "pipeline would drop the records beyond {field} and time less "
            "work than the baselines; pass {field}={width} or more.",
            ["data_dir"],
            value=options.num_classes,
            path=options.data_dir,
            count=f"{sample.records:,}",
            high=sample.max_label,
            width=sample.max_label + 1,
        )


def _settings(options):
    """The settings and machine a report names beside its figures."""
    from official.utils.logs import logger

    return dict(
        data_dir=options.data_dir,
        file_pattern=options.file_pattern,
        batch_size=options.batch_size,
        image_size=options.image_size,
        num_classes=options.num_classes,
        autoaugment=options.autoaugment,
        randaugment_layers=options.randaugment_layers,
        randaugment_magnitude=options.randaugment_magnitude,
        mixup_type=options.mixup_type,
        label_smoothing=options.label_smoothing,
        dtype=options.dtype,
        cpu_count=os.cpu_count(),
        **{k: v for k, v in logger.run_info().items() if k != "devices"},
    )


def format_text(report):
    """`run_benchmark`'s report as aligned "key value" lines."""
    return "\n".join(f"{key:34s} {value}" for key, value in report.items())
