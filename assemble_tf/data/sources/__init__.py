"""Transfer-learning data sources: a tfds name or an image folder.

Lee et al. 2020 ("Compounding the Performance Improvements of Assembled
Techniques in a Convolutional Neural Network", arXiv 2001.06268, Table 10 /
the FGVC figure) fine-tune Assemble-ResNet-50 on Food-101, Stanford Cars,
Oxford-Flowers-102, FGVC-Aircraft and Oxford-IIIT Pets, and evaluate image
retrieval (recall@k) on class-disjoint halves of CUB-200-2011, Cars196 and
Stanford Online Products. clovaai/assembled-cnn converts each set into its
own TFRecords (`datasets/build_*.py`); here the same sets come from
TensorFlow Datasets (`tensorflow_datasets` 4.9) or, for FGVC-Aircraft (not
in tfds) and a user's own data, from a folder laid out
`<root>/<split>/<class>/<image>` (the `tfds.folder_dataset.ImageFolder`
layout and label order). The code is this project's; split sizes and the
class-disjoint retrieval halves are taken from the authors' builders.

Images stay encoded: `encoded_dataset` yields `(image_bytes, label)` with
`tfds.decode.SkipDecoding`, so the project's own JPEG/PNG decode and crop
(`assemble_tf.data.preprocessing`, the ImageNet eval/train preprocessing)
runs on them exactly as on the ImageNet TFRecords.

Nothing here touches the network unless `open_source(..., download=True)`:
a tfds dataset that is not prepared in `data_dir` is an error that says
where it looked and how to prepare it (the `tfds build` command).
"""

import os

import tensorflow as tf

from assemble_tf.data.sources.catalog import (
    RETRIEVAL_SPLITS,
    TRANSFER_DATASETS,
    RetrievalSplit,
    SourceInfo,
    TransferDataset,
    import_tfds,
    retrieval_classes,
    retrieval_selection,
    transfer_dataset,
)
from assemble_tf.data.sources.folder import (
    folder_dataset,
    folder_layout,
    open_folder,
)
from assemble_tf.data.sources.tfds import is_tfds_name, open_tfds, tfds_dataset
from official.utils.misc import validation
from official.utils.misc.validation import OptionError


def filter_classes(dataset, low, high):
    """Keeps the `(image, label)` elements with low <= label < high."""
    if not 0 <= low < high:
        raise ValueError(
            f"Need 0 <= low < high. Received: low={low}, high={high}"
        )
    low64, high64 = tf.constant(low, tf.int64), tf.constant(high, tf.int64)
    return dataset.filter(
        lambda image, label, *name: (label >= low64) & (label < high64)
    )


def open_source(source, data_dir=None, download=False):
    """Opens a tfds dataset or an image folder without touching the network.

    Args:
        source: a tfds name ("oxford_flowers102", "food101:2.0.0",
            "name/config"), or a folder `<root>/<split>/<class>/<image>`
            (.jpg, .jpeg, .png; a str or path). A string starting with
            "/", "." or "~" is always a folder; another existing folder is
            one unless the string is also a tfds name.
        data_dir: the tfds data root (default: tfds's, ~/tensorflow_datasets
            or $TFDS_DATA_DIR). Ignored for a folder.
        download: let tfds download and prepare a dataset that is not
            prepared yet (needs network; manual-download sets need their
            files in `<data_dir>/downloads/manual` first).

    Returns:
        A `SourceInfo`.

    Raises:
        ValueError: unknown tfds name (with close matches), a set that is not
            prepared, manual data missing, no ClassLabel feature, or a folder
            without split subfolders.
        FileNotFoundError: a folder path that does not exist.
    """
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not source or not isinstance(source, str):
        raise ValueError(
            f"Pass a tfds name or a folder. Received: source={source!r}"
        )
    if is_folder(source):
        return open_folder(os.path.expanduser(source))
    return open_tfds(source, data_dir, download)


_OPENED = {}


def open_source_cached(source, data_dir=None, download=False):
    """`open_source`, once per (source, data_dir, download) and process."""
    key = (source, data_dir, download)
    if key not in _OPENED:
        _OPENED[key] = open_source(source, data_dir, download)
    return _OPENED[key]


def require_classes(info, source):
    """Raises `OptionError` (field `source`) unless `info` has at least 2
    classes, which a classifier needs."""
    if info.num_classes < 2:
        raise OptionError(
            "source",
            "{field}={path} has {count} class(es) ({names}): a classifier "
            "needs at least 2 class folders <split>/<class>/.",
            path=source,
            count=info.num_classes,
            names=", ".join(info.class_names or ()) or "none",
        )


def held_out_split(source, splits):
    """The split to evaluate `source` (whose split names are `splits`) on:
    the catalogue's for the paper's tfds sets; else "validation" where
    there is one, then "test", then "val" (an image folder's held-out
    split); None where none exists."""
    if not is_folder(source):
        try:
            return transfer_dataset(source).eval_split
        except ValueError:
            pass
    for name in ("validation", "test", "val"):
        if name in splits:
            return name
    return None


def is_folder(source):
    """Whether `source` names an image folder (a path: it starts with /,
    . or ~, or is an existing folder whose name is not a tfds name), not a
    tfds data set."""
    path = os.path.expanduser(source)
    path_like = source.startswith(("/", ".", "~"))
    return path_like or (os.path.isdir(path) and not is_tfds_name(source))


def folder_warnings(info, across_splits=True):
    """Warning lines for a folder source: its files that are not images
    (left out), its class folders without images (labels no image has)
    and, with `across_splits` (training), its classes with images in some
    splits only."""
    lines = []
    if info.ignored:
        shown = ", ".join(info.ignored[:3])
        more = ", ..." if len(info.ignored) > 3 else ""
        lines.append(
            f"{info.data_dir}: left out the files that are not .jpg/.jpeg/"
            f".png images in a class folder <split>/<class>/ "
            f"({len(info.ignored):,}: {shown}{more}); convert or move "
            "them to use them."
        )
    if info.empty_classes:
        lines.append(
            f"{info.data_dir}: class folders without images, still counted "
            f"as classes: {', '.join(info.empty_classes)}."
        )
    if across_splits and info.partial_classes:
        # Before: a test/Cat beside train/cat was a third class, never
        # trained on and never predicted, without a word.
        shown = ", ".join(
            f"{cls!r} ({' and '.join(where)} only)"
            for cls, where in info.partial_classes[:3]
        )
        more = ", ..." if len(info.partial_classes) > 3 else ""
        partial = [cls for cls, _ in info.partial_classes]
        twins = validation.unicode_twins(partial)
        lines.append(
            f"{info.data_dir}: {len(info.partial_classes):,} classes have "
            f"images in some splits only: {shown}{more}. A class without "
            "training images is never predicted, and one without evaluation "
            "images is not measured: check the class folders' names (case "
            "counts"
            + (
                f"; these differ only in their Unicode normalization: {twins}"
                if twins
                else ""
            )
            + "). A class-disjoint retrieval set is meant so."
        )
    return lines


def num_examples(info, split, field=None):
    """Examples in `split` of `info`; slices and sums allowed ("a[:10%]+b").

    Raises:
        ValueError: unknown split name or bad split syntax (an
            `OptionError` naming `field` when given).
    """
    try:
        return sum(to - from_ for _, from_, to in _absolute(info, split))
    except ValueError as e:
        if field is None:
            raise
        fix, others = "", ()
        if isinstance(e, _UnknownSplit):  # the fix, beside the splits
            fix = (
                " Pass one of them as {field}, or a slice of one (e.g. "
                "{field}='{example}[80%:]')."
            )
        if fix and field == "validation_split":
            # Held out of the training split too (before: the fix alone
            # evaluated on 20 % of the images it trained on).
            fix = fix[:-2] + (
                " with {train_split}='{example}[:80%]', so that the two "
                "do not overlap)."
            )
            others = ("train_split",)
        raise OptionError(
            field,
            "{field}: {reason}" + fix,
            others,
            reason=str(e),
            example=sorted(info.splits)[0] if info.splits else "train",
        ) from None


class _UnknownSplit(ValueError):
    """A split expression naming a split the source does not have."""


def encoded_dataset(
    info,
    split,
    shuffle_files=False,
    input_context=None,
    seed=None,
    with_names=False,
):
    """`(image_bytes, label)` pairs of `split`, images still encoded.

    Args:
        info: a `SourceInfo` from `open_source`.
        split: a split, a slice or a sum in tfds syntax ("train",
            "train[:90%]", "train+validation", "test[10:20]").
        shuffle_files: tfds: shuffle the order of the shard files (examples
            inside a shard keep their order; shuffle examples downstream).
            Folder: shuffle the file list (cheap, before reading).
        input_context: a `tf.distribute.InputContext`; each input pipeline
            reads its share (tfds: a contiguous even share of the examples,
            `tfds.even_splits`; folder: every n-th example).
        seed: seed of the file shuffling (None: random).
        with_names: also yield each image's name: a folder's file path,
            "" for tfds (which names few images).

    Returns:
        A `tf.data.Dataset` of `(tf.string scalar, tf.int64 scalar)`, or
        with `with_names` `(image_bytes, label, name)`.

    Raises:
        ValueError: unknown split (the message lists the splits).
    """
    ranges = _absolute(info, split)  # validates the split
    if info.kind == "tfds":
        ds = tfds_dataset(info, split, shuffle_files, input_context, seed)
        if with_names:
            ds = ds.map(lambda image, label: (image, label, ""))
        return ds
    if info.kind != "folder":
        raise ValueError(f"Unknown SourceInfo.kind={info.kind!r}.")
    return folder_dataset(
        info, ranges, shuffle_files, input_context, seed, with_names
    )


def _split_dict(info):
    tfds = import_tfds()
    return tfds.core.SplitDict(
        [
            tfds.core.SplitInfo(name=k, shard_lengths=[n], num_bytes=0)
            for k, n in info.splits.items()
        ]
    )


def _absolute(info, split):
    """[(split_name, from, to)] of a tfds split expression."""
    tfds = import_tfds()
    if not split or not isinstance(split, str):
        raise ValueError(f"split must be a string. Received: {split!r}")
    try:
        instruction = tfds.core.ReadInstruction.from_spec(split)
    except (ValueError, NotImplementedError) as e:
        raise ValueError(f"Bad split {split!r} for {info.name}: {e}") from None
    split_dict = _split_dict(info)
    out = []
    try:
        for a in instruction.to_absolute(split_dict):
            n = info.splits[a.splitname]
            from_ = 0 if a.from_ is None else a.from_
            to = n if a.to is None else a.to
            out.append((a.splitname, from_, to))
    except (KeyError, ValueError) as e:
        raise _UnknownSplit(
            f"Unknown split {split!r} for {info.name}: it has "
            f"{sorted(info.splits)} ({e})."
        ) from None
    return out


__all__ = [
    "RETRIEVAL_SPLITS",
    "TRANSFER_DATASETS",
    "RetrievalSplit",
    "SourceInfo",
    "TransferDataset",
    "encoded_dataset",
    "filter_classes",
    "folder_layout",
    "folder_warnings",
    "held_out_split",
    "is_folder",
    "num_examples",
    "open_source",
    "open_source_cached",
    "require_classes",
    "retrieval_classes",
    "retrieval_selection",
    "transfer_dataset",
]
