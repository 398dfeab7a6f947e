"""Regenerates ImageNet-C (19 corruptions x 5 severities) from validation data.

    python -m tools.make_imagenet_c --input_dir=/data/ILSVRC2012/val \
        --output_dir=/data/imagenet_c_224 --workers=16

    # the 256-px set for the Assemble models (292 -> 256)
    python -m tools.make_imagenet_c \
        --tfrecord_pattern='/data/imagenet/validation-*' \
        --output_dir=/data/imagenet_c_256 --resize=292 --crop=256

Hendrycks & Dietterich (ICLR 2019, github.com/hendrycks/robustness) build
ImageNet-C by resizing every validation image (shorter side 256, PIL
bilinear), centre-cropping 224 and applying each corruption at severities
1-5; Assemble-ResNet (Lee et al., arXiv 2001.06268, clovaai/assembled-cnn
`datasets/CE_dataset/CE_validation_generator.py`) does the same with 292 ->
256 for its 256-px models and evaluates mCE over all 19 corruptions. The
corruptions are `assemble_tf.robustness.corruptions` (frost textures are
synthetic; see there).

Input: `--input_dir` in ImageNet val layout `<wnid>/<file>.JPEG`, or
`--tfrecord_pattern` (our validation records: image/encoded,
image/class/synset, image/filename). Output, as the reference:
`<output_dir>/<corruption>/<severity>/<wnid>/<file stem>.JPEG`, JPEG quality
85 (optimize). Each file is written to a hidden temp file and renamed, so an
interrupted run resumes: existing files are skipped and counted. The
options that change pixels (--resize, --crop, --seed, JPEG quality) are kept
in `options.json`; a run with other values in the same --output_dir is
refused. --corruptions / --severities / --limit only select which files to
write. The random draws of one image depend on --seed and its file name only,
not on --workers. A summary (counts, failures with reasons, seconds,
options) is printed and written to `summary.json`.
"""

import os
import sys

from absl import flags

from official.utils.flags import core as flags_core

hw = flags_core.help_wrap
flags.DEFINE_string(
    "input_dir", None, "Validation folder in the <wnid>/<file>.JPEG layout."
)
flags.DEFINE_string(
    "tfrecord_pattern",
    None,
    hw(
        "Glob of validation TFRecords (image/encoded, image/class/synset, "
        "image/filename), instead of --input_dir."
    ),
)
flags.DEFINE_string("output_dir", None, "Where the corrupted set goes.")
flags.DEFINE_integer(
    "resize", 256, "Shorter side after the bilinear resize.", lower_bound=1
)
flags.DEFINE_integer("crop", 224, "Centre crop side.", lower_bound=32)
flags.DEFINE_string(
    "corruptions",
    "",
    "Comma-separated corruption names (default: all 19).",
)
flags.DEFINE_string("severities", "1,2,3,4,5", "Comma-separated, in 1..5.")
flags.DEFINE_integer(
    "seed", 0, "Base seed (per image: + its file name).", lower_bound=0
)
flags.DEFINE_integer("workers", 1, "Worker processes (spawn).", lower_bound=1)
flags.DEFINE_integer(
    "limit", 0, "Only the first N images (0 = all).", lower_bound=0
)
flags.DEFINE_bool("progress", True, "Show a tqdm progress bar.")
FLAGS = flags.FLAGS


def main(argv):
    from assemble_tf.robustness import generate_c

    if len(argv) > 1:
        raise ValueError(f"Unexpected arguments: {' '.join(argv[1:])}")
    options = generate_c.options_from_values(FLAGS)
    summary = generate_c.generate(options, progress=FLAGS.progress)
    print(generate_c.format_summary(summary))
    print(
        f"summary: {os.path.join(options.output_dir, generate_c.SUMMARY_FILE)}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    flags_core.run(main)
