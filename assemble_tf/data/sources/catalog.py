"""The paper's transfer and retrieval sets, and what a source is.

Table 10 / the FGVC figure of Lee et al. 2020 (arXiv 2001.06268) and the
class-disjoint retrieval halves of the authors' builders
(clovaai/assembled-cnn `datasets/build_*_zeroshot.py`); `SourceInfo`
describes an opened tfds set or image folder."""

import contextlib
import dataclasses
import difflib
import os
import tempfile

from official.utils.misc.validation import OptionError


@dataclasses.dataclass(frozen=True)
class SourceInfo:
    """What `open_source` found.

    Attributes:
        name: the tfds name (with config) or the folder's base name.
        kind: "tfds" or "folder".
        data_dir: the tfds data root (e.g. ~/tensorflow_datasets), or the
            folder's absolute path.
        num_classes: size of the label space (labels are 0-based).
        class_names: the class names in label order, or None when tfds only
            numbers them ("0", "1", ...).
        splits: split name -> number of examples.
        image_key: the encoded-image feature.
        label_key: the label feature.
        builder: the tfds builder (`tfds.folder_dataset.ImageFolder` for a
            folder); not part of equality or repr.
        ignored: a folder's files in class folders that are not
            .jpg/.jpeg/.png (left out, as tfds' ImageFolder leaves them),
            relative to the folder.
        empty_classes: a folder's class folders without an image in any
            split (still labels, as in tfds' ImageFolder).
        partial_classes: ((class, (splits with its images)), ...) of a
            folder's classes with images in some of its splits only.
    """

    name: str
    kind: str
    data_dir: str
    num_classes: int
    class_names: tuple | None
    splits: dict
    image_key: str = "image"
    label_key: str = "label"
    builder: object = dataclasses.field(default=None, compare=False, repr=False)
    ignored: tuple = ()
    empty_classes: tuple = ()
    partial_classes: tuple = ()


@dataclasses.dataclass(frozen=True)
class TransferDataset:
    """One of the paper's transfer sets.

    Attributes:
        name: key of `TRANSFER_DATASETS` (the tfds name when there is one).
        source: the tfds name, or None for a folder (pass its path).
        train_split: the split to fine-tune on.
        eval_split: the split the paper reports.
        num_classes: classes.
        num_train: examples in `train_split`, as the authors' builders.
        num_eval: examples in `eval_split`.
        resnet50_top1: the paper's ResNet-50 fine-tuned top-1 (%), or None.
        assemble_r50_top1: the paper's Assemble-ResNet-FGVC-50 top-1 (%).
    """

    name: str
    source: str | None
    train_split: str
    eval_split: str
    num_classes: int
    num_train: int
    num_eval: int
    resnet50_top1: float | None = None
    assemble_r50_top1: float | None = None


# Paper numbers: its FGVC figure (clovaai/assembled-cnn `figures/FGVC.png`).
# CUB-200 is a tfds set the paper does not fine-tune on (it uses it for
# retrieval only).
TRANSFER_DATASETS = {
    d.name: d
    for d in (
        TransferDataset(
            "food101", "food101", "train", "validation", 101, 75750, 25250,
            87.0, 92.5,
        ),
        TransferDataset(
            "cars196", "cars196", "train", "test", 196, 8144, 8041,
            89.1, 94.4,
        ),
        TransferDataset(
            "oxford_flowers102", "oxford_flowers102", "train+validation",
            "test", 102, 2040, 6149, 96.1, 98.9,
        ),
        TransferDataset(
            "oxford_iiit_pet", "oxford_iiit_pet", "train", "test", 37,
            3680, 3669, 92.5, 94.3,
        ),
        TransferDataset(
            "caltech_birds2011", "caltech_birds2011", "train", "test", 200,
            5994, 5794,
        ),
        # Not in tfds: a folder <root>/{train,test}/<variant>/<image>, train
        # = images_train + images_val, test = images_test (as the authors'
        # build_fgvc_aircraft.py), 100 variants.
        TransferDataset(
            "fgvc_aircraft", None, "train", "test", 100, 6667, 3333,
            78.8, 92.4,
        ),
    )
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class RetrievalSplit:
    """A class-disjoint retrieval protocol.

    Attributes:
        name: the tfds name.
        train_split / test_split: the tfds splits read for each half.
        train_classes / test_classes: [low, high) label ranges.
    """

    name: str
    train_split: str
    test_split: str
    train_classes: tuple
    test_classes: tuple


# CUB-200 and Cars196: all images, first half of the classes to train, the
# other half to test (authors' build_cub_bird200_zeroshot.py and
# build_cars196_zeroshot.py). SOP: its own Ebay_train / Ebay_test, which are
# already class-disjoint (tfds class_id = file class_id - 1).
RETRIEVAL_SPLITS = {
    r.name: r
    for r in (
        RetrievalSplit(
            "caltech_birds2011", "train+test", "train+test", (0, 100),
            (100, 200),
        ),
        RetrievalSplit(
            "cars196", "train+test", "train+test", (0, 98), (98, 196)
        ),
        RetrievalSplit(
            "stanford_online_products", "train", "test", (0, 11318),
            (11318, 22634),
        ),
    )
}  # fmt: skip


def retrieval_classes(name, part="test"):
    """The split and label range of a class-disjoint retrieval half.

    Args:
        name: a key of `RETRIEVAL_SPLITS` (a version suffix is ignored).
        part: "train", "test" or "all" (every image of both halves).

    Returns:
        (split, low, high): read `split`, keep labels in [low, high).

    Raises:
        ValueError: unknown name or part.
    """
    base = base_name(name)
    if base not in RETRIEVAL_SPLITS:
        raise OptionError(
            "class_split",
            "No class-disjoint retrieval split for {name!r}; known: "
            "{known}. Use {field}=all for other datasets.",
            name=name,
            known=sorted(RETRIEVAL_SPLITS),
        )
    r = RETRIEVAL_SPLITS[base]
    if part == "train":
        return (r.train_split, *r.train_classes)
    if part == "test":
        return (r.test_split, *r.test_classes)
    if part == "all":
        split = r.train_split
        if r.test_split != r.train_split:
            split = f"{r.train_split}+{r.test_split}"
        return split, r.train_classes[0], r.test_classes[1]
    raise ValueError(
        f"part must be 'train', 'test' or 'all'. Received: part={part!r}"
    )


def retrieval_selection(info, split=None, class_split=None, class_range=None):
    """What a retrieval evaluation of `info` reads.

    Args:
        info: a `SourceInfo`.
        split: an explicit split (tfds syntax), or None for the default.
        class_split: "train", "test" or "all"; None means "test" for the
            class-disjoint sets of `RETRIEVAL_SPLITS` and "all" otherwise.
        class_range: (low, high): only labels in [low, high), of any set
            (e.g. the classes a fine-tuning run's `class_range` left out of
            an image folder); for the retrieval sets instead of a
            `class_split` half, over the images of both halves.

    Returns:
        (split, (low, high) label range or None for every class,
        class_split). Default split: the protocol's for `RETRIEVAL_SPLITS`
        sets, else "test", "validation" or "val" (the first there), else
        the only split.

    Raises:
        ValueError: "train"/"test" for a set without class-disjoint halves,
            or no default split.
    """
    base = info.name.split("/")[0]
    retrieval = info.kind == "tfds" and base in RETRIEVAL_SPLITS
    if class_split not in (None, "train", "test", "all"):
        raise ValueError(
            "class_split must be 'train', 'test' or 'all'. Received: "
            f"class_split={class_split!r}"
        )
    if not retrieval and class_split in ("train", "test"):
        raise OptionError(
            "class_split",
            "{field}={value} needs one of {known}; {name} has no "
            "class-disjoint halves. Use {field}=all (the default).",
            value=class_split,
            known=sorted(RETRIEVAL_SPLITS),
            name=info.name,
        )
    if class_range is not None:
        return _retrieval_range(info, split, class_split, class_range)
    class_split = class_split or ("test" if retrieval else "all")
    class_range = None
    if retrieval:
        default_split, low, high = retrieval_classes(base, class_split)
        split = split or default_split
        if (low, high) != (0, info.num_classes):
            class_range = (low, high)
    elif not split:
        # The held-out split: "test", else the one tools.finetune evaluates
        # on ("validation", then an image folder's "val"; before: a folder
        # of train/ and val/ asked for the split), else the only one.
        held_out = [
            s for s in ("test", "validation", "val") if s in info.splits
        ]
        if held_out:
            split = held_out[0]
        elif len(info.splits) == 1:
            split = next(iter(info.splits))
        else:
            raise OptionError(
                "split",
                "{source}={name} has splits {splits}; pass {field}.",
                ["source"],
                name=info.name,
                splits=sorted(info.splits),
            )
    return split, class_range, class_split


def _retrieval_range(info, split, class_split, class_range):
    """`retrieval_selection` of the classes in `class_range`."""
    if class_split in ("train", "test"):
        raise OptionError(
            "class_range",
            "{field} and {class_split}={value} both choose the classes "
            "evaluated: give one ({field} reads both halves' images).",
            ["class_split"],
            value=class_split,
        )
    low, high = class_range
    if info.num_classes and high > info.num_classes:
        raise OptionError(
            "class_range",
            "{field}={low},{high} reaches past the {count} classes of "
            "{name} (labels 0-{last}).",
            low=low,
            high=high,
            count=info.num_classes,
            name=info.name,
            last=info.num_classes - 1,
        )
    # The split of every class (both halves' images for the retrieval
    # sets, else test or the only split).
    split = split or retrieval_selection(info, None, "all")[0]
    return split, (low, high), "all"


def transfer_dataset(name):
    """The `TRANSFER_DATASETS` entry of `name` (version suffix ignored)."""
    base = base_name(name)
    if base not in TRANSFER_DATASETS:
        close = difflib.get_close_matches(base, list(TRANSFER_DATASETS), 3)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(
            f"{name!r} is not one of the paper's transfer sets "
            f"{sorted(TRANSFER_DATASETS)}.{hint}"
        )
    return TRANSFER_DATASETS[base]


def base_name(name):
    """'food101:2.0.0' / 'x/config' -> 'food101' / 'x'."""
    return (
        os.path.basename(str(name).rstrip("/"))
        if looks_like_path(name)
        else str(name).split(":")[0].split("/")[0]
    )


def looks_like_path(name):
    return str(name).startswith(("/", ".", "~"))


def import_tfds():
    import tensorflow_datasets as tfds

    return tfds


@contextlib.contextmanager
def private_temporary_folder():
    """Temporary files made meanwhile go to a folder removed afterwards.

    A tfds builder of a set that is not prepared makes a folder in the
    system's temporary folder (`tempfile.mkdtemp("tfds")`) to copy the
    set's metadata from Google Cloud Storage into, reads it at once and
    never removes it: an empty `tmp*tfds` folder per call, even with no
    network (the copy then fails quietly). tfds' `ImageFolder` does the
    same (an image-folder source left one per run).
    """
    saved = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix="assemble_tfds_") as folder:
        tempfile.tempdir = folder
        try:
            yield
        finally:
            tempfile.tempdir = saved
