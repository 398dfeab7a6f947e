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

from assemble_tf.robustness import generate_p
from flags import make_imagenet_p_flags
from official.utils.flags import core as flags_core
from official.utils.misc import jobs

FLAGS = flags.FLAGS


def define_flags():
    """Defines the binary's flags (`flags.make_imagenet_p_flags`, the fields
    of `generate_p.Options`)."""
    make_imagenet_p_flags.define()


def main(argv):
    jobs.main(generate_p.JOB, argv, FLAGS)


if __name__ == "__main__":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # a CPU job: keep GPUs free
    define_flags()
    flags.mark_flags_as_required(["output_dir"])
    flags_core.run(main)
