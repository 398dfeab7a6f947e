"""Planning a build: the classes, the images of each split with their
labels, boxes and logits, and their deterministic assignment to shards
(each with a SHA-256 digest of what goes in)."""

import dataclasses
import hashlib
import os
import random

import numpy as np

from assemble_tf.data.builder.config import (
    DEFAULT_LABEL_OFFSET,
    DEFAULT_SHARDS,
    IMAGE_EXTENSIONS,
    LAYOUTS,
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
    require_dir(root, flag)
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
            bad = [c for c in classes if not WNID_PATTERN.match(c)]
            if bad:
                source = config.validation_labels or config.validation_dir
                raise ValueError(
                    f"{source}: classes must be WordNet ids (nXXXXXXXX) in "
                    f"the imagenet layout, got {listing(bad)}. Map the "
                    f"ILSVRC2012 ground-truth ids to wnids with the devkit "
                    f"(meta.mat), or use --layout=folder."
                )
    known = set(classes)
    for split, (_, files, _) in found.items():
        unknown = sorted({c for _, c in files} - known)
        if unknown:
            raise ValueError(
                f"The {split} split has classes that are not class folders "
                f"of --train_dir={config.train_dir}: {listing(unknown)}."
            )
    if config.synsets_file:
        mapping = read_synsets(config.synsets_file)
        missing = [c for c in classes if c not in mapping]
        if missing:
            raise ValueError(
                f"--synsets_file={config.synsets_file} has no line for "
                f"{len(missing)} classes: {listing(missing)}."
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
            b or []
            for b in match_names(entries, bbox_table, "boxes", "bbox_csv")
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
    found = match_names(entries, rows, "logits", flag)
    missing = [
        e.relpath for e, r in zip(entries, found, strict=True) if r is None
    ]
    if missing:
        raise ValueError(
            f"--{flag}={spec}: {len(missing)} of the {len(entries)} {split} "
            f"images have no logits: {listing(missing)}. Extract logits "
            f"for them or remove the files."
        )
    return matrix[np.asarray(found, dtype=np.int64)]
