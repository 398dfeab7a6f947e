"""Writing one shard (in a worker process) and its state file, read back
to resume."""

import collections
import dataclasses
import glob
import json
import os

import numpy as np

from assemble_tf.data import schema
from assemble_tf.data.builder.config import STATE_DIR
from assemble_tf.data.builder.images import (
    SKIP_UNREADABLE,
    SkipImage,
    encode_image,
)
from official.utils.misc import file_utils


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
        return schema.shard_name(self.split, self.index, self.num_shards)


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


def load_state(output_dir, name, sha256):
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


def shard_files(output_dir, split):
    pattern = f"{split}-{'[0-9]' * 5}-of-{'[0-9]' * 5}"
    return sorted(glob.glob(os.path.join(output_dir, pattern)))


def remove_split(output_dir, split):
    paths = shard_files(output_dir, split)
    paths += glob.glob(os.path.join(output_dir, f".{split}-*.tmp"))
    paths += glob.glob(os.path.join(output_dir, STATE_DIR, f"{split}-*.json"))
    for path in paths:
        os.remove(path)
    return len(paths)
