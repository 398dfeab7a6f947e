"""Writing one shard (in a worker process) and its state file, read back
to resume."""

import collections
import contextlib
import dataclasses
import glob
import json
import os

import numpy as np

from assemble_tf.data import schema
from assemble_tf.data.builder.config import STATE_DIR
from assemble_tf.data.builder.images import (
    SKIP_NOT_READ,
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
    only once it is complete and its state file is written. A shard whose
    files are all unreadable leaves no file (its state says `"file":
    None`); `finalize_split` renumbers the others.

    Args:
        task: a `ShardTask`.
        progress: optional callable, called with 1 after every file.

    Returns:
        `{"shard", "file", "sha256", "bytes", "images", "per_class",
        "reencoded", "skipped"}`; `skipped` lists `{"file", "reason",
        "detail"}`; `file` is the shard's file name, None when empty.
    """
    import tensorflow as tf

    name = task.name
    tmp = temp_shard_path(task.output_dir, name)
    try:
        return _write_shard_via(tmp, task, progress, tf)
    except BaseException:
        # A full disk (or Ctrl-C) leaves no partial shard taking space
        # until a rerun (before: the temp file stayed on the full disk).
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _write_shard_via(tmp, task, progress, tf):
    """`write_shard` through the temp file `tmp`."""
    name = task.name
    with tf.io.TFRecordWriter(tmp) as writer:
        per_class, reencoded, skipped = _write_records(task, writer, progress)
    images = sum(per_class.values())
    if images:
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    state = {
        "shard": name,
        "file": name if images else None,
        "sha256": task.sha256,
        "bytes": os.path.getsize(tmp) if images else 0,
        "images": images,
        "per_class": dict(sorted(per_class.items())),
        "reencoded": dict(sorted(reencoded.items())),
        "skipped": skipped,
        # What a rerun compares to name the files that changed (the
        # digest alone says that a shard did, not which file).
        "inputs": [input_stamp(task.root, e) for e in task.entries],
    }
    _save_state(task.output_dir, name, state)
    if images:
        os.replace(tmp, os.path.join(task.output_dir, name))
    else:
        os.remove(tmp)
    return state


def _write_records(task, writer, progress):
    """Writes the readable files of `task`; returns `(per_class,
    reencoded, skipped)`."""
    per_class = collections.Counter()
    reencoded = collections.Counter()
    skipped = []
    for i, entry in enumerate(task.entries):
        try:
            jpeg, height, width, conversion = _read_image(task, entry)
        except SkipImage as e:
            skipped.append(
                {"file": entry.relpath, "reason": e.reason, "detail": e.detail}
            )
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
    return per_class, reencoded, skipped


def _read_image(task, entry):
    """`encode_image` of one file (an unreadable file is a `SkipImage`)."""
    try:
        with open(source_path(task.root, entry.relpath), "rb") as f:
            data = f.read()
    except OSError as e:
        raise SkipImage(SKIP_NOT_READ, str(e)) from None
    return encode_image(data, task.jpeg_quality)


def input_stamp(root, entry):
    """ "relpath<TAB>label<TAB>size<TAB>mtime_ns" of one input file (what
    the shard digest covers of it, but boxes and logits); size and time
    are -1 for a file that cannot be read."""
    try:
        stat = os.stat(source_path(root, entry.relpath))
        size, mtime = stat.st_size, stat.st_mtime_ns
    except OSError:
        size = mtime = -1
    return f"{entry.relpath}\t{entry.label}\t{size}\t{mtime}"


def source_path(root, relpath):
    """The input file of a split's `root` that `relpath` ("a/b.jpg") names."""
    return os.path.join(root, *relpath.split("/"))


def reads_now(root, state):
    """Whether a file that the shard of `state` skipped because it could
    not be read (`SKIP_NOT_READ`) reads now, e.g. after its permissions
    were fixed: the shard is then rebuilt with it."""
    for skipped in state["skipped"]:
        if skipped["reason"] != SKIP_NOT_READ:
            continue
        try:
            with open(source_path(root, skipped["file"]), "rb"):
                return True
        except OSError:
            continue
    return False


def _save_state(output_dir, name, state):
    file_utils.atomic_write(
        state_path(output_dir, name), json.dumps(state, indent=1)
    )


def load_state(output_dir, name, sha256):
    """The state of a finished shard, or None when it must be (re)built.

    `name` is the shard's planned name; its file is the state's `file`
    (renumbered by `finalize_split`; None: no readable image, no file).
    """
    try:
        with open(state_path(output_dir, name), encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    if state.get("sha256") != sha256:
        return None
    file_name = state.get("file", name)  # older states: the planned name
    if file_name is None:
        return state if state.get("images") == 0 else None
    path = os.path.join(output_dir, file_name)
    if not os.path.isfile(path) or state.get("bytes") != os.path.getsize(path):
        return None
    return state


def finalize_split(output_dir, split, digests):
    """Numbers the shards of a finished split without its empty ones.

    Shards are written under their planned names `split-IIIII-of-NNNNN`; a
    shard whose files were all unreadable has no file (or, from an older
    build, a 0-byte one, removed here). The others are renamed
    `split-00000-of-KKKKK` ... in order, K the shards with images, so no
    0-byte shard is left and the names stay consistent. Each state records
    its file first, so an interrupted rename redoes that shard.

    Args:
        output_dir: the build's folder.
        split: "train" or "validation".
        digests: the SHA-256 of each planned shard (the manifest's).

    Returns:
        The number of shard files, or None when the split is unfinished.
    """
    planned = [
        schema.shard_name(split, i, len(digests)) for i in range(len(digests))
    ]
    states = [
        load_state(output_dir, name, sha)
        for name, sha in zip(planned, digests, strict=True)
    ]
    if any(state is None for state in states):
        return None
    kept = [i for i, state in enumerate(states) if state["images"]]
    for rank, i in enumerate(kept):
        final = schema.shard_name(split, rank, len(kept))
        current = states[i].get("file", planned[i])
        if current != final:
            _save_state(output_dir, planned[i], {**states[i], "file": final})
            os.replace(
                os.path.join(output_dir, current),
                os.path.join(output_dir, final),
            )
    for i, state in enumerate(states):
        if not state["images"] and state.get("file", planned[i]):
            path = os.path.join(output_dir, state.get("file", planned[i]))
            if os.path.exists(path):
                os.remove(path)
            _save_state(output_dir, planned[i], {**state, "file": None})
    return len(kept)


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
