r"""Converts an image dataset into sharded TFRecords in the original format.

    python -m tools.build_imagenet_tfrecords \
        --train_dir=/data/ILSVRC2012/train \
        --validation_dir=/data/ILSVRC2012/val \
        --synsets_file=/data/LOC_synset_mapping.txt \
        --output_dir=/data/imagenet_tfrecords --num_workers=16

    python -m tools.build_imagenet_tfrecords --layout=folder \
        --train_dir=/data/food/train --validation_dir=/data/food/test \
        --output_dir=/data/food_tfrecords

Follows clovaai/assembled-cnn `datasets/build_imagenet_data.py` and the
TensorFlow ImageNet converter for the record format (keys in
`assemble_tf.data.schema`): shards `train-00000-of-01024`, ImageNet labels
1..1000 (sorted wnid + 1), CMYK / PNG / grayscale files re-encoded as RGB
JPEG, optional boxes and teacher logits (`image/logit`). The work is done by
`assemble_tf.data.builder`; see its docstring for the accepted layouts and
file formats. A rerun of the same command resumes an interrupted build;
another build in the same `--output_dir` needs `--overwrite`.
"""

import os

os.environ["CUDA_VISIBLE_DEVICES"] = ""  # a CPU job: keep GPUs free

from absl import flags

from flags import build_imagenet_tfrecords_flags
from official.utils.flags import core as flags_core

FLAGS = flags.FLAGS


def define_flags():
    """Defines the builder's flags (`flags.build_imagenet_tfrecords_flags`,
    the fields of `BuildConfig`)."""
    build_imagenet_tfrecords_flags.define()


def main(argv):
    from assemble_tf.data import builder
    from official.utils.misc import jobs

    jobs.main(builder.JOB, argv, FLAGS)


if __name__ == "__main__":
    define_flags()
    flags.mark_flags_as_required(["output_dir"])
    flags_core.run(main)
