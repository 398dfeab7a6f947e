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
* `folder`: `root/<class>/*.jpg|jpeg|png` for any dataset, 0-based labels.

The label space is the sorted class folders of `train_dir` (of the
validation classes when only validation is built). Every image is checked
by decoding it with Pillow; RGB JPEGs are copied byte for byte, anything
else (CMYK or grayscale JPEG, PNG, also when named `.JPEG`) is re-encoded as
an RGB JPEG (transparency composed onto white, 16-bit samples scaled to
8 bits; no EXIF rotation, as in the original). Empty, truncated and
unreadable files are skipped and listed in `summary.json`, never fatal.

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
or inputs is refused unless `overwrite`. A split missing from the folder
(e.g. validation after train) may be added by a later run with the same
layout, label offset, quality, seed and classes.
"""

import collections
import dataclasses
import functools
import glob
import hashlib
import io
import json
import os
import random
import re
import time
from typing import NamedTuple

import numpy as np

from official.utils.misc import file_utils, worker_pool

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
SUMMARY = "summary.json"
LABELS = "labels.txt"
STATE_DIR = ".build_state"
FORMAT_VERSION = 1

SKIP_EMPTY = "empty file"
SKIP_TRUNCATED = "truncated"
SKIP_UNREADABLE = "unreadable"

_WNID = re.compile(r"^n\d{8}$")
_MAX_LISTED = 20


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


@dataclasses.dataclass
class ShardTask:
    """The work of one shard, self-contained so a worker process can run it."""

    split: str
    index: int
    num_shards: int
    root: str
    output_dir: str
    entries: list
    bboxes: list  # one list of (xmin, ymin, xmax, ymax) per entry
    logits: np.ndarray | None  # [len(entries), K] float32
    jpeg_quality: int
    sha256: str

    @property
    def name(self):
        from assemble_tf.data import schema

        return schema.shard_name(self.split, self.index, self.num_shards)


class SkipImage(Exception):
    """An input file that cannot become a record; `reason` is one of the
    `SKIP_*` strings and `detail` says why."""

    def __init__(self, reason, detail):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# --------------------------------------------------------------------------
# Images.


def encode_image(data, jpeg_quality=DEFAULT_JPEG_QUALITY):
    """Checks one image file and returns it as an RGB JPEG.

    Args:
        data: bytes, the whole file.
        jpeg_quality: int, the quality used when re-encoding.

    Returns:
        `(jpeg_bytes, height, width, conversion)`: `conversion` is None when
        the file was already an RGB JPEG (returned byte for byte), else a
        "FORMAT MODE" string such as "JPEG CMYK" or "PNG RGBA".

    Raises:
        SkipImage: the file is empty, truncated or not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise SkipImage(SKIP_EMPTY, "0 bytes")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()  # decodes every pixel: catches truncated files
    except UnidentifiedImageError:
        raise SkipImage(
            SKIP_UNREADABLE, "not an image format Pillow recognizes"
        ) from None
    except Exception as e:  # noqa: BLE001 - any decoder failure skips
        message = f"{type(e).__name__}: {e}"
        reason = SKIP_TRUNCATED if "truncat" in str(e).lower() else None
        raise SkipImage(reason or SKIP_UNREADABLE, message) from None
    width, height = image.size
    if image.format in ("JPEG", "MPO") and image.mode == "RGB":
        return data, height, width, None
    conversion = f"{image.format} {image.mode}"
    buffer = io.BytesIO()
    _to_rgb(image).save(buffer, format="JPEG", quality=int(jpeg_quality))
    return buffer.getvalue(), height, width, conversion


def _to_rgb(image):
    """RGB copy of a Pillow image; transparency is composed onto white."""
    from PIL import Image

    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        if pixels.max(initial=0) > 255:  # 16-bit samples
            pixels = pixels / 257.0
        pixels = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
        return Image.fromarray(pixels, mode="L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # CMYK (Adobe inversion handled), L, P, ...


# --------------------------------------------------------------------------
# Reading the inputs.


def _is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _require_dir(path, flag):
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"--{flag}={path} is not a directory; point --{flag} at the "
            f"folder holding the images."
        )


def _require_file(path, flag):
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"--{flag}={path} does not exist or is not a file."
        )


def list_images(folder):
    """Returns `(images, ignored)`: sorted image file names directly in
    `folder` and the other (non-hidden) files."""
    images, ignored = [], []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not os.path.isfile(path) or name.startswith("."):
            continue
        (images if _is_image(name) else ignored).append(name)
    return images, ignored


def list_class_folders(root, flag, layout):
    """Sorted class sub-folders of `root`; in the imagenet layout each must
    be a WordNet id."""
    _require_dir(root, flag)
    classes = sorted(
        name
        for name in os.listdir(root)
        if os.path.isdir(os.path.join(root, name)) and not name.startswith(".")
    )
    if not classes:
        raise ValueError(
            f"--{flag}={root} has no class folders. Expected "
            f"{flag.split('_')[0]}/<class>/<image> (e.g. "
            f"train/n01440764/n01440764_10026.JPEG)."
        )
    if layout == "imagenet":
        bad = [name for name in classes if not _WNID.match(name)]
        if bad:
            raise ValueError(
                f"--{flag}={root} holds folders that are not WordNet ids "
                f"(nXXXXXXXX): {_listing(bad)}. Point --{flag} at the folder "
                f"of the n01440764/... class folders, or use --layout=folder "
                f"for other datasets."
            )
    return classes


def read_synsets(path):
    """Reads `wnid text` lines into `{wnid: text}` (the first one wins)."""
    _require_file(path, "synsets_file")
    texts = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.strip().split(None, 1)
            if parts and not parts[0].startswith("#"):
                texts.setdefault(parts[0], parts[1] if len(parts) > 1 else "")
    if not texts:
        raise ValueError(
            f"--synsets_file={path} is empty; it needs lines like "
            f"'n01440764 tench, Tinca tinca'."
        )
    return texts


def read_validation_labels(path, image_names):
    """Returns the class of each image of a flat validation folder.

    Args:
        path: the labels file. Either one class per line, in the order of
            the sorted image file names (ILSVRC2012_validation_ground_truth
            mapped to wnids), or `filename wnid` lines (space, tab or comma
            separated; the file name with or without its extension).
        image_names: sorted image file names of the folder.

    Returns:
        A list of class names, one per `image_names` entry.
    """
    _require_file(path, "validation_labels")
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if line and not line.startswith("#"):
                rows.append((lineno, re.split(r"[,\s]+", line)))
    widths = sorted({len(fields) for _, fields in rows})
    if not rows:
        raise ValueError(f"--validation_labels={path} is empty.")
    if widths == [1]:
        if len(rows) != len(image_names):
            raise ValueError(
                f"--validation_labels={path} has {len(rows)} lines (one "
                f"class per line) but --validation_dir holds "
                f"{len(image_names)} images; the file must list one class "
                f"per image in sorted-filename order."
            )
        return [fields[0] for _, fields in rows]
    if widths != [2]:
        lineno, fields = next(r for r in rows if len(r[1]) not in (1, 2))
        raise ValueError(
            f"--validation_labels={path} line {lineno} has {len(fields)} "
            f"fields; use one class per line or 'filename class' lines."
        )
    table = {}
    for index, (lineno, (name, label)) in enumerate(rows):
        if index == 0 and name.lower() in ("filename", "file", "image"):
            continue  # a header
        if name in table and table[name] != label:
            raise ValueError(
                f"--validation_labels={path} line {lineno}: {name} is "
                f"labelled twice ({table[name]} and {label})."
            )
        table[name] = label
    labels, missing = [], []
    for name in image_names:
        label = table.get(name, table.get(os.path.splitext(name)[0]))
        labels.append(label)
        if label is None:
            missing.append(name)
    if missing:
        raise ValueError(
            f"--validation_labels={path} has no line for {len(missing)} "
            f"images of --validation_dir: {_listing(missing)}."
        )
    return labels


def read_bboxes(path):
    """Reads `filename,xmin,ymin,xmax,ymax` lines into `{filename: boxes}`."""
    _require_file(path, "bbox_csv")
    boxes = collections.defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            fields = [v.strip() for v in line.split(",")]
            try:
                if len(fields) != 5:
                    raise ValueError
                box = tuple(float(v) for v in fields[1:])
            except ValueError:
                if lineno == 1:
                    continue  # a header
                raise ValueError(
                    f"--bbox_csv={path} line {lineno}: expected "
                    f"'filename,xmin,ymin,xmax,ymax' with numbers. "
                    f"Received: {line[:120]}"
                ) from None
            xmin, ymin, xmax, ymax = box
            tol = 1e-6
            if not (
                -tol <= xmin <= xmax <= 1 + tol
                and -tol <= ymin <= ymax <= 1 + tol
            ):
                raise ValueError(
                    f"--bbox_csv={path} line {lineno}: boxes must be "
                    f"normalized, 0 <= xmin <= xmax <= 1 and 0 <= ymin <= "
                    f"ymax <= 1. Received: {line[:120]}"
                )
            boxes[fields[0]].append(tuple(min(max(v, 0.0), 1.0) for v in box))
    return dict(boxes)


def resolve_logit_files(spec, split, flag):
    """The logits files of `split`: `spec` is comma-separated files or
    globs, or one directory (then `DIR/<split>*`)."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if len(parts) == 1 and os.path.isdir(parts[0]):
        parts = [os.path.join(parts[0], f"{split}*")]
    files = []
    for part in parts:
        matches = sorted(glob.glob(part))
        if not matches:
            raise FileNotFoundError(
                f"--{flag}={spec}: {part} matches no file (needed for the "
                f"{split} split)."
            )
        files.extend(m for m in matches if os.path.isfile(m))
    return sorted(set(files))


def read_logits(files, flag):
    """Reads teacher logits into `({name: row}, matrix[N, K] float32)`.

    A CSV has rows `filename,v1,...,vK` (an optional header line); an
    `.npz` holds arrays `filenames` ([N] str) and `logits` ([N, K]).
    """
    names, rows, origin = [], [], {}
    for path in files:
        if path.endswith(".npy"):
            raise ValueError(
                f"--{flag}: {path} is an .npy file; save names and values "
                f"together with np.savez(PATH.npz, filenames=names, "
                f"logits=values), or write a CSV."
            )
        if path.endswith(".npz"):
            file_names, values = _read_logits_npz(path, flag)
        else:
            file_names, values = _read_logits_csv(path, flag)
        for name in file_names:
            if name in origin:
                raise ValueError(
                    f"--{flag}: {name} has logits in both {origin[name]} "
                    f"and {path}; give each image one row."
                )
            origin[name] = path
        names.extend(file_names)
        rows.append(values)
    widths = {r.shape[1] for r in rows if r.size}
    if len(widths) > 1:
        raise ValueError(
            f"--{flag}: the files have different numbers of logits per row "
            f"({sorted(widths)}); every row needs the same length."
        )
    if not names:
        raise ValueError(f"--{flag}: {', '.join(files)} hold no logits.")
    matrix = np.concatenate([r for r in rows if r.size], axis=0)
    return {name: i for i, name in enumerate(names)}, matrix


def _read_logits_csv(path, flag):
    names, values, width = [], [], None
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            fields = line.split(",")
            try:
                row = np.asarray(fields[1:], dtype=np.float32)
            except ValueError:
                if lineno == 1:
                    continue  # a header
                raise ValueError(
                    f"--{flag}: {path} line {lineno} is not "
                    f"'filename,v1,...,vK' with numbers."
                ) from None
            width = width or len(row)
            if len(row) != width or not width:
                raise ValueError(
                    f"--{flag}: {path} line {lineno} has {len(row)} values, "
                    f"earlier lines {width}."
                )
            names.append(fields[0].strip())
            values.append(row)
    if not values:
        return [], np.zeros((0, 0), np.float32)
    return names, np.stack(values)


def _read_logits_npz(path, flag):
    with np.load(path, allow_pickle=False) as data:
        if "filenames" not in data or "logits" not in data:
            raise ValueError(
                f"--{flag}: {path} needs arrays 'filenames' and 'logits'; "
                f"it has {sorted(data.files)}."
            )
        names = [str(n) for n in data["filenames"].reshape(-1)]
        values = np.asarray(data["logits"], dtype=np.float32)
    if values.ndim != 2 or values.shape[0] != len(names):
        raise ValueError(
            f"--{flag}: {path} has {len(names)} filenames but logits of "
            f"shape {values.shape}; expected ({len(names)}, K)."
        )
    return names, values


def _match(entries, table, what, flag):
    """Returns one `table` value (or None) per entry, by relpath then base
    name; a base name shared by several files is an error."""
    counts = collections.Counter(os.path.basename(e.relpath) for e in entries)
    values, ambiguous = [], []
    for entry in entries:
        if entry.relpath in table:
            values.append(table[entry.relpath])
            continue
        base = os.path.basename(entry.relpath)
        if base in table and counts[base] > 1:
            ambiguous.append(entry.relpath)
        values.append(table.get(base))
    if ambiguous:
        raise ValueError(
            f"--{flag}: {what} are keyed by base name, but these files share "
            f"their base name with another file: {_listing(ambiguous)}. Key "
            f"them by the path under the split folder (class/name.jpg)."
        )
    return values


def _listing(names, limit=_MAX_LISTED):
    names = list(names)
    text = ", ".join(names[:limit])
    if len(names) > limit:
        text += f", ... and {len(names) - limit} more"
    return text


# --------------------------------------------------------------------------
# Planning.


@dataclasses.dataclass
class SplitPlan:
    """The files of one split, in build order, and their shards."""

    split: str
    root: str
    entries: list
    ignored: list
    num_shards: int
    shards: list  # one list of entry indices per shard
    bboxes: list
    logits: np.ndarray | None
    digests: list


def resolve_config(config):
    """Checks the flag values and fills the layout defaults."""
    if config.layout not in LAYOUTS:
        raise ValueError(
            f"--layout must be one of {', '.join(LAYOUTS)}. "
            f"Received: --layout={config.layout}"
        )
    if not config.output_dir:
        raise ValueError("--output_dir is required.")
    if not config.train_dir and not config.validation_dir:
        raise ValueError(
            "Nothing to build: set --train_dir and/or --validation_dir."
        )
    if config.validation_labels and not config.validation_dir:
        raise ValueError(
            f"--validation_labels={config.validation_labels} needs "
            f"--validation_dir (the flat folder of validation images)."
        )
    if config.train_logits and not config.train_dir:
        raise ValueError("--train_logits needs --train_dir.")
    if config.validation_logits and not config.validation_dir:
        raise ValueError("--validation_logits needs --validation_dir.")
    label_offset = config.label_offset
    if label_offset is None:
        label_offset = DEFAULT_LABEL_OFFSET[config.layout]
    if int(label_offset) < 0:
        raise ValueError(
            f"--label_offset must be >= 0. Received: "
            f"--label_offset={label_offset}"
        )
    if not 1 <= int(config.jpeg_quality) <= 100:
        raise ValueError(
            f"--jpeg_quality must be in 1..100. Received: "
            f"--jpeg_quality={config.jpeg_quality}"
        )
    if int(config.num_workers) < 1:
        raise ValueError(
            f"--num_workers must be >= 1. Received: "
            f"--num_workers={config.num_workers}"
        )
    for split in SPLITS:
        value = getattr(config, f"{split}_shards")
        if value is not None and int(value) < 1:
            raise ValueError(
                f"--{split}_shards must be >= 1. Received: "
                f"--{split}_shards={value}"
            )
    return dataclasses.replace(config, label_offset=int(label_offset))


def _discover_split(config, split, classes):
    """Returns `(root, [(relpath, class)], ignored)` of one split."""
    if split == "train":
        root, flag = config.train_dir, "train_dir"
    else:
        root, flag = config.validation_dir, "validation_dir"
    _require_dir(root, flag)
    if split == "validation" and config.validation_labels:
        names, ignored = list_images(root)
        if not names:
            raise ValueError(f"--validation_dir={root} holds no images.")
        labels = read_validation_labels(config.validation_labels, names)
        return root, list(zip(names, labels, strict=True)), ignored
    has_folders = any(
        os.path.isdir(os.path.join(root, c)) for c in os.listdir(root)
    )
    if not has_folders and list_images(root)[0]:
        raise ValueError(
            f"--{flag}={root} holds images but no class folders; pass "
            f"--validation_labels=FILE to label a flat folder."
        )
    if classes is None:
        list_class_folders(root, flag, config.layout)  # checks the names
    files, ignored = [], []
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        if name.startswith("."):
            continue
        if not os.path.isdir(folder):
            ignored.append(name)
            continue
        images, others = list_images(folder)
        files.extend((f"{name}/{image}", name) for image in images)
        ignored.extend(f"{name}/{other}" for other in others)
    if not files:
        raise ValueError(
            f"--{flag}={root} holds no {'/'.join(IMAGE_EXTENSIONS)} images "
            f"in its class folders."
        )
    return root, files, ignored


def discover(config):
    """Finds the classes and files of every split of `config`.

    Returns:
        `(classes, texts, {split: (root, [(relpath, class)], ignored)})`.
    """
    train_classes = None
    if config.train_dir:
        train_classes = list_class_folders(
            config.train_dir, "train_dir", config.layout
        )
    found = {}
    for split in SPLITS:
        if getattr(config, f"{split}_dir"):
            found[split] = _discover_split(config, split, train_classes)
    classes = train_classes
    if classes is None:
        classes = sorted({c for _, c in found["validation"][1]})
        if config.layout == "imagenet":
            bad = [c for c in classes if not _WNID.match(c)]
            if bad:
                source = config.validation_labels or config.validation_dir
                raise ValueError(
                    f"{source}: classes must be WordNet ids (nXXXXXXXX) in "
                    f"the imagenet layout, got {_listing(bad)}. Map the "
                    f"ILSVRC2012 ground-truth ids to wnids with the devkit "
                    f"(meta.mat), or use --layout=folder."
                )
    known = set(classes)
    for split, (_, files, _) in found.items():
        unknown = sorted({c for _, c in files} - known)
        if unknown:
            raise ValueError(
                f"The {split} split has classes that are not class folders "
                f"of --train_dir={config.train_dir}: {_listing(unknown)}."
            )
    if config.synsets_file:
        mapping = read_synsets(config.synsets_file)
        missing = [c for c in classes if c not in mapping]
        if missing:
            raise ValueError(
                f"--synsets_file={config.synsets_file} has no line for "
                f"{len(missing)} classes: {_listing(missing)}."
            )
        texts = {c: mapping[c] for c in classes}
    else:
        texts = {c: c for c in classes}
    return classes, texts, found


def assign_shards(num_items, num_shards, seed):
    """Shuffles `range(num_items)` with `seed` and cuts it into
    `num_shards` contiguous ranges (sizes differ by at most one)."""
    order = list(range(num_items))
    random.Random(seed).shuffle(order)
    bounds = [num_items * i // num_shards for i in range(num_shards + 1)]
    return [order[bounds[i] : bounds[i + 1]] for i in range(num_shards)]


def shard_digest(entries, bboxes, logits):
    """SHA-256 over what a shard's records are made of, in order."""
    digest = hashlib.sha256()
    for i, entry in enumerate(entries):
        digest.update(
            "\t".join(
                [entry.relpath, str(entry.label), entry.synset, entry.text]
            ).encode()
        )
        digest.update(repr(bboxes[i]).encode() + b"\n")
    if logits is not None:
        digest.update(np.ascontiguousarray(logits, np.float32).tobytes())
    return digest.hexdigest()


def plan(config):
    """Discovers the inputs and returns `(classes, texts, {split: plan})`.

    `config` must have been through `resolve_config`.
    """
    classes, texts, found = discover(config)
    index = {c: i for i, c in enumerate(classes)}
    bbox_table = read_bboxes(config.bbox_csv) if config.bbox_csv else {}
    logit_cache = {}
    plans = {}
    for split, (root, files, ignored) in found.items():
        entries = [
            Entry(path, index[c] + config.label_offset, c, texts[c])
            for path, c in sorted(files, key=lambda f: (index[f[1]], f[0]))
        ]
        bboxes = [
            b or [] for b in _match(entries, bbox_table, "boxes", "bbox_csv")
        ]
        logits = _split_logits(config, split, entries, logit_cache)
        flag = f"{split}_shards"
        num_shards = getattr(config, flag)
        if num_shards is None:
            num_shards = min(DEFAULT_SHARDS[config.layout][split], len(entries))
        elif num_shards > len(entries):
            raise ValueError(
                f"--{flag}={num_shards} is more than the {len(entries)} "
                f"{split} images; use at most {len(entries)}."
            )
        shards = assign_shards(len(entries), num_shards, config.seed)
        digests = [
            shard_digest(
                [entries[i] for i in shard],
                [bboxes[i] for i in shard],
                None if logits is None else logits[shard],
            )
            for shard in shards
        ]
        plans[split] = SplitPlan(
            split, root, entries, ignored, num_shards, shards, bboxes,
            logits, digests,
        )  # fmt: skip
    return classes, texts, plans


def _split_logits(config, split, entries, cache):
    """The [N, K] logits of `entries`, or None when the split has none."""
    own = getattr(config, f"{split}_logits")
    spec, flag = (own, f"{split}_logits") if own else (config.logits, "logits")
    if not spec:
        return None
    files = tuple(resolve_logit_files(spec, split, flag))
    if files not in cache:
        cache[files] = read_logits(files, flag)
    rows, matrix = cache[files]
    found = _match(entries, rows, "logits", flag)
    missing = [
        e.relpath for e, r in zip(entries, found, strict=True) if r is None
    ]
    if missing:
        raise ValueError(
            f"--{flag}={spec}: {len(missing)} of the {len(entries)} {split} "
            f"images have no logits: {_listing(missing)}. Extract logits "
            f"for them or remove the files."
        )
    return matrix[np.asarray(found, dtype=np.int64)]


# --------------------------------------------------------------------------
# Writing one shard (runs in worker processes).


def temp_shard_path(output_dir, name):
    """Where a shard is written before it is complete (hidden, so readers
    globbing `train-*` never see it)."""
    return os.path.join(output_dir, f".{name}.tmp")


def state_path(output_dir, name):
    return os.path.join(output_dir, STATE_DIR, f"{name}.json")


def write_shard(task, progress=None):
    """Writes one shard and its state file; returns the state dict.

    The records go to a hidden temp file that is renamed to the shard name
    only once it is complete and its state file is written.

    Args:
        task: a `ShardTask`.
        progress: optional callable, called with 1 after every file.

    Returns:
        `{"shard", "sha256", "bytes", "images", "per_class", "reencoded",
        "skipped"}`; `skipped` lists `{"file", "reason", "detail"}`.
    """
    import tensorflow as tf

    from assemble_tf.data import schema

    name = task.name
    tmp = temp_shard_path(task.output_dir, name)
    per_class = collections.Counter()
    reencoded = collections.Counter()
    skipped = []
    with tf.io.TFRecordWriter(tmp) as writer:
        for i, entry in enumerate(task.entries):
            path = os.path.join(task.root, *entry.relpath.split("/"))
            try:
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError as e:
                    raise SkipImage(SKIP_UNREADABLE, str(e)) from None
                jpeg, height, width, conversion = encode_image(
                    data, task.jpeg_quality
                )
            except SkipImage as e:
                skipped.append(
                    {"file": entry.relpath, "reason": e.reason,
                     "detail": e.detail}
                )  # fmt: skip
            else:
                example = schema.make_example(
                    jpeg,
                    entry.label,
                    height,
                    width,
                    filename=os.path.basename(entry.relpath),
                    synset=entry.synset,
                    text=entry.text,
                    bboxes=task.bboxes[i],
                    logits=None if task.logits is None else task.logits[i],
                )
                writer.write(example.SerializeToString(deterministic=True))
                per_class[entry.synset] += 1
                if conversion:
                    reencoded[conversion] += 1
            if progress is not None:
                progress(1)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    state = {
        "shard": name,
        "sha256": task.sha256,
        "bytes": os.path.getsize(tmp),
        "images": sum(per_class.values()),
        "per_class": dict(sorted(per_class.items())),
        "reencoded": dict(sorted(reencoded.items())),
        "skipped": skipped,
    }
    file_utils.atomic_write(
        state_path(task.output_dir, name), json.dumps(state, indent=1)
    )
    os.replace(tmp, os.path.join(task.output_dir, name))
    return state


def _load_state(output_dir, name, sha256):
    """The state of a finished shard, or None when it must be (re)built."""
    final = os.path.join(output_dir, name)
    try:
        with open(state_path(output_dir, name), encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    if (
        not os.path.isfile(final)
        or state.get("sha256") != sha256
        or state.get("bytes") != os.path.getsize(final)
    ):
        return None
    return state


# --------------------------------------------------------------------------
# The output folder: manifest, refusal, resume.


def _shard_files(output_dir, split):
    pattern = f"{split}-{'[0-9]' * 5}-of-{'[0-9]' * 5}"
    return sorted(glob.glob(os.path.join(output_dir, pattern)))


def _remove_split(output_dir, split):
    paths = _shard_files(output_dir, split)
    paths += glob.glob(os.path.join(output_dir, f".{split}-*.tmp"))
    paths += glob.glob(os.path.join(output_dir, STATE_DIR, f"{split}-*.json"))
    for path in paths:
        os.remove(path)
    return len(paths)


def _manifest(config, classes, plans):
    return {
        "format_version": FORMAT_VERSION,
        "options": {
            "layout": config.layout,
            "label_offset": config.label_offset,
            "jpeg_quality": int(config.jpeg_quality),
            "seed": int(config.seed),
            "num_classes": len(classes),
            "classes_sha256": hashlib.sha256(
                "\n".join(classes).encode()
            ).hexdigest(),
        },
        "splits": {
            split: {
                "num_shards": p.num_shards,
                "num_files": len(p.entries),
                "num_logits": None if p.logits is None else p.logits.shape[1],
                "shard_sha256": p.digests,
            }
            for split, p in plans.items()
        },
    }


def _differences(old, new):
    """Readable reasons why `new` is not the build recorded in `old`."""
    reasons = []
    old_options, options = old.get("options", {}), new["options"]
    flags = {"layout", "label_offset", "jpeg_quality", "seed"}
    for key, value in options.items():
        before = old_options.get(key)
        if before == value:
            continue
        if key in flags:
            reasons.append(f"--{key}: existing build {before}, now {value}")
        elif key == "num_classes":
            reasons.append(
                f"number of classes: existing build {before}, now {value}"
            )
        elif old_options.get("num_classes") == options["num_classes"]:
            reasons.append("the class names (sorted class folders) differ")
    for split, section in new["splits"].items():
        before = old.get("splits", {}).get(split)
        if before is None:
            continue
        if before.get("num_shards") != section["num_shards"]:
            reasons.append(
                f"--{split}_shards: existing build {before.get('num_shards')}"
                f", now {section['num_shards']}"
            )
            continue
        if before.get("num_logits") != section["num_logits"]:
            reasons.append(
                f"{split} logits per image: existing build "
                f"{before.get('num_logits')}, now {section['num_logits']}"
            )
        changed = sum(
            a != b
            for a, b in zip(
                before.get("shard_sha256", []),
                section["shard_sha256"],
                strict=False,
            )
        )
        if changed:
            reasons.append(
                f"the {split} inputs (files, labels, texts, boxes or logits) "
                f"differ in {changed} of {section['num_shards']} shards "
                f"({before.get('num_files')} files before, "
                f"{section['num_files']} now)"
            )
    return reasons


def prepare_output(config, manifest):
    """Creates or checks `config.output_dir`; returns the manifest to keep.

    Raises:
        FileExistsError: the folder holds another build (or shards without
            a manifest) and `config.overwrite` is False.
    """
    out = config.output_dir
    if os.path.exists(out) and not os.path.isdir(out):
        raise FileExistsError(f"--output_dir={out} is a file, not a folder.")
    os.makedirs(os.path.join(out, STATE_DIR), exist_ok=True)
    path = os.path.join(out, MANIFEST)
    old = None
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                old = json.load(f)
        except ValueError:
            if not config.overwrite:
                raise FileExistsError(
                    f"--output_dir={out}: {MANIFEST} is not valid JSON; "
                    f"pass --overwrite to rebuild from scratch."
                ) from None
            old = {"options": {}, "splits": {}}
    if old is None:
        stray = [f for s in SPLITS for f in _shard_files(out, s)]
        if stray and not config.overwrite:
            raise FileExistsError(
                f"--output_dir={out} already holds {len(stray)} shards "
                f"({os.path.basename(stray[0])}, ...) from another build "
                f"(no {MANIFEST}); pass --overwrite to replace them or "
                f"choose another --output_dir."
            )
        for split in SPLITS:
            _remove_split(out, split)
        kept = manifest
    else:
        reasons = _differences(old, manifest)
        if reasons and not config.overwrite:
            raise FileExistsError(
                f"--output_dir={out} holds a different build: "
                + "; ".join(reasons)
                + ". Rerun with the same flags to resume it, pass "
                "--overwrite to replace it, or choose another --output_dir."
            )
        if config.overwrite:
            if old.get("options") != manifest["options"]:
                replaced = set(old.get("splits", {})) | set(SPLITS)
                kept = manifest
            else:
                replaced = set(manifest["splits"])
                kept = {**old, "splits": {**old["splits"]}}
                kept["splits"].update(manifest["splits"])
            for split in sorted(replaced):
                _remove_split(out, split)
        else:
            kept = {**old, "splits": {**old.get("splits", {})}}
            kept["splits"].update(manifest["splits"])
    kept["format_version"] = FORMAT_VERSION
    file_utils.atomic_write(path, json.dumps(kept, indent=1, sort_keys=True))
    return kept


# --------------------------------------------------------------------------
# The build.


def build(config):
    """Builds (or resumes) the TFRecords of `config`; returns the summary.

    Args:
        config: a `BuildConfig`.

    Returns:
        The summary dict also written to `output_dir/summary.json`.

    Raises:
        ValueError, FileNotFoundError: bad flags or inputs (the message
            names the flag and the fix).
        FileExistsError: `output_dir` holds another build.
    """
    start = time.time()
    config = resolve_config(config)
    classes, texts, plans = plan(config)
    manifest = prepare_output(config, _manifest(config, classes, plans))
    out = config.output_dir
    file_utils.atomic_write(
        os.path.join(out, LABELS),
        "".join(
            f"{i + config.label_offset}\t{c}\t{texts[c]}\n"
            for i, c in enumerate(classes)
        ),
    )
    from assemble_tf.data import schema

    todo, resumed = [], collections.Counter()
    for split, p in plans.items():
        for stale in glob.glob(os.path.join(out, f".{split}-*.tmp")):
            os.remove(stale)  # left by an interrupted run
        for index in range(p.num_shards):
            name = schema.shard_name(split, index, p.num_shards)
            if _load_state(out, name, p.digests[index]) is None:
                todo.append((p, index))
            else:
                resumed[split] += 1

    def make_task(p, index):  # built on demand: logits can be large
        shard = p.shards[index]
        return ShardTask(
            split=p.split,
            index=index,
            num_shards=p.num_shards,
            root=p.root,
            output_dir=out,
            entries=[p.entries[i] for i in shard],
            bboxes=[p.bboxes[i] for i in shard],
            logits=None if p.logits is None else p.logits[shard],
            jpeg_quality=int(config.jpeg_quality),
            sha256=p.digests[index],
        )

    _run_tasks(
        (make_task(p, index) for p, index in todo),
        num_tasks=len(todo),
        num_images=sum(len(p.shards[index]) for p, index in todo),
        num_workers=config.num_workers,
        progress=config.progress,
    )
    summary = summarize(config, classes, plans, manifest, resumed)
    _refuse_empty_splits(summary, plans)
    summary["elapsed_s"] = round(time.time() - start, 2)
    file_utils.atomic_write(
        os.path.join(out, SUMMARY), json.dumps(summary, indent=1)
    )
    return summary


def _refuse_empty_splits(summary, plans):
    """Raises (after removing its empty shards) when a split of this build
    wrote no image: training on it could only fail later, less clearly."""
    out = summary["output_dir"]
    for split in plans:
        entry = summary["splits"][split]
        if entry["images"]:
            continue
        _remove_split(out, split)
        skipped = [s for s in summary["skipped"] if s["split"] == split]
        examples = "; ".join(
            f"{s['file']}: {s['reason']} ({s['detail']})" for s in skipped[:3]
        )
        raise ValueError(
            f"--{split}_dir={plans[split].root}: none of its "
            f"{entry['files']} files is a readable image"
            + (f" (e.g. {examples})" if examples else "")
            + f". No {split} shards were kept in {out}; fix or remove the "
            "files and rerun."
        )


def _init_worker():
    """Worker set-up, before TensorFlow loads: no GPU, quiet logs."""
    from official.utils.logs import startup

    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    startup.quiet_tensorflow_startup()


def _run_tasks(tasks, num_tasks, num_images, num_workers, progress):
    """Runs shard tasks (an iterable) in-process or on worker processes
    (`official.utils.misc.worker_pool`)."""
    from tqdm import tqdm

    with tqdm(
        total=num_images, unit="img", desc="images", disable=not progress
    ) as bar:
        workers = min(num_workers, num_tasks)
        # In-process, the bar moves per image; with workers, per shard.
        fn = (
            write_shard
            if workers > 1
            else functools.partial(write_shard, progress=bar.update)
        )
        for task, _ in worker_pool.imap_bounded(
            fn, tasks, workers, initializer=_init_worker
        ):
            if workers > 1:
                bar.update(len(task.entries))


def summarize(config, classes, plans, manifest, resumed=None):
    """Collects the shard states of every split in the manifest."""
    from assemble_tf.data import schema

    resumed = resumed or {}
    out = config.output_dir
    splits, skipped = {}, []
    for split, section in sorted(manifest["splits"].items()):
        per_class = collections.Counter()
        reencoded = collections.Counter()
        done, images = 0, 0
        num_shards = section["num_shards"]
        for index, sha in enumerate(section["shard_sha256"]):
            name = schema.shard_name(split, index, num_shards)
            state = _load_state(out, name, sha)
            if state is None:
                continue
            done += 1
            images += state["images"]
            per_class.update(state["per_class"])
            reencoded.update(state["reencoded"])
            skipped.extend({"split": split, **s} for s in state["skipped"])
        entry = {
            "files": section["num_files"],
            "images": images,
            "skipped": sum(1 for s in skipped if s["split"] == split),
            "shards": num_shards,
            "shards_done": done,
            "shards_resumed": resumed.get(split, 0),
            "complete": done == num_shards,
            "num_logits": section.get("num_logits"),
            "reencoded": dict(sorted(reencoded.items())),
            "per_class": {c: per_class.get(c, 0) for c in classes}
            if split in plans
            else dict(sorted(per_class.items())),
        }
        if split in plans:
            entry["source"] = plans[split].root
            entry["ignored_files"] = plans[split].ignored
        splits[split] = entry
    skipped.sort(key=lambda s: (s["split"], s["file"]))
    return {
        "output_dir": out,
        "layout": config.layout,
        "label_offset": config.label_offset,
        "num_classes": len(classes),
        "jpeg_quality": int(config.jpeg_quality),
        "seed": int(config.seed),
        "splits": splits,
        "skipped": skipped,
    }


def format_summary(summary):
    """The summary as a few readable lines."""
    lines = [
        f"Wrote {summary['output_dir']} ({summary['layout']} layout, "
        f"{summary['num_classes']} classes, label offset "
        f"{summary['label_offset']})"
    ]
    for split, s in summary["splits"].items():
        counts = list(s["per_class"].values()) or [0]
        lines.append(
            f"  {split}: {s['images']} images in {s['shards_done']}/"
            f"{s['shards']} shards ({s['shards_resumed']} kept from an "
            f"earlier run), {s['skipped']} skipped, "
            f"{sum(s['reencoded'].values())} re-encoded as RGB JPEG, "
            f"{min(counts)}..{max(counts)} images per class"
            + ("" if s["complete"] else "  [INCOMPLETE]")
        )
        for kind, count in s["reencoded"].items():
            lines.append(f"    re-encoded {kind}: {count}")
    for s in summary["skipped"][:_MAX_LISTED]:
        lines.append(
            f"  skipped {s['split']}/{s['file']}: {s['reason']} ({s['detail']})"
        )
    if len(summary["skipped"]) > _MAX_LISTED:
        lines.append(
            f"  ... {len(summary['skipped']) - _MAX_LISTED} more skipped "
            f"files in {SUMMARY}"
        )
    return "\n".join(lines)
