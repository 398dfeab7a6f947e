"""Image-folder sources `<root>/<split>/<class>/<image>` (the
`tfds.folder_dataset.ImageFolder` layout and label order), read with the
images still encoded."""

import os
import random

import tensorflow as tf

from assemble_tf.data.sources.catalog import (
    SourceInfo,
    import_tfds,
    private_temporary_folder,
)
from official.utils.misc import file_utils, validation
from official.utils.misc.validation import MissingPathError, OptionError

_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def _list_images(folder):
    # Hidden files are no images of the set, as for every folder reader
    # (before: a class's ".hidden.jpg" was trained on, evaluated and
    # embedded, and macOS's "._x.jpg" counted as a bad image each epoch).
    return sorted(
        os.path.join(folder, f)
        for f in tf.io.gfile.listdir(folder)
        if f.lower().endswith(_IMAGE_EXTENSIONS)
        and not f.startswith(".")
        and file_utils.isfile(os.path.join(folder, f))
    )


def _ignored_files(root):
    """What `scan_folder` leaves out, relative to `root` (hidden files
    aside): files of the class folders that are not .jpg/.jpeg/.png or not
    files (a broken link, whose read failed uncounted and misaligned
    retrieval's labels; a named pipe, whose read never returned), the
    subfolders of class folders and files directly in a split folder
    (images there are not read: they were left out without a word)."""
    return tuple(
        f"{split}/{entry}"
        for split in _subdirs(root)
        for entry in file_utils.left_out_of_class_folders(
            os.path.join(root, split), _IMAGE_EXTENSIONS
        )
    )


def _subdirs(folder):
    return sorted(
        f.rstrip("/")
        for f in tf.io.gfile.listdir(folder)
        if tf.io.gfile.isdir(os.path.join(folder, f)) and not f.startswith(".")
    )


def folder_layout(root):
    """(split names, sorted class names over all splits) of `root`, read
    from its folders alone (no image is listed): `scan_folder`'s splits
    and label space, for a dry run."""
    splits = _subdirs(root)
    classes = {c for s in splits for c in _subdirs(os.path.join(root, s))}
    return splits, sorted(classes)


def scan_folder(root):
    """{split: [(path, class_name)]} and the sorted class names of `root`.

    Same rules and order as `tfds.folder_dataset.ImageFolder`: splits and
    classes are the subfolders, images end in .jpg/.jpeg/.png (any case;
    hidden files, ".name", are left out),
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


def _refuse_names_not_utf8(root):
    """Refuses a name that is not UTF-8 down to the images (splits, class
    folders, files): TensorFlow's file system, which lists the folder,
    cannot (before: "'utf-8' codec can't decode byte 0xff", naming no
    file)."""
    bad = []

    def walk(folder, shown, depth):
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if not file_utils.is_utf8(name):
                bad.append(shown + file_utils.shown_name(name))
            elif depth < 2 and os.path.isdir(path):
                walk(path, f"{shown}{name}/", depth + 1)

    walk(root, "", 0)
    if bad:
        shown = ", ".join(bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise OptionError(
            "source",
            "{field}={root} holds {count} that {are} not UTF-8 ({shown}), "
            "which TensorFlow cannot list: rename them, or move them out of "
            "the folder.",
            root=root,
            count="a name" if len(bad) == 1 else f"{len(bad)} names",
            are="is" if len(bad) == 1 else "are",
            shown=shown,
        )


def open_folder(root):
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise MissingPathError(
            "source",
            "{field}={root}: no such folder. Pass a tfds name (e.g. "
            "oxford_flowers102) or a folder <root>/<split>/<class>/<image>.",
            root=root,
        )
    _refuse_names_not_utf8(root)
    for split in _subdirs(root):
        classes = _subdirs(os.path.join(root, split))
        # Before: a newline in a name split class_names.txt's line (every
        # later class one line off), and a rerun or tools.evaluate read
        # " lead space" back as "lead space" and refused the run.
        validation.check_class_names(
            "source",
            os.path.join(root, split),
            classes,
            "a run's class_names.txt keeps one class per line",
            "a run's class_names.txt is read back without them, so a rerun "
            "or tools.evaluate found other names",
        )
        validation.check_distinct_class_folders(
            "source", os.path.join(root, split), classes
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
        raise OptionError(
            "source",
            "{field}={root}: no split subfolders with images; expected "
            "<root>/<split>/<class>/<image> (e.g. {root}/train/<class>/"
            "x.jpg and {root}/test/<class>/y.jpg), found {found}. Move the "
            "class folders into a split folder such as train/.",
            root=root,
            found=found,
        )
    with private_temporary_folder():
        builder = import_tfds().folder_dataset.ImageFolder(root)
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
        ignored=_ignored_files(root),
        empty_classes=tuple(
            sorted(set(classes) - {c for v in examples.values() for _, c in v})
        ),
        partial_classes=_partial_classes(examples),
    )


def _partial_classes(examples):
    """((class, (splits with its images)), ...) of the classes with images
    in some of the splits that have images, not all."""
    splits = sorted(s for s, items in examples.items() if items)
    found = {}
    for split in splits:
        for cls in sorted({c for _, c in examples[split]}):
            found.setdefault(cls, []).append(split)
    return tuple(
        (cls, tuple(where))
        for cls, where in sorted(found.items())
        if len(where) < len(splits)
    )


def folder_dataset(
    info, ranges, shuffle_files, input_context, seed, with_names=False
):
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
        lambda path, label: (
            (tf.io.read_file(path), label) + ((path,) if with_names else ())
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
