"""What a build is given: its options, layouts and defaults."""

import dataclasses
import os
import re
from typing import NamedTuple

from assemble_tf.data import metadata
from official.utils.misc import jobs
from official.utils.misc.validation import (
    OptionError,
    check_at_least,
    check_creatable_path,
)

LAYOUTS = ("imagenet", "folder")
SPLITS = ("train", "validation")
# What Pillow decodes (before: .jpg, .jpeg, .png only; a real .gif or .bmp
# was "not an image file" though its bytes under a .jpg name were read).
IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".jpe",
    ".jfif",
    ".png",
    ".gif",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
)
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
STATE_DIR = metadata.STATE_DIR  # a JSON per finished shard
FORMAT_VERSION = 1
WNID_PATTERN = re.compile(r"^n\d{8}$")
MAX_LISTED = 20


class Entry(NamedTuple):
    """One input image: its path under the split folder and its class."""

    relpath: str
    label: int
    synset: str
    text: str


@dataclasses.dataclass(frozen=True)
class BuildConfig(jobs.JobOptions):
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

    def validate(self):
        """Raises `OptionError` naming the first missing or bad option."""
        if self.layout not in LAYOUTS:
            raise OptionError(
                "layout",
                "{field} must be one of {layouts}. Received: {field}={value}",
                layouts=", ".join(LAYOUTS),
                value=self.layout,
            )
        jobs.require(self, "output_dir")
        # A file or an unwritable folder on the way, before the build
        # (before: a NotADirectoryError traceback, or "[Errno 2] No such
        # file or directory" without the flag).
        check_creatable_path("output_dir", self.output_dir)
        self._validate_inputs()
        check_at_least(
            self,
            {
                "label_offset": 0,
                "num_workers": 1,
                "train_shards": 1,
                "validation_shards": 1,
            },
        )
        if not 1 <= self.jpeg_quality <= 100:
            raise OptionError(
                "jpeg_quality",
                "{field} must be in 1..100. Received: {field}={value}",
                value=self.jpeg_quality,
            )

    def _validate_inputs(self):
        """A split to build, and what goes with each split."""
        if not self.train_dir and not self.validation_dir:
            raise OptionError(
                "train_dir",
                "Nothing to build: set {field} and/or {validation_dir}.",
                others=("validation_dir",),
            )
        if self.validation_labels and not self.validation_dir:
            raise OptionError(
                "validation_labels",
                "{field}={value} needs {validation_dir} (the flat folder of "
                "validation images).",
                others=("validation_dir",),
                value=self.validation_labels,
            )
        out = os.path.realpath(self.output_dir)
        for flag in ("train_dir", "validation_dir"):
            root = getattr(self, flag)
            if root and os.path.commonpath(
                [out, os.path.realpath(root)]
            ) == os.path.realpath(root):
                raise OptionError(
                    "output_dir",
                    "{field}={out} is inside "
                    + jobs.named(flag)
                    + "={root}: its records would be read as images of a "
                    "class (or block the rerun); choose a folder outside it.",
                    others=(flag,),
                    out=self.output_dir,
                    root=root,
                )
        for split in ("train", "validation"):
            # Shards too (before: --validation_shards=4 without a
            # validation folder was taken and did nothing).
            for option in (f"{split}_logits", f"{split}_shards"):
                if getattr(self, option) not in (None, "") and not getattr(
                    self, f"{split}_dir"
                ):
                    raise OptionError(
                        option,
                        "{field} needs " + jobs.named(f"{split}_dir") + ".",
                        others=(f"{split}_dir",),
                    )

    def resolved(self):
        """The validated config with the layout's default label offset."""
        self.validate()
        offset = self.label_offset
        if offset is None:
            offset = DEFAULT_LABEL_OFFSET[self.layout]
        return dataclasses.replace(self, label_offset=int(offset))
