"""Planning a build: the classes, the images of each split with their
labels, boxes and logits, and their deterministic assignment to shards
(each with a SHA-256 digest of what goes in)."""

import dataclasses
import hashlib
import os
import random

import numpy as np

from assemble_tf.data.builder.config import (
    DEFAULT_SHARDS,
    IMAGE_EXTENSIONS,
    SPLITS,
    WNID_PATTERN,
    Entry,
)
from assemble_tf.data.builder.inputs import (
    list_class_folders,
    list_images,
    listing,
    match_names,
    read_bboxes,
    read_logits,
    read_synsets,
    read_validation_labels,
    require_dir,
    resolve_logit_files,
)
from official.utils.misc import file_utils, validation
from official.utils.misc.validation import OptionError


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
    """Checks the options and fills the layout defaults
    (`BuildConfig.resolved`)."""
    return config.resolved()


def _discover_split(config, split, classes):
    """Returns `(root, [(relpath, class)], ignored)` of one split."""
    if split == "train":
        root, flag = config.train_dir, "train_dir"
    else:
        root, flag = config.validation_dir, "validation_dir"
    require_dir(root, flag)
    if split == "validation" and config.validation_labels:
        names, ignored = list_images(root)
        if not names:
            folders = any(
                os.path.isdir(os.path.join(root, c)) for c in os.listdir(root)
            )
            raise OptionError(
                "validation_dir",
                "{field}={root} holds no images"
                + (
                    " directly, only folders: {validation_labels} labels a "
                    "flat folder of images; leave it out for class folders."
                    if folders
                    else "."
                ),
                others=("validation_labels",),
                root=root,
            )
        labels = read_validation_labels(config.validation_labels, names)
        return root, list(zip(names, labels, strict=True)), ignored
    has_folders = any(
        os.path.isdir(os.path.join(root, c)) for c in os.listdir(root)
    )
    if not has_folders and list_images(root)[0]:
        raise OptionError(
            flag,
            "{field}={root} holds images but no class folders; pass "
            "{validation_labels}=FILE to label a flat folder.",
            others=("validation_labels",),
            root=root,
        )
    if classes is None:
        list_class_folders(root, flag, config.layout)  # checks the names
    files, ignored = [], []
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        if name.startswith("."):
            continue
        if not os.path.isdir(folder):
            ignored.append(file_utils.shown_name(name))
            continue
        images, others = list_images(folder)
        files.extend((f"{name}/{image}", name) for image in images)
        ignored.extend(f"{name}/{other}" for other in others)
    if not files:
        raise OptionError(
            flag,
            "{field}={root} holds no {extensions} images in its class folders.",
            root=root,
            extensions="/".join(IMAGE_EXTENSIONS),
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
            bad = [c for c in classes if not WNID_PATTERN.match(c)]
            if bad:
                field = (
                    "validation_labels"
                    if config.validation_labels
                    else "validation_dir"
                )
                raise OptionError(
                    field,
                    "{field}={source}: classes must be WordNet ids "
                    "(nXXXXXXXX) in the imagenet layout, got {bad}. Map the "
                    "ILSVRC2012 ground-truth ids to wnids with the devkit "
                    "(meta.mat), or use {layout}=folder.",
                    others=("layout",),
                    source=getattr(config, field),
                    bad=listing(bad),
                )
    _check_known_classes(config, found, set(classes))
    if config.synsets_file:
        mapping = read_synsets(config.synsets_file)
        missing = [c for c in classes if c not in mapping]
        if missing:
            raise OptionError(
                "synsets_file",
                "{field}={path} has no line for {count} classes: {names}.",
                path=config.synsets_file,
                count=len(missing),
                names=listing(missing),
            )
        texts = {c: mapping[c] for c in classes}
    else:
        texts = {c: c for c in classes}
    return classes, texts, found


def _check_known_classes(config, found, known):
    """Refuses a split whose classes are not among `known` (the train
    split's class folders), naming the validation labels file where it
    gave them.

    Raises:
        OptionError: naming `validation_labels` or `train_dir`.
    """
    for split, (_, files, _) in found.items():
        unknown = sorted({c for _, c in files} - known)
        if unknown and split == "validation" and config.validation_labels:
            # Before: "not class folders of --train_dir", naming neither
            # the labels file nor its fix.
            numbers = all(c.isdigit() for c in unknown)
            raise OptionError(
                "validation_labels",
                "{field}={path} names classes that are not class folders "
                "of {train_dir}={root}: {names}. Each line must name the "
                "image's class folder (a WordNet id, or the folder's name)"
                + (
                    ", not the devkit's integer ids: map them to wnids with "
                    "its meta.mat."
                    if numbers
                    else "."
                ),
                others=("train_dir",),
                path=config.validation_labels,
                root=config.train_dir,
                names=listing(unknown),
            )
        if unknown:
            twins = validation.unicode_twins(unknown, known)
            raise OptionError(
                "train_dir",
                "The {split} split has classes that are not class folders "
                "of {field}={root}: {names}.{twins}",
                split=split,
                root=config.train_dir,
                names=listing(unknown),
                # Before: "café" named as missing beside a train "café".
                twins=f" Some differ from one only in their Unicode "
                f"normalization: {twins}; rename them alike."
                if twins
                else "",
            )


def assign_shards(num_items, num_shards, seed):
    """Shuffles `range(num_items)` with `seed` and cuts it into
    `num_shards` contiguous ranges (sizes differ by at most one)."""
    order = list(range(num_items))
    random.Random(seed).shuffle(order)
    bounds = [num_items * i // num_shards for i in range(num_shards + 1)]
    return [order[bounds[i] : bounds[i + 1]] for i in range(num_shards)]


def shard_digest(root, entries, bboxes, logits):
    """SHA-256 over what a shard's records are made of, in order: names,
    labels, the files' sizes and modification times (a file replaced, e.g.
    a fixed one that was skipped, rebuilds its shard), boxes and logits."""
    digest = hashlib.sha256()
    for i, entry in enumerate(entries):
        stat = os.stat(os.path.join(root, entry.relpath))
        digest.update(
            "\t".join(
                [
                    entry.relpath,
                    str(entry.label),
                    entry.synset,
                    entry.text,
                    str(stat.st_size),
                    str(stat.st_mtime_ns),
                ]
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
            b or []
            for b in match_names(entries, bbox_table, "boxes", "bbox_csv")
        ]
        logits = _split_logits(config, split, entries, logit_cache)
        flag = f"{split}_shards"
        num_shards = getattr(config, flag)
        if num_shards is None:
            num_shards = min(DEFAULT_SHARDS[config.layout][split], len(entries))
        elif num_shards > len(entries):
            raise OptionError(
                flag,
                "{field}={value} is more than the {count} {split} images; "
                "use at most {count}.",
                value=num_shards,
                count=len(entries),
                split=split,
            )
        shards = assign_shards(len(entries), num_shards, config.seed)
        digests = [
            shard_digest(
                root,
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
    if bbox_table and not any(b for p in plans.values() for b in p.bboxes):
        raise OptionError(
            "bbox_csv",
            "{field}={path}: none of its {count} file names (e.g. {example}) "
            "is an image of the build; key the boxes by the file's name "
            "(n01440764_10026.JPEG) or its path under the split folder "
            "(n01440764/n01440764_10026.JPEG).",
            path=config.bbox_csv,
            count=len(bbox_table),
            example=next(iter(bbox_table)),
        )
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
    found = match_names(entries, rows, "logits", flag)
    missing = [
        e.relpath for e, r in zip(entries, found, strict=True) if r is None
    ]
    if missing:
        raise OptionError(
            flag,
            "{field}={spec}: {count} of the {total} {split} images have no "
            "logits: {names}. Extract logits for them or remove the files.",
            spec=spec,
            count=len(missing),
            total=len(entries),
            split=split,
            names=listing(missing),
        )
    return matrix[np.asarray(found, dtype=np.int64)]
