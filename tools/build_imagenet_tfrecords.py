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

from official.utils.flags import core as flags_core

FLAGS = flags.FLAGS


def define_flags():
    """Defines the builder's flags (the fields of `BuildConfig`)."""
    flags.DEFINE_enum(
        "layout",
        "imagenet",
        ["imagenet", "folder"],
        "imagenet: train/<wnid>/*.JPEG, labels = sorted wnid + 1. "
        "folder: root/<class>/*.jpg|jpeg|png, labels = sorted class.",
    )
    flags.DEFINE_string("train_dir", None, "Folder of class folders.")
    flags.DEFINE_string(
        "validation_dir",
        None,
        "Folder of class folders, or a flat folder of images with "
        "--validation_labels.",
    )
    flags.DEFINE_string(
        "validation_labels",
        None,
        "Labels of a flat --validation_dir: one class (wnid) per line "
        "in sorted-filename order, or 'filename class' lines.",
    )
    flags.DEFINE_string(
        "synsets_file",
        None,
        "Lines 'n01440764 tench, Tinca tinca' giving image/class/text "
        "(LOC_synset_mapping.txt, imagenet_metadata.txt). Default text: "
        "the class name.",
    )
    flags.DEFINE_string(
        "bbox_csv",
        None,
        "Lines 'filename,xmin,ymin,xmax,ymax', normalized to [0, 1].",
    )
    flags.DEFINE_string(
        "logits",
        None,
        "Teacher logits for every split: comma-separated CSV files "
        "(rows 'filename,v1,...,vK') or .npz files (arrays 'filenames', "
        "'logits'), globs allowed; a directory means DIR/train* and "
        "DIR/validation*.",
    )
    flags.DEFINE_string(
        "train_logits", None, "Teacher logits of train only (as --logits)."
    )
    flags.DEFINE_string(
        "validation_logits",
        None,
        "Teacher logits of validation only (as --logits).",
    )
    flags.DEFINE_string("output_dir", None, "Where the shards go.")
    flags.DEFINE_integer(
        "train_shards",
        None,
        "Train shards. Default: 1024 (imagenet), 128 (folder).",
    )
    flags.DEFINE_integer(
        "validation_shards",
        None,
        "Validation shards. Default: 128 (imagenet), 16 (folder).",
    )
    flags.DEFINE_integer(
        "num_workers",
        min(os.cpu_count() or 1, 16),
        "Worker processes, one shard each at a time.",
    )
    flags.DEFINE_integer(
        "seed", 12345, "Seed of the file shuffle before sharding."
    )
    flags.DEFINE_integer(
        "label_offset",
        None,
        "Added to the class index. Default: 1 (imagenet), 0 (folder).",
    )
    flags.DEFINE_integer(
        "jpeg_quality", 95, "Quality of re-encoded images (1..100)."
    )
    flags.DEFINE_bool(
        "overwrite",
        False,
        "Replace another build in --output_dir. Not needed to resume "
        "the same build.",
    )
    flags.DEFINE_bool("progress", True, "Show a progress bar.")
    flags.DEFINE_bool("json", False, "Also print the summary as JSON.")


def main(argv):
    from assemble_tf.data import builder
    from official.utils.misc import jobs

    jobs.main(builder.JOB, argv, FLAGS)


if __name__ == "__main__":
    define_flags()
    flags.mark_flags_as_required(["output_dir"])
    flags_core.run(main)
