"""TensorFlow Datasets sources: open a prepared set (never downloading
unless asked), and read it with the images still encoded."""

import difflib
import os

import tensorflow as tf

from assemble_tf.data.sources.catalog import (
    SourceInfo,
    base_name,
    import_tfds,
    private_temporary_folder,
)
from official.utils.logs import dropped
from official.utils.misc.validation import OptionError

# Label feature of tfds sets whose label is not called "label" (or that
# hold several ClassLabel features).
_LABEL_KEYS = {"stanford_online_products": "class_id"}


def is_tfds_name(source):
    return base_name(source) in import_tfds().list_builders(
        with_community_datasets=False
    )


def open_tfds(source, data_dir, download):
    tfds = import_tfds()
    from tensorflow_datasets.core import registered

    kwargs = {"data_dir": os.path.expanduser(data_dir)} if data_dir else {}
    try:
        # Without tfds's warning "Variant folder <data_dir>/<name>/<version>
        # has no dataset_info.json" (a folder that need not exist) above our
        # one-line error, which says where it looked and how to prepare.
        with (
            dropped.dropped(r"^Variant folder .* has no dataset_info"),
            private_temporary_folder(),
        ):
            builder = tfds.builder(source, **kwargs)
            prepared = builder.is_prepared()
    except registered.DatasetNotFoundError:
        raise _unknown_name_error(source) from None
    except (AssertionError, ValueError) as e:
        raise OptionError(
            "source", "{field}={source}: {error}", source=source, error=e
        ) from None
    if not prepared:
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


def _unknown_name_error(source):
    base = base_name(source)
    names = import_tfds().list_builders(with_community_datasets=False)
    close = difflib.get_close_matches(base, names, n=5, cutoff=0.6)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    return OptionError(
        "source",
        "{field}={source}: no tfds dataset {base!r} (tensorflow_datasets "
        "knows {count} names).{hint} For FGVC-Aircraft or your own images, "
        "set {field} to a folder laid out <root>/<split>/<class>/<image> "
        "instead (e.g. /data/fgvc_aircraft).",
        source=source,
        base=base,
        count=len(names),
        hint=hint,
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
            raise OptionError(
                "download",
                "{name} is not prepared in {where} and needs a manual "
                "download: put its files in the manual_dir {manual_dir}, "
                "then run `tfds build {name} --data_dir={root} "
                "--manual_dir={manual_dir}` (or set {field} to prepare it "
                "from that folder). tfds instructions:\n{instructions}",
                name=name,
                where=builder.data_dir,
                manual_dir=manual_dir,
                root=root,
                instructions=instructions.strip(),
            )
    elif not download:
        raise OptionError(
            "download",
            "{source}: not prepared: looked in {where} (data_dir {root}). "
            "Prepare it with `tfds build {name} --data_dir={root}`, set "
            "{field} to let tfds fetch and prepare it now (needs network), "
            "or point {tfds_data_dir} at the folder that holds it.",
            ["tfds_data_dir"],
            source=source,
            where=builder.data_dir,
            root=root,
            name=name,
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
    known = _LABEL_KEYS.get(base_name(source))
    for key in (known, "label"):
        if key in labels:
            return key
    if len(labels) == 1:
        return labels[0]
    raise ValueError(
        f"{source}: cannot tell the label feature: ClassLabel features "
        f"{labels or 'none'} in {sorted(features.keys())}. Add the name to "
        "assemble_tf.data.sources.tfds._LABEL_KEYS."
    )


def tfds_dataset(info, split, shuffle_files, input_context, seed):
    tfds = import_tfds()
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
