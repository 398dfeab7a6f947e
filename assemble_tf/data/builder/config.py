"""What a build is given: its options, layouts and defaults."""

import dataclasses
import re
from typing import NamedTuple

from assemble_tf.data import metadata

LAYOUTS = ("imagenet", "folder")
SPLITS = ("train", "validation")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
DEFAULT_SEED = 12345  # the original converters' random.seed(12345)
DEFAULT_JPEG_QUALITY = 95


# The original ImageNet shard counts; transfer datasets used 128 / 16.
DEFAULT_SHARDS = {
    "imagenet": {"train": 1024, "validation": 128},
    "folder": {"train": 128, "validation": 16},
}
DEFAULT_LABEL_OFFSET = {"imagenet": 1, "folder": 0}
MANIFEST = "build_manifest.json"
SUMMARY = metadata.SUMMARY  # its splits, counts and skipped files
LABELS = metadata.LABELS  # label<TAB>synset<TAB>text per class
STATE_DIR = ".build_state"
FORMAT_VERSION = 1
WNID_PATTERN = re.compile(r"^n\d{8}$")
MAX_LISTED = 20


class Entry(NamedTuple):
    """One input image: its path under the split folder and its class."""

    relpath: str
    label: int
    synset: str
    text: str


@dataclasses.dataclass
class BuildConfig:
    """Everything a build needs; field names are the binary's flag names.

    `train_shards`, `validation_shards` and `label_offset` left as None take
    the layout's default (1024 / 128 and 1 for `imagenet`, 128 / 16 and 0
    for `folder`); a default shard count larger than the number of images
    shrinks to it.
    """

    output_dir: str
    layout: str = "imagenet"
    train_dir: str | None = None
    validation_dir: str | None = None
    validation_labels: str | None = None
    synsets_file: str | None = None
    bbox_csv: str | None = None
    logits: str | None = None
    train_logits: str | None = None
    validation_logits: str | None = None
    train_shards: int | None = None
    validation_shards: int | None = None
    num_workers: int = 1
    seed: int = DEFAULT_SEED
    label_offset: int | None = None
    jpeg_quality: int = DEFAULT_JPEG_QUALITY
    overwrite: bool = False
    progress: bool = True
