r"""Writes a small real classification dataset as TFRecords (no download).

    python -m tools.make_demo_dataset --output_dir=demo_out/digits

scikit-learn's 1,797 handwritten digits as 64x64 JPEG TFRecords, 1,438
train / 359 validation, 10 classes; see `assemble_tf.data.demo_dataset`.
"""

import os

os.environ["CUDA_VISIBLE_DEVICES"] = ""  # a CPU job: keep GPUs free

from absl import flags  # noqa: E402

from official.utils.flags import core as flags_core  # noqa: E402

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("output_dir", None, "Where the TFRecords go.")
    flags.DEFINE_integer("train_shards", 2, "Number of train shards.")
    flags.DEFINE_integer("validation_shards", 1, "Number of validation shards.")
    flags.DEFINE_integer("num_workers", 1, "Builder worker processes.")
    flags.DEFINE_bool(
        "overwrite", False, "Replace another build in --output_dir."
    )
    flags.DEFINE_bool("progress", True, "Show a progress bar.")


def main(argv):
    del argv
    from assemble_tf.data import builder, demo_dataset

    summary = demo_dataset.make_demo_dataset(
        FLAGS.output_dir,
        FLAGS.train_shards,
        FLAGS.validation_shards,
        FLAGS.num_workers,
        FLAGS.overwrite,
        FLAGS.progress,
    )
    print(builder.format_summary(summary))


if __name__ == "__main__":
    define_flags()
    flags.mark_flags_as_required(["output_dir"])
    flags_core.run(main)
