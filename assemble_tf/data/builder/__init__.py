"""Builds sharded TFRecords of labelled images in the original format.

The record format, the shard names (`train-00000-of-01024`), the 1-based
ImageNet labels and the re-encoding of CMYK and PNG files as RGB JPEG follow
clovaai/assembled-cnn `datasets/build_imagenet_data.py`, itself the
TensorFlow ImageNet converter (tensorflow/models `research/inception`
`data/build_imagenet_data.py`). The code here is written anew: discovery,
resumable shard writing, the manifest and the summary are this project's.

Layouts (`BuildConfig.layout`):

* `imagenet`: `train/<wnid>/*.JPEG`; validation as `val/<wnid>/*.JPEG` or a
  flat folder plus `validation_labels` (one wnid per line in sorted-filename
  order, or `filename wnid` lines). Class folders must be WordNet ids.
  Labels are `index of the sorted wnid + 1` (0 is the background).
* `folder`: `root/<class>/<image>` for any dataset, 0-based labels; images
  of the extensions `IMAGE_EXTENSIONS` (JPEG, PNG, GIF, BMP, TIFF, WebP).

The label space is the sorted class folders of `train_dir` (of the
validation classes when only validation is built). Every image is checked
by decoding it with Pillow; RGB JPEGs are copied byte for byte, anything
else (CMYK or grayscale JPEG, PNG, also when named `.JPEG`) is re-encoded as
an RGB JPEG (transparency composed onto white, 16-bit samples scaled to
8 bits; no EXIF rotation, as in the original). Empty, truncated and
unreadable files are skipped and listed in `summary.json`, never fatal; a
file that could not be opened is read again by a rerun (its shard is
rebuilt), e.g. once its permissions are fixed.

Optional inputs:

* `synsets_file`: lines `n01440764 tench, Tinca tinca` (first
  whitespace-separated field, then the text), e.g. `LOC_synset_mapping.txt`
  or `imagenet_metadata.txt`; gives `image/class/text`. Without it the text
  is the class name.
* `bbox_csv`: lines `filename,xmin,ymin,xmax,ymax`, normalized to [0, 1],
  several lines per image allowed (the original `process_bounding_boxes.py`
  output).
* Teacher logits (`logits`, `train_logits`, `validation_logits`):
  comma-separated files or globs, each either a CSV with rows
  `filename,v1,...,vK` (the original `train-*.csv` / `validation-*.csv`) or
  an `.npz` holding `filenames` (str, [N]) and `logits` (float, [N, K]).
  A directory given as `logits` means `DIR/train*` for train and
  `DIR/validation*` for validation, as in the original. Every image of a
  split given logits must have a row, else the build stops listing them.

File names in the bbox and logits files are matched against the path
relative to the split folder (`n01440764/x.JPEG`) first, then the base name
(`x.JPEG`, what `image/filename` holds).

Output in `output_dir`: the shards, `labels.txt` (`label<TAB>synset<TAB>
text` per class), `summary.json`, `build_manifest.json` (the options and one
SHA-256 per shard over its files, labels, texts, boxes and logits) and
`.build_state/` (one JSON per finished shard). Shards are written to a
hidden temp file and renamed when complete, so a rerun of the same build
skips finished shards and redoes only the rest; a rerun with other options
or inputs is refused unless `overwrite`. A planned shard whose files are
all unreadable writes no file; once a split is complete its other shards
are renumbered `-00000-of-KKKKK` ... (K shards with images), so no shard
is empty and the names stay consistent. A split missing from the folder
(e.g. validation after train) may be added by a later run with the same
layout, label offset, quality, seed and classes.
"""

from assemble_tf.data.builder.config import (
    DEFAULT_JPEG_QUALITY,
    DEFAULT_SEED,
    LABELS,
    LAYOUTS,
    MANIFEST,
    SPLITS,
    STATE_DIR,
    SUMMARY,
    BuildConfig,
    Entry,
)
from assemble_tf.data.builder.images import SkipImage, encode_image
from assemble_tf.data.builder.plan import assign_shards, plan, resolve_config
from assemble_tf.data.builder.run import (
    JOB,
    build,
    format_summary,
    summarize,
)
from assemble_tf.data.builder.shards import (
    ShardTask,
    finalize_split,
    state_path,
    temp_shard_path,
    write_shard,
)

__all__ = [
    "DEFAULT_JPEG_QUALITY",
    "DEFAULT_SEED",
    "JOB",
    "LABELS",
    "LAYOUTS",
    "MANIFEST",
    "SPLITS",
    "STATE_DIR",
    "SUMMARY",
    "BuildConfig",
    "Entry",
    "ShardTask",
    "SkipImage",
    "assign_shards",
    "build",
    "encode_image",
    "finalize_split",
    "format_summary",
    "plan",
    "resolve_config",
    "state_path",
    "summarize",
    "temp_shard_path",
    "write_shard",
]
