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
where it looked and how to prepare it (`tfds build NAME --data_dir=DIR`).
"""

import dataclasses
import difflib
import os
import random

import tensorflow as tf

# Label feature of tfds sets whose label is not called "label" (or that
# hold several ClassLabel features).
_LABEL_KEYS = {"stanford_online_products": "class_id"}
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


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


@dataclasses.dataclass(frozen=True)
class TransferDataset:
    """One of the paper's transfer sets.

    Attributes:
        name: key of `TRANSFER_DATASETS` (the tfds name when there is one).
        source: the tfds name, or None for a folder (pass its path).
        train_split: the split to fine-tune on.
        eval_split: the split the paper reports.
        num_classes: classes.
        num_train: examples in `train_split` (spec section 12).
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


# Paper numbers: REFERENCE 5.1 (AC `figures/FGVC.png`). CUB-200 is a tfds
# set the paper does not fine-tune on (it uses it for retrieval only).
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
    base = _base_name(name)
    if base not in RETRIEVAL_SPLITS:
        raise ValueError(
            f"No class-disjoint retrieval split for {name!r}; known: "
            f"{sorted(RETRIEVAL_SPLITS)}. Use --class_split=all for other "
            "datasets."
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


def retrieval_selection(info, split=None, class_split=None):
    """What a retrieval evaluation of `info` reads.

    Args:
        info: a `SourceInfo`.
        split: an explicit split (tfds syntax), or None for the default.
        class_split: "train", "test" or "all"; None means "test" for the
            class-disjoint sets of `RETRIEVAL_SPLITS` and "all" otherwise.

    Returns:
        (split, (low, high) label range or None for every class,
        class_split). Default split: the protocol's for `RETRIEVAL_SPLITS`
        sets, else "test" when there is one, else the only split.

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
        raise ValueError(
            f"--class_split={class_split} needs one of "
            f"{sorted(RETRIEVAL_SPLITS)}; {info.name} has no class-disjoint "
            "halves. Use --class_split=all (the default)."
        )
    class_split = class_split or ("test" if retrieval else "all")
    class_range = None
    if retrieval:
        default_split, low, high = retrieval_classes(base, class_split)
        split = split or default_split
        if (low, high) != (0, info.num_classes):
            class_range = (low, high)
    elif not split:
        if "test" in info.splits:
            split = "test"
        elif len(info.splits) == 1:
            split = next(iter(info.splits))
        else:
            raise ValueError(
                f"--source={info.name} has splits {sorted(info.splits)}; "
                "pass --split."
            )
    return split, class_range, class_split


def filter_classes(dataset, low, high):
    """Keeps the `(image, label)` elements with low <= label < high."""
    if not 0 <= low < high:
        raise ValueError(
            f"Need 0 <= low < high. Received: low={low}, high={high}"
        )
    low64, high64 = tf.constant(low, tf.int64), tf.constant(high, tf.int64)
    return dataset.filter(
        lambda image, label: (label >= low64) & (label < high64)
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
    path = os.path.expanduser(source)
    path_like = source.startswith(("/", ".", "~"))
    if path_like or (os.path.isdir(path) and not _is_tfds_name(source)):
        return _open_folder(path)
    return _open_tfds(source, data_dir, download)


def num_examples(info, split):
    """Examples in `split` of `info`; slices and sums allowed ("a[:10%]+b").

    Raises:
        ValueError: unknown split name or bad split syntax.
    """
    return sum(to - from_ for _, from_, to in _absolute(info, split))


def encoded_dataset(
    info, split, shuffle_files=False, input_context=None, seed=None
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

    Returns:
        A `tf.data.Dataset` of `(tf.string scalar, tf.int64 scalar)`.

    Raises:
        ValueError: unknown split (the message lists the splits).
    """
    ranges = _absolute(info, split)  # validates the split
    if info.kind == "tfds":
        return _tfds_dataset(info, split, shuffle_files, input_context, seed)
    if info.kind != "folder":
        raise ValueError(f"Unknown SourceInfo.kind={info.kind!r}.")
    return _folder_dataset(info, ranges, shuffle_files, input_context, seed)


def transfer_dataset(name):
    """The `TRANSFER_DATASETS` entry of `name` (version suffix ignored)."""
    base = _base_name(name)
    if base not in TRANSFER_DATASETS:
        close = difflib.get_close_matches(base, list(TRANSFER_DATASETS), 3)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(
            f"{name!r} is not one of the paper's transfer sets "
            f"{sorted(TRANSFER_DATASETS)}.{hint}"
        )
    return TRANSFER_DATASETS[base]


# ------------------------------------------------------------------- tfds


def _tfds():
    import tensorflow_datasets as tfds

    return tfds


def _base_name(name):
    """'food101:2.0.0' / 'x/config' -> 'food101' / 'x'."""
    return (
        os.path.basename(str(name).rstrip("/"))
        if _looks_like_path(name)
        else str(name).split(":")[0].split("/")[0]
    )


def _looks_like_path(name):
    return str(name).startswith(("/", ".", "~"))


def _is_tfds_name(source):
    return _base_name(source) in _tfds().list_builders(
        with_community_datasets=False
    )


def _open_tfds(source, data_dir, download):
    tfds = _tfds()
    from tensorflow_datasets.core import registered

    kwargs = {"data_dir": os.path.expanduser(data_dir)} if data_dir else {}
    try:
        builder = tfds.builder(source, **kwargs)
    except registered.DatasetNotFoundError:
        raise ValueError(_unknown_name_message(source)) from None
    except (AssertionError, ValueError) as e:
        raise ValueError(f"--source={source}: {e}") from None
    if not builder.is_prepared():
        _prepare(builder, source, download)
    features = builder.info.features
    image_key = _image_key(source, features)
    label_key = _label_key(source, features)
    label = features[label_key]
    names = tuple(label.names)
    if names == tuple(str(i) for i in range(label.num_classes)):
        names = None
    return SourceInfo(
        name=builder.info.full_name.rsplit("/", 1)[0],
        kind="tfds",
        data_dir=_data_root(builder),
        num_classes=int(label.num_classes),
        class_names=names,
        splits={
            str(k): int(v.num_examples) for k, v in builder.info.splits.items()
        },
        image_key=image_key,
        label_key=label_key,
        builder=builder,
    )


def _data_root(builder):
    """The data_dir a builder reads from: data_dir minus name/config/ver."""
    path = os.path.normpath(str(builder.data_dir))
    for _ in builder.info.full_name.split("/"):
        path = os.path.dirname(path)
    return path


def _unknown_name_message(source):
    base = _base_name(source)
    names = _tfds().list_builders(with_community_datasets=False)
    close = difflib.get_close_matches(base, names, n=5, cutoff=0.6)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    return (
        f"--source={source}: no tfds dataset {base!r} (tensorflow_datasets "
        f"knows {len(names)} names).{hint} For FGVC-Aircraft or your own "
        "images, pass a folder laid out <root>/<split>/<class>/<image> "
        "instead (e.g. --source=/data/fgvc_aircraft)."
    )


def _prepare(builder, source, download):
    """Prepares with tfds when allowed, else explains how."""
    root = _data_root(builder)
    name = builder.info.full_name.rsplit("/", 1)[0]
    manual_dir = os.path.join(root, "downloads", "manual")
    instructions = getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None)
    if instructions:
        has_files = os.path.isdir(manual_dir) and os.listdir(manual_dir)
        if not (download and has_files):
            raise ValueError(
                f"{name} is not prepared in {builder.data_dir} and needs a "
                f"manual download: put its files in the manual_dir "
                f"{manual_dir}, then run `tfds build {name} "
                f"--data_dir={root} --manual_dir={manual_dir}` (or pass "
                "--download to prepare it from that folder). tfds "
                f"instructions:\n{instructions.strip()}"
            )
    elif not download:
        raise ValueError(
            f"{source}: not prepared: looked in {builder.data_dir} (data_dir "
            f"{root}). Prepare it with `tfds build {name} --data_dir={root}`, "
            "pass --download to let tfds fetch and prepare it now (needs "
            "network), or point --tfds_data_dir at the folder that holds it."
        )
    builder.download_and_prepare()


def _image_key(source, features):
    from tensorflow_datasets.core import features as features_lib

    images = [
        k for k, f in features.items() if isinstance(f, features_lib.Image)
    ]
    if "image" in images:
        return "image"
    if len(images) == 1:
        return images[0]
    raise ValueError(
        f"{source}: expected one image feature, found {images or 'none'} in "
        f"{sorted(features.keys())}."
    )


def _label_key(source, features):
    from tensorflow_datasets.core import features as features_lib

    labels = [
        k for k, f in features.items() if isinstance(f, features_lib.ClassLabel)
    ]
    known = _LABEL_KEYS.get(_base_name(source))
    for key in (known, "label"):
        if key in labels:
            return key
    if len(labels) == 1:
        return labels[0]
    raise ValueError(
        f"{source}: cannot tell the label feature: ClassLabel features "
        f"{labels or 'none'} in {sorted(features.keys())}. Add the name to "
        "assemble_tf.data.tfds_source._LABEL_KEYS."
    )


def _tfds_dataset(info, split, shuffle_files, input_context, seed):
    tfds = _tfds()
    decoders = tfds.decode.PartialDecoding(
        {info.image_key: True, info.label_key: True},
        decoders={info.image_key: tfds.decode.SkipDecoding()},
    )
    if input_context is not None and input_context.num_input_pipelines > 1:
        # tfds shards by file only and refuses more pipelines than files (a
        # small set has one); even_splits gives each pipeline a contiguous,
        # even share of the examples instead.
        split = tfds.even_splits(split, input_context.num_input_pipelines)[
            input_context.input_pipeline_id
        ]
    read_config = tfds.ReadConfig(shuffle_seed=seed)
    ds = info.builder.as_dataset(
        split=split,
        shuffle_files=shuffle_files,
        decoders=decoders,
        read_config=read_config,
    )
    image_key, label_key = info.image_key, info.label_key
    return ds.map(
        lambda ex: (ex[image_key], tf.cast(ex[label_key], tf.int64)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


# ----------------------------------------------------------------- folder


def _split_dict(info):
    tfds = _tfds()
    return tfds.core.SplitDict(
        [
            tfds.core.SplitInfo(name=k, shard_lengths=[n], num_bytes=0)
            for k, n in info.splits.items()
        ]
    )


def _absolute(info, split):
    """[(split_name, from, to)] of a tfds split expression."""
    tfds = _tfds()
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
        raise ValueError(
            f"Unknown split {split!r} for {info.name}: it has "
            f"{sorted(info.splits)} ({e})."
        ) from None
    return out


def _list_images(folder):
    return sorted(
        os.path.join(folder, f)
        for f in tf.io.gfile.listdir(folder)
        if f.lower().endswith(_IMAGE_EXTENSIONS)
        and not tf.io.gfile.isdir(os.path.join(folder, f))
    )


def _subdirs(folder):
    return sorted(
        f.rstrip("/")
        for f in tf.io.gfile.listdir(folder)
        if tf.io.gfile.isdir(os.path.join(folder, f)) and not f.startswith(".")
    )


def scan_folder(root):
    """{split: [(path, class_name)]} and the sorted class names of `root`.

    Same rules and order as `tfds.folder_dataset.ImageFolder`: splits and
    classes are the subfolders, images end in .jpg/.jpeg/.png (any case),
    the label space is the sorted union of class folders over all splits,
    and each split's list is shuffled with `random.Random(split_name)` so
    that a slice like "train[:90%]" mixes classes.
    """
    examples, classes = {}, set()
    for split in _subdirs(root):
        items = []
        for cls in _subdirs(os.path.join(root, split)):
            classes.add(cls)
            items += [
                (p, cls) for p in _list_images(os.path.join(root, split, cls))
            ]
        random.Random(split).shuffle(items)
        examples[split] = items
    return examples, sorted(classes)


def _open_folder(root):
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"--source={root}: no such folder. Pass a tfds name (e.g. "
            "oxford_flowers102) or a folder <root>/<split>/<class>/<image>."
        )
    examples, classes = scan_folder(root)
    splits = {k: len(v) for k, v in examples.items() if v}
    if not splits:
        flat = _list_images(root)
        top = [s for s in _subdirs(root) if _list_images(os.path.join(root, s))]
        found = (
            f"{len(flat)} images directly in it"
            if flat
            else f"images directly in class folders {top[:3]}"
            if top
            else "no .jpg/.jpeg/.png images two levels down"
        )
        raise ValueError(
            f"--source={root}: no split subfolders with images; expected "
            f"<root>/<split>/<class>/<image> (e.g. {root}/train/<class>/"
            f"x.jpg and {root}/test/<class>/y.jpg), found {found}. Move the "
            "class folders into a split folder such as train/."
        )
    builder = _tfds().folder_dataset.ImageFolder(root)
    return SourceInfo(
        name=os.path.basename(root),
        kind="folder",
        data_dir=root,
        num_classes=len(classes),
        class_names=tuple(classes),
        splits=splits,
        image_key="image",
        label_key="label",
        builder=builder,
    )


def _folder_dataset(info, ranges, shuffle_files, input_context, seed):
    examples, _ = scan_folder(info.data_dir)
    index = {name: i for i, name in enumerate(info.class_names)}
    paths, labels = [], []
    for split, from_, to in ranges:
        items = examples.get(split, [])[from_:to]
        missing = {c for _, c in items} - set(index)
        if len(examples.get(split, [])) != info.splits[split] or missing:
            raise ValueError(
                f"{info.data_dir} changed since open_source (split {split!r}"
                f"); call open_source again."
            )
        paths += [p for p, _ in items]
        labels += [index[c] for _, c in items]
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths, tf.string), tf.constant(labels, tf.int64))
    )
    if input_context is not None and input_context.num_input_pipelines > 1:
        ds = ds.shard(
            input_context.num_input_pipelines, input_context.input_pipeline_id
        )
    if shuffle_files and paths:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    return ds.map(
        lambda path, label: (tf.io.read_file(path), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
