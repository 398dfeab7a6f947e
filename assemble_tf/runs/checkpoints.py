"""A run folder's checkpoints, best-N keeper and history.

`<model_dir>/checkpoints` (a `tf.train.CheckpointManager`, latest N),
`<model_dir>/best` (the N best by validation top-1, `best.json` naming them
inside the folder so that a moved run stays whole) and `history.json` (one
record per epoch), written atomically.
"""

import json
import os
import shutil

import tensorflow as tf

from official.utils.misc import file_utils


def find_checkpoint(model_dir, which="latest"):
    """A run's checkpoint prefix: "latest", "best" or an explicit prefix."""
    if which == "latest":
        found = tf.train.latest_checkpoint(
            os.path.join(model_dir, "checkpoints")
        )
    elif which == "best":
        entries = BestKeeper(model_dir, 0).entries
        found = entries[0]["prefix"] if entries else None
    else:
        found = which if tf.io.gfile.glob(which + ".index") else None
    if not found:
        raise FileNotFoundError(
            f"No checkpoint '{which}' under {model_dir}; train first or pass "
            "--checkpoint=PREFIX / --weights=FILE."
        )
    return found


def restore(model, checkpoint=None, weights=None):
    """Loads `weights` (.weights.h5) or the checkpoint prefix into `model`."""
    if weights:
        model.load_weights(weights)
    elif checkpoint:
        tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial()
    else:
        raise ValueError("restore() needs a checkpoint or weights.")
    return model


def chief_and_dir(strategy, model_dir):
    """(is_chief, checkpoint dir) following the multi-worker convention."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", 0) or 0
    if task_type is None or task_type == "chief":
        chief = True
    else:
        spec = resolver.cluster_spec().as_dict() if resolver else {}
        chief = "chief" not in spec and task_type == "worker" and task_id == 0
    base = os.path.join(model_dir, "checkpoints")
    if chief:
        return True, base
    return False, os.path.join(model_dir, f".scratch_{task_type}{task_id}")


class BestKeeper:
    """Copies the N best checkpoints by validation top-1 to model_dir/best.

    best.json stores each prefix by name inside `best/` (a moved run
    stays whole); `entries` holds them as full paths.
    """

    def __init__(self, model_dir, keep):
        self.dir = os.path.join(model_dir, "best")
        self.keep = keep
        self.index_path = os.path.join(self.dir, "best.json")
        self.entries = []
        if os.path.isfile(self.index_path):
            with open(self.index_path) as f:
                self.entries = [
                    # basename: older runs stored absolute paths.
                    dict(e, prefix=os.path.join(self.dir, _name(e["prefix"])))
                    for e in json.load(f)
                ]

    def offer(self, prefix, top1, epoch):
        if self.keep <= 0:
            return
        os.makedirs(self.dir, exist_ok=True)
        name = f"epoch{epoch:04d}"
        for src in tf.io.gfile.glob(prefix + ".*"):
            suffix = src[len(prefix) :]
            shutil.copyfile(src, os.path.join(self.dir, name + suffix))
        self.entries = [e for e in self.entries if e["epoch"] != epoch]
        self.entries.append(
            {
                "epoch": epoch,
                "top1": top1,
                "prefix": os.path.join(self.dir, name),
            }
        )
        self.entries.sort(key=lambda e: (-e["top1"], e["epoch"]))
        for gone in self.entries[self.keep :]:
            for f in tf.io.gfile.glob(gone["prefix"] + ".*"):
                os.remove(f)
        self.entries = self.entries[: self.keep]
        stored = [dict(e, prefix=_name(e["prefix"])) for e in self.entries]
        file_utils.atomic_write_json(self.index_path, stored, indent=1)


def _name(prefix):
    return os.path.basename(prefix.replace("\\", "/"))


def history_path(model_dir):
    return os.path.join(model_dir, "history.json")


def load_history(model_dir):
    path = history_path(model_dir)
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    return []


def save_history(model_dir, history):
    file_utils.atomic_write_json(history_path(model_dir), history, indent=1)
