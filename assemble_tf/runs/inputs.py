"""The input pipelines of a run: `InputConfig`s and data sources.

Translates the config's data / augment / train groups into the tf.data
pipeline's `InputConfig` (`assemble_tf.data.input_pipeline`), for TFRecords
or a tfds / folder source (`assemble_tf.data.sources`), and counts the
training examples.
"""

import dataclasses
import os

import tensorflow as tf

from assemble_tf import config as config_lib
from assemble_tf.augment.autoaugment import AutoAugment, RandAugment
from assemble_tf.data import input_pipeline, metadata, sources
from official.utils.misc import seeds


def count_examples(data_dir, split, pattern):
    """Images of a split: from the builder's summary.json, else counted.

    Raises:
        ValueError: a shard is cut off or corrupt (names it).
    """
    from assemble_tf.data import checks

    images = metadata.split_images(data_dir, split)
    if images is not None:
        return images
    field = f"{split}_pattern"
    files = checks.shard_files(os.path.join(data_dir, pattern), (field,))
    total = 0
    for path in files:
        count, error = checks.read_through(path)
        if error is not None:
            # Before: a DataLossError traceback naming no file, for a cut
            # past the records the up-front check samples.
            raise checks.damaged_shard_error(path, count, error)
        total += count
    return total


def validation_shortfall(config, read):
    """Compares the records an evaluation read (`read`, skipped ones
    included) with the validation images of the data's summary.json:
    fewer or more.

    The reader stops at the cut of a cut-off shard without an error that
    a pipeline skipping bad records could count (evaluate reported 14 of
    26 images as the whole split), and a removed shard leaves no trace.
    The shards are read through only when fewer records came.

    Returns:
        None, or (message, whether a shard is cut off: the message names
        it), for the default `validation_pattern` only.
    """
    from assemble_tf.data import checks

    d = config.data
    default = config_lib.DataConfig().validation_pattern
    if d.source or d.synthetic or d.validation_pattern != default:
        return None
    listed = metadata.split_images(d.data_dir, "validation")
    if listed is None or read == listed:
        return None
    summary = os.path.join(d.data_dir, metadata.SUMMARY)
    pattern = os.path.join(d.data_dir, d.validation_pattern)
    if read > listed:
        # Before: no word (evaluate counted 32 of a 16-image split, a
        # shard's copy read too).
        return (
            f"the validation shards ({pattern}) hold {read:,} records and "
            f"{summary} lists {listed:,} images (a copy of a shard, or "
            f"shards of another build?): the metrics count the {read:,}.",
            False,
        )
    for path in checks.shard_files(pattern, ("validation_pattern",)):
        count, error = checks.read_through(path)
        if error is not None:
            return (
                f"{path} is cut off or corrupt (after {count:,} readable "
                f"records): the evaluation read {read:,} of the {listed:,} "
                f"validation images {summary} lists. Copy it again, or "
                "rebuild it with `python -m tools.build_imagenet_tfrecords`.",
                True,
            )
    return (
        f"the validation shards ({pattern}) hold {read:,} records and "
        f"{summary} lists {listed:,} images (shards missing?): the metrics "
        f"count the {read:,}.",
        False,
    )


def make_augmenter(augment, seed=0):
    """AutoAugment / RandAugment from the config (seeded: the pipeline
    passes per-image stateless seeds, and op determinism forbids unseeded
    generators)."""
    if augment.autoaugment and augment.autoaugment != "none":
        return AutoAugment(augment.autoaugment, seed=seed)
    if augment.randaugment_layers:
        return RandAugment(
            augment.randaugment_layers,
            augment.randaugment_magnitude,
            seed=seed,
        )
    return None


def input_config(config, is_training, epoch=0, skip_steps=0):
    """The `InputConfig` of the train or eval split (the train split of
    `epoch`, resumed after `skip_steps` of its steps)."""
    d, a, t = config.data, config.augment, config.train
    field = "train_pattern" if is_training else "validation_pattern"
    pattern = os.path.join(d.data_dir or "", getattr(d, field))
    if not (d.source or d.synthetic):
        from assemble_tf.data import checks

        if not checks.shard_files(pattern, (field,)):
            # Named with its pattern field (tools.evaluate: data_dir only).
            raise checks.no_records_error(pattern, others=(field,))
    num_logits = None
    if t.kd_temperature > 0 and is_training:
        num_logits = d.num_classes + d.label_offset
    return input_pipeline.InputConfig(
        file_pattern=pattern,
        is_training=is_training,
        batch_size=t.batch_size
        if is_training
        else (t.eval_batch_size or t.batch_size),
        num_classes=d.num_classes,
        image_size=d.image_size,
        preprocessing_type=d.eval_preprocessing,
        label_offset=d.label_offset,
        use_bboxes=d.use_bboxes,
        min_crop_area=d.min_crop_area,
        num_logits=num_logits,
        teacher_temperature=t.kd_temperature or 1.0,
        mixup_type=a.mixup_type,
        mixup_alpha=a.mixup_alpha,
        mixup_mode=a.mixup_mode,
        label_smoothing=a.label_smoothing,
        augmenter=make_augmenter(a, t.seed) if is_training else None,
        dtype="uint8" if is_training else "float32",
        shuffle_buffer=d.shuffle_buffer,
        deterministic=t.deterministic,
        seed=seeds.derive_seed(t.seed, "input", epoch),
        cache=d.cache,
        record_source=_record_source(d, is_training),
        skip_steps=skip_steps,
    )


def open_data_source(data_config):
    """The `SourceInfo` of `data.source` (tfds name or image folder)."""

    return open_source_cached(
        data_config.source, data_config.tfds_data_dir, data_config.download
    )


open_source_cached = sources.open_source_cached


def source_warnings(data_config):
    """Warning lines of a folder `source`: the files it leaves out and its
    class folders without images (`sources.folder_warnings`); none for
    TFRecords, tfds and synthetic data."""
    if not data_config.source or data_config.synthetic:
        return []
    return sources.folder_warnings(open_data_source(data_config))


def data_warnings(data_config):
    """`source_warnings`, then an eval crop far from the training crop
    (`config.eval_size_warning`)."""
    size = config_lib.eval_size_warning(data_config)
    return source_warnings(data_config) + ([size] if size else [])


def _record_source(data_config, is_training):
    """A `record_source` callable for `InputConfig`, or None (TFRecords)."""
    if not data_config.source:
        return None
    info = open_data_source(data_config)
    split = (
        data_config.train_split if is_training else data_config.validation_split
    )
    sources.num_examples(info, split)  # validates the split name now

    bounds = config_lib.class_range(data_config)

    def source(input_context, training, seed):
        ds = sources.encoded_dataset(
            info,
            split,
            shuffle_files=training,
            input_context=input_context,
            seed=seed,
            with_names=True,  # a warning names the files it skipped
        )
        if bounds:
            low = tf.constant(bounds[0], tf.int64)
            ds = sources.filter_classes(ds, *bounds)
            ds = ds.map(lambda image, label, name: (image, label - low, name))
        return ds

    return source


def check_source_splits(data_config):
    """Refuses a tfds or folder source whose train or validation split
    does not exist, before training (the validation split was otherwise
    first read after the first epoch), and a `class_range` reaching past
    its classes.

    Raises:
        OptionError: naming the split field, the source and its splits, or
            `class_range` and the source's class count.
    """
    from official.utils.misc.validation import OptionError

    if not data_config.source or data_config.synthetic:
        return
    info = open_data_source(data_config)
    for field in ("train_split", "validation_split"):
        sources.num_examples(info, getattr(data_config, field), field)
    if data_config.class_range and (
        data_config.class_range[1] > info.num_classes
    ):
        # Before: trained a head of the range's width, the classes past
        # the source's named unused_N and never seen.
        low, high = data_config.class_range
        raise OptionError(
            "class_range",
            "{field}={low},{high} reaches past the {count} classes of "
            "{source}={path} (labels 0-{last}): keep HIGH <= {count}.",
            ["source"],
            low=low,
            high=high,
            count=info.num_classes,
            path=data_config.source,
            last=info.num_classes - 1,
        )
    if data_config.class_range:
        _check_range_keeps_images(data_config)


def _check_range_keeps_images(data_config):
    """Refuses a `class_range` that keeps no image of a split (before: an
    empty validation split was found after the first epoch, and errors
    named the TFRecord flags or `num_train_examples`). Reads up to the
    first image in the range of each split."""
    from official.utils.misc.validation import OptionError

    for field in ("train_split", "validation_split"):
        split = getattr(data_config, field)
        source = _record_source(
            dataclasses.replace(data_config, train_split=split), True
        )
        if any(True for _ in source(None, False, 0).take(1)):
            continue
        low, high = data_config.class_range
        named = "{" + field + "}"  # the split's option, in the message
        raise OptionError(
            "class_range",
            "{field}={low},{high} keeps no image of the {split!r} split of "
            f"{{source}}={{path}} ({named}): its images are all of classes "
            "outside labels {low}-{last}. Widen {field}, or pick another "
            f"{named}.",
            ["source", field],
            low=low,
            high=high,
            last=high - 1,
            split=split,
            path=data_config.source,
        )


def count_source_examples(data_config, split):
    """Examples of `split` of `data.source` within `data.class_range`."""
    source = _record_source(
        dataclasses.replace(data_config, train_split=split), True
    )
    ds = source(None, False, 0).map(lambda image, label, name: label)
    return int(ds.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


def num_train_examples(config):
    """Training examples of the run (synthetic: 10 batches).

    Raises:
        DataError: the training split is empty.
    """
    d = config.data
    if d.synthetic:
        count = config_lib.synthetic_train_examples(config)
    elif d.num_train_examples:
        count = d.num_train_examples
    elif d.source and d.class_range:
        # Filtered by label: count once (labels only).
        count = count_source_examples(d, d.train_split)
    elif d.source:
        count = sources.num_examples(open_data_source(d), d.train_split)
    else:
        count = count_examples(d.data_dir, "train", d.train_pattern)
    if count < 1:
        raise input_pipeline.DataOptionError(
            "num_train_examples",
            "The training split of {where} has no images ({count}); check "
            "the data (summary.json of tools.build_imagenet_tfrecords lists "
            "what was skipped) or {field}.",
            where=d.source or d.data_dir,
            count=count,
        )
    return count
