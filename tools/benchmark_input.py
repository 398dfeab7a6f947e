r"""Input-pipeline benchmark: the training pipeline against two baselines.

    python -m tools.benchmark_input --data_dir=/data/imagenet \
        --autoaugment=imagenet --mixup_type=1 --json

Prints images/s of three pipelines on the same records: the whole
training pipeline (crop, flip, resize, optional AutoAugment, batching,
Mixup), decode-and-crop alone, and decode-crop-resize (the crop resized,
nothing else), and their ratios: `ratio` = full / decode-and-crop (the goal
is >= 0.8), `resize_ratio` = decode-crop-resize / decode-and-crop (the most
`ratio` can be on this machine) and `ratio_vs_resize` = full /
decode-crop-resize (what augmentation, batching and Mixup cost). The three
are timed in alternation, `--rounds` times for at least `--min_seconds`
each (after `--settle_seconds` untimed, which drain the batches a pipeline
prefetched while another one ran), and each ratio is the median of the
per-round ratios. The work is
`assemble_tf.training.input_benchmark.run_benchmark`.
"""

import dataclasses
import json

from absl import flags

from official.utils.flags import core as flags_core

FLAGS = flags.FLAGS


def define_flags():
    """Defines the binary's flags (`InputBenchmarkOptions` fields)."""
    flags.DEFINE_string("data_dir", None, "Folder with TFRecord shards.")
    flags.DEFINE_string(
        "file_pattern", "train-*", "Shard glob inside data_dir."
    )
    flags.DEFINE_integer("batch_size", 128, "Images per batch.", lower_bound=1)
    flags.DEFINE_integer("image_size", 224, "Train crop side.", lower_bound=8)
    _define_timing_flags()
    _define_pipeline_flags()
    flags.DEFINE_bool("json", False, "Print one JSON line only.")
    flags.mark_flag_as_required("data_dir")


def _define_timing_flags():
    """How long and how often each pipeline is timed."""
    flags.DEFINE_integer(
        "rounds",
        5,
        "Timed rounds; each times all three pipelines, one after the other.",
        lower_bound=1,
    )
    flags.DEFINE_float(
        "min_seconds",
        2.0,
        "Minimum timing per pipeline and round (whole batches).",
        lower_bound=0.0,
    )
    flags.DEFINE_float(
        "settle_seconds",
        0.5,
        "Untimed pulling before each timing (drains the batches a pipeline "
        "prefetched while the other one was timed).",
        lower_bound=0.0,
    )
    flags.DEFINE_integer(
        "warmup_steps", 5, "Untimed batches first.", lower_bound=0
    )


def _define_pipeline_flags():
    """What the training pipeline does."""
    flags.DEFINE_string(
        "autoaugment",
        None,
        "AutoAugment policy (imagenet, v0, good, test) or none.",
    )
    flags.DEFINE_integer("randaugment_layers", 0, "RandAugment N (0 = off).")
    flags.DEFINE_integer("randaugment_magnitude", 10, "RandAugment M.")
    flags.DEFINE_enum("mixup_type", "0", ["0", "1", "2"], "Mixup type.")
    flags.DEFINE_float("label_smoothing", 0.0, "Label smoothing.")
    flags.DEFINE_integer("num_classes", 1001, "Width of the targets.")
    flags.DEFINE_enum(
        "dtype",
        "uint8",
        ["uint8", "float32", "float16", "bfloat16"],
        "Image dtype out of tf.data. uint8 (default, the trainer's setting) "
        "leaves normalization and Mixup to the train step on the device; a "
        "float dtype does them in tf.data.",
    )


def options_from_flags(flag_values):
    """The `InputBenchmarkOptions` of the parsed flags (a progress bar
    unless --json)."""
    from assemble_tf.training import input_benchmark

    values = {
        f.name: flag_values[f.name].value
        for f in dataclasses.fields(input_benchmark.InputBenchmarkOptions)
        if f.name != "progress"
    }
    values["mixup_type"] = int(values["mixup_type"])
    return input_benchmark.InputBenchmarkOptions(
        **values, progress=not flag_values.json
    )


def main(argv):
    del argv
    from assemble_tf.training import input_benchmark

    report = input_benchmark.run_benchmark(options_from_flags(FLAGS))
    if FLAGS.json:
        print(json.dumps(report))
        return
    print(input_benchmark.format_text(report))


if __name__ == "__main__":
    define_flags()
    flags_core.run(main)
