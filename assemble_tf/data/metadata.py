"""What a TFRecord folder says about itself: classes, label base, logits.

`tools.build_imagenet_tfrecords` (`assemble_tf.data.builder`) writes, beside
the shards, `labels.txt` (one `label<TAB>wnid<TAB>text` line per class, the
labels as stored in the records) and `summary.json` (its `num_classes`, the
stored `label_offset` of the first class, and per split the image count and
`num_logits` of teacher logits). ImageNet is stored 1..1000 as the original
(clovaai/assembled-cnn `datasets/build_imagenet_data.py`), other folders
0-based. Light on purpose (TensorFlow only for a URL, gs://...): the
configuration reads it.
"""

import dataclasses
import json
import os

from official.utils.misc import file_utils

SUMMARY = "summary.json"
LABELS = "labels.txt"
# One JSON per finished shard (assemble_tf.data.builder.shards): its file
# name and size, among others.
STATE_DIR = ".build_state"
# The progress of an unfinished `tools.extract_teacher_logits` run in its
# output folder (assemble_tf.training.teacher_logits): its shards may be
# of two teachers until the run finishes and removes it.
EXTRACT_PROGRESS = "extract_progress.json"


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Attributes:
    num_classes: classes of the dataset.
    label_base: the stored label of the first class (1 for ImageNet).
    source: the file it was read from.
    """

    num_classes: int
    label_base: int
    source: str

    def head_width(self, label_offset):
        """Logits a model needs when `label_offset` is subtracted from the
        stored labels: ImageNet (base 1) is 1001 with offset 0, 1000 with
        offset 1; a 0-based 10-class folder is 10."""
        return self.label_base + self.num_classes - label_offset


class LabelsFileError(ValueError):
    """A labels.txt of our format whose classes contradict each other."""


def read_labels(path):
    """[(stored label, wnid, text)] of a builder's labels.txt.

    Raises:
        ValueError: a line is not `label<TAB>wnid<TAB>text`; names the line.
        LabelsFileError: a label or class listed twice, or labels with a
            gap (a hand edit: before, trusted, and a duplicate named the
            wrong class or a missing line made a class "unused_3").
    """
    rows = []
    with file_utils.open_text(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2 or not parts[0].strip().lstrip("-").isdigit():
                raise ValueError(
                    f"{path}:{number} is not 'label<TAB>wnid<TAB>text': "
                    f"{line.strip()!r}"
                )
            text = parts[2] if len(parts) > 2 else ""
            rows.append((int(parts[0]), parts[1].strip(), text))
    _check_rows(path, rows)
    return rows


def _check_rows(path, rows):
    fix = (
        "Restore it from the build (tools.build_imagenet_tfrecords writes "
        "one line per class, labels in a row)."
    )
    for index in (0, 1):
        seen = {}
        for number, row in enumerate(rows, 1):
            if row[index] in seen and row[index] != "":  # "": unnamed
                what = "label" if index == 0 else "class"
                raise LabelsFileError(
                    f"{path} lists {what} {row[index]!r} twice (entries "
                    f"{seen[row[index]]} and {number}). {fix}"
                )
            seen[row[index]] = number
    labels = sorted(r[0] for r in rows)
    if labels and labels[-1] - labels[0] + 1 != len(labels):
        missing = sorted(set(range(labels[0], labels[-1] + 1)) - set(labels))
        raise LabelsFileError(
            f"{path} lists labels {labels[0]}..{labels[-1]} without "
            f"{', '.join(map(str, missing[:5]))}. {fix}"
        )


def write_labels(path, rows):
    """Writes [(stored label, wnid, text)] as labels.txt (atomically)."""
    file_utils.atomic_write(
        path,
        "".join(f"{label}\t{wnid}\t{text}\n" for label, wnid, text in rows),
    )


def dataset_info(data_dir):
    """The `DatasetInfo` of a TFRecord folder, or None when it says nothing
    (no summary.json with `num_classes`, no labels.txt)."""
    if not data_dir:
        return None
    summary = os.path.join(data_dir, SUMMARY)
    if file_utils.isfile(summary):
        with file_utils.open_text(summary) as f:
            values = json.load(f)
        labels = os.path.join(data_dir, LABELS)
        if "num_classes" in values:
            count = int(values["num_classes"])
            listed = (
                len(read_labels(labels)) if file_utils.isfile(labels) else 0
            )
            if listed and listed != count:
                raise LabelsFileError(
                    f"{labels} lists {listed} classes and {summary} "
                    f"{count}: one of them was edited. Restore it from the "
                    "build (tools.build_imagenet_tfrecords writes both)."
                )
            return DatasetInfo(
                count, int(values.get("label_offset", 0)), summary
            )
    labels = os.path.join(data_dir, LABELS)
    if file_utils.isfile(labels):
        rows = read_labels(labels)
        if rows:
            return DatasetInfo(len(rows), min(r[0] for r in rows), labels)
    return None


def split_images(data_dir, split):
    """Images of `split` according to summary.json, or None."""
    summary = os.path.join(data_dir or "", SUMMARY)
    if not file_utils.isfile(summary):
        return None
    with file_utils.open_text(summary) as f:
        splits = json.load(f).get("splits", {})
    if split in splits and "images" in splits[split]:
        return int(splits[split]["images"])
    return None


def built_shard_sizes(folder):
    """{shard file name: bytes} as the builder wrote the shards of `folder`
    (its `.build_state/`), or {} for a folder of another builder's."""
    import glob

    sizes = {}
    for path in glob.glob(os.path.join(folder, STATE_DIR, "*.json")):
        try:
            with open(path, encoding="utf-8") as f:
                state = json.load(f)
            name, size = state.get("file"), state.get("bytes")
        except (OSError, ValueError, AttributeError):
            continue  # the builder's rerun redoes such a shard
        if isinstance(name, str) and isinstance(size, int):
            sizes[name] = size
    return sizes
