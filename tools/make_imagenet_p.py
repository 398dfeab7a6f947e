r"""Generates ImageNet-P perturbation videos from ImageNet validation images.

    python -m tools.make_imagenet_p --input_dir=/data/imagenet/val \
        --output_dir=/data/imagenet-p --workers=16
    python -m tools.make_imagenet_p \
        --tfrecord_pattern='/data/imagenet_tfrecords/validation-*' \
        --output_dir=/data/imagenet-p-256 --resize=292 --crop=256
    python -m tools.make_imagenet_p --input_dir=/data/imagenet/val \
        --output_dir=/data/imagenet-p --perturbations=gaussian_noise \
        --difficulty=2                     # writes gaussian_noise_2/
    python -m tools.make_imagenet_p --input_dir=/data/imagenet/val \
        --output_dir=/data/imagenet-p-mp4v --codec=mp4v  # no ffmpeg binary

The work, its reference and its resumable output are described in
`assemble_tf.robustness.generate_p`. A summary is printed and written to
`summary.json`.
"""

import os

from absl import flags

from assemble_tf.robustness import generate_p, inputs, video
from official.utils.flags import core as flags_core
from official.utils.misc import jobs

FLAGS = flags.FLAGS


def define_flags():
    """Defines the binary's flags (the fields of `generate_p.Options`)."""
    flags.DEFINE_string(
        "input_dir",
        None,
        "ImageNet validation images in class folders <wnid>/<file>.JPEG.",
    )
    flags.DEFINE_string(
        "tfrecord_pattern",
        None,
        "Glob of validation TFRecords (e.g. /data/validation-*) with "
        "image/encoded, image/class/synset and image/filename.",
    )
    flags.DEFINE_string("output_dir", None, "Where the videos go.")
    flags.DEFINE_integer(
        "resize", 256, "Shorter side after the bilinear resize."
    )
    flags.DEFINE_integer(
        "crop", 224, "Side of the centre crop (even with --codec=mp4v)."
    )
    flags.DEFINE_enum(
        "crop_rounding",
        "auto",
        list(inputs.CROP_ROUNDINGS),
        inputs.CROP_ROUNDING_HELP,
    )
    flags.DEFINE_string(
        "perturbations",
        None,
        "Comma-separated perturbations. Default: those of --set. Valid: "
        "gaussian_noise, shot_noise, motion_blur, zoom_blur, snow, "
        "brightness, translate, rotate, tilt, scale (test); "
        "speckle_noise, gaussian_blur, spatter, shear (validation).",
    )
    flags.DEFINE_enum(
        "set",
        "test",
        list(generate_p.SETS),
        "Perturbations when --perturbations is not given.",
    )
    flags.DEFINE_integer(
        "difficulty",
        1,
        "Noise level 1..3 of gaussian_noise, shot_noise and "
        "speckle_noise; 2 and 3 go to <name>_2, <name>_3. The other "
        "perturbations have one sequence and ignore it.",
    )
    flags.DEFINE_integer("seed", 0, "Seed of the random perturbations.")
    flags.DEFINE_enum(
        "codec",
        video.DEFAULT_CODEC,
        list(video.CODECS),
        "x264: libx264 with the release's ffmpeg options (-crf 20, or "
        "-tune grain for the noise sequences; yuv444p, -preset "
        "veryslow) through imageio-ffmpeg's binary. mp4v: OpenCV's "
        "MPEG-4 Part 2 (4:2:0, even --crop), a less faithful fallback "
        "that needs no ffmpeg binary.",
    )
    flags.DEFINE_integer("workers", 1, "Worker processes (spawned).")
    flags.DEFINE_integer(
        "limit", 0, "Only the first N images (sorted order); 0 = all."
    )
    flags.DEFINE_bool("progress", True, "Show a progress bar.")
    flags.DEFINE_bool("json", False, "Also print the summary as JSON.")


def main(argv):
    jobs.main(generate_p.JOB, argv, FLAGS)


if __name__ == "__main__":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # a CPU job: keep GPUs free
    define_flags()
    flags.mark_flags_as_required(["output_dir"])
    flags_core.run(main)
