"""Input-pipeline benchmark: full training pipeline vs decode-and-crop.

    python -m tools.benchmark_input --data_dir=/data/imagenet \
        --autoaugment=imagenet --mixup_type=1 --json

Prints images/s of the whole training pipeline (crop, flip, resize,
optional AutoAugment, batching, Mixup) and of decode-and-crop alone on the
same records, and their ratio (the goal is >= 0.8). The two are timed in
alternation, `--rounds` times for at least `--min_seconds` each (after
`--settle_seconds` untimed, which drain the batches a pipeline prefetched
while the other one ran), and the ratio is the median of the per-round
ratios.
"""

import json
import os
import sys

from absl import flags

from official.utils.flags import core as flags_core

flags.DEFINE_string("data_dir", None, "Folder with TFRecord shards.")
flags.DEFINE_string("file_pattern", "train-*", "Shard glob inside data_dir.")
flags.DEFINE_integer("batch_size", 128, "Images per batch.", lower_bound=1)
flags.DEFINE_integer("image_size", 224, "Train crop side.", lower_bound=8)
flags.DEFINE_integer(
    "rounds",
    5,
    "Timed rounds; each times both pipelines, one after the other.",
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
flags.DEFINE_integer("warmup_steps", 5, "Untimed batches first.", lower_bound=0)
flags.DEFINE_string(
    "autoaugment", None, "AutoAugment policy (imagenet, v0, good) or none."
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
flags.DEFINE_bool("json", False, "Print one JSON line only.")
flags.mark_flag_as_required("data_dir")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tqdm import tqdm

    from assemble_tf import config as config_lib
    from assemble_tf.data import benchmark
    from assemble_tf.runs.inputs import make_augmenter
    from official.utils.logs import logger

    pattern = os.path.join(FLAGS.data_dir, FLAGS.file_pattern)
    config = benchmark.InputConfig(
        file_pattern=pattern,
        is_training=True,
        batch_size=FLAGS.batch_size,
        num_classes=FLAGS.num_classes,
        image_size=FLAGS.image_size,
        mixup_type=int(FLAGS.mixup_type),
        label_smoothing=FLAGS.label_smoothing,
        dtype=FLAGS.dtype,
        augmenter=make_augmenter(
            config_lib.AugmentConfig(
                autoaugment=FLAGS.autoaugment,
                randaugment_layers=FLAGS.randaugment_layers,
                randaugment_magnitude=FLAGS.randaugment_magnitude,
            )
        ),
    )
    with tqdm(
        total=3 * FLAGS.rounds,
        desc="timing rounds",
        file=sys.stderr,
        disable=FLAGS.json,
    ) as bar:
        result = benchmark.run(
            config,
            FLAGS.rounds,
            FLAGS.min_seconds,
            FLAGS.warmup_steps,
            bar,
            settle_seconds=FLAGS.settle_seconds,
        )
    result.update(
        batch_size=FLAGS.batch_size,
        image_size=FLAGS.image_size,
        autoaugment=FLAGS.autoaugment,
        mixup_type=int(FLAGS.mixup_type),
        dtype=FLAGS.dtype,
        cpu_count=os.cpu_count(),
        **{k: v for k, v in logger.run_info().items() if k != "devices"},
    )
    if FLAGS.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:34s} {value}")


if __name__ == "__main__":
    flags_core.run(main)
