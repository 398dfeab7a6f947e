"""Flags of `tools.build_imagenet_tfrecords` (the fields of `BuildConfig`).

Only absl and the flag table: the builder is a CPU job whose library
(`assemble_tf.data.builder`) its `main` imports.
"""

import os

from flags import flag_table

TABLE = (
    (
        "enum",
        "layout",
        "imagenet",
        "imagenet: train/<wnid>/*.JPEG, labels = sorted wnid + 1. "
        "folder: root/<class>/<image>, labels = sorted class. Images: "
        ".jpg .jpeg .jpe .jfif .png .gif .bmp .tif .tiff .webp, any case.",
        {"enum_values": ["imagenet", "folder"]},
    ),
    ("string", "train_dir", None, "Folder of class folders."),
    (
        "string",
        "validation_dir",
        None,
        "Folder of class folders, or a flat folder of images with "
        "--validation_labels.",
    ),
    (
        "string",
        "validation_labels",
        None,
        "Labels of a flat --validation_dir: one class (wnid) per line "
        "in sorted-filename order, or 'filename class' lines.",
    ),
    (
        "string",
        "synsets_file",
        None,
        "Lines 'n01440764 tench, Tinca tinca' giving image/class/text "
        "(LOC_synset_mapping.txt, imagenet_metadata.txt). Default text: "
        "the class name.",
    ),
    (
        "string",
        "bbox_csv",
        None,
        "Lines 'filename,xmin,ymin,xmax,ymax', normalized to [0, 1].",
    ),
    (
        "string",
        "logits",
        None,
        "Teacher logits for every split: comma-separated CSV files "
        "(rows 'filename,v1,...,vK') or .npz files (arrays 'filenames', "
        "'logits'), globs allowed; a directory means DIR/train* and "
        "DIR/validation*.",
    ),
    (
        "string",
        "train_logits",
        None,
        "Teacher logits of train only (as --logits).",
    ),
    (
        "string",
        "validation_logits",
        None,
        "Teacher logits of validation only (as --logits).",
    ),
    ("string", "output_dir", None, "Where the shards go."),
    (
        "integer",
        "train_shards",
        None,
        "Train shards. Default: 1024 (imagenet), 128 (folder).",
    ),
    (
        "integer",
        "validation_shards",
        None,
        "Validation shards. Default: 128 (imagenet), 16 (folder).",
    ),
    (
        "integer",
        "num_workers",
        min(os.cpu_count() or 1, 16),
        "Worker processes, one shard each at a time.",
    ),
    ("integer", "seed", 12345, "Seed of the file shuffle before sharding."),
    (
        "integer",
        "label_offset",
        None,
        "Added to the class index. Default: 1 (imagenet), 0 (folder).",
    ),
    ("integer", "jpeg_quality", 95, "Quality of re-encoded images (1..100)."),
    (
        "bool",
        "overwrite",
        False,
        "Replace another build in --output_dir. Not needed to resume "
        "the same build.",
    ),
    ("bool", "progress", True, "Show a progress bar."),
    ("bool", "json", False, "Also print the summary as JSON."),
)


def define():
    """Defines the builder's flags."""
    flag_table.define_table(TABLE, __name__)
