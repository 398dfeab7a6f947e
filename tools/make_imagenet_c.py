r"""Regenerates ImageNet-C (19 corruptions x 5 severities) from validation data.

    python -m tools.make_imagenet_c --input_dir=/data/ILSVRC2012/val \
        --output_dir=/data/imagenet_c_224 --workers=16

    # the 256-px set for the Assemble models (292 -> 256)
    python -m tools.make_imagenet_c \
        --tfrecord_pattern='/data/imagenet/validation-*' \
        --output_dir=/data/imagenet_c_256 --resize=292 --crop=256

The work, its reference and its resumable output are described in
`assemble_tf.robustness.generate_c`. A summary is printed and written to
`summary.json`.
"""

from absl import flags

from assemble_tf.robustness import inputs
from official.utils.flags import core as flags_core

FLAGS = flags.FLAGS


def define_flags():
    """Defines the binary's flags (the fields of `generate_c.Options`)."""
    _define_input_flags()
    _define_output_flags()
    flags.DEFINE_bool("progress", True, "Show a tqdm progress bar.")


def _define_input_flags():
    """Where the validation images come from, and how many."""
    flags.DEFINE_string(
        "input_dir", None, "Validation folder in the <wnid>/<file>.JPEG layout."
    )
    flags.DEFINE_string(
        "tfrecord_pattern",
        None,
        "Glob of validation TFRecords (image/encoded, image/class/synset, "
        "image/filename), instead of --input_dir.",
    )
    flags.DEFINE_integer(
        "limit", 0, "Only the first N images (0 = all).", lower_bound=0
    )
    flags.DEFINE_integer(
        "workers", 1, "Worker processes (spawn).", lower_bound=1
    )


def _define_output_flags():
    """What is written: the crop, the corruptions and the seed."""
    flags.DEFINE_string("output_dir", None, "Where the corrupted set goes.")
    flags.DEFINE_integer(
        "resize", 256, "Shorter side after the bilinear resize.", lower_bound=1
    )
    flags.DEFINE_integer("crop", 224, "Centre crop side.", lower_bound=32)
    flags.DEFINE_enum(
        "crop_rounding",
        "auto",
        list(inputs.CROP_ROUNDINGS),
        inputs.CROP_ROUNDING_HELP,
    )
    flags.DEFINE_string(
        "corruptions",
        "",
        "Comma-separated corruption names (default: all 19).",
    )
    flags.DEFINE_string("severities", "1,2,3,4,5", "Comma-separated, in 1..5.")
    flags.DEFINE_integer(
        "seed", 0, "Base seed (per image: + its file name).", lower_bound=0
    )


def main(argv):
    from assemble_tf.robustness import generate_c
    from official.utils.misc import jobs

    jobs.main(generate_c.JOB, argv, FLAGS)


if __name__ == "__main__":
    define_flags()
    flags_core.run(main)
