"""One shard of `teacher_logits`: read, called on the teacher, written again.

Each record of an input shard is preprocessed for the teacher (eval
preprocessing, no augmentation), its logits are added as `image/logit`, and
the shard is written record for record under a hidden temporary name,
renamed when complete. Records whose image the input pipelines cannot read
are left out and named; labels outside the teacher's logits are refused.
"""

import collections
import os

import numpy as np
import tensorflow as tf

from assemble_tf.data import metadata, schema
from official.utils.misc import interrupts
from official.utils.misc.validation import (
    OptionError,
)

TEMPORARY = ".{name}.tmp"  # a shard being written


def extract_shard(src, dst, teacher, options, labels):
    """Writes `dst` = `src` with the teacher's logits, record for record.

    Records whose image cannot be read are left out. `dst` appears only
    when complete (written as a hidden temporary file, removed on failure).

    Args:
        src: the input shard.
        dst: the output shard.
        teacher: a `teachers.Teacher`.
        options: the `TeacherLogitsOptions` (preprocessing, batch size,
            prepend_zero).
        labels: the range of stored labels the logits cover.

    Returns:
        (records read, records written, {label: (synset, text)} seen,
        the `image/filename`s of the records left out, in input order).
    """
    # The finished run's summary.json goes before its first shard is
    # replaced: an interrupted --overwrite with another teacher left it
    # naming the old teacher over shards of both.
    remove(os.path.join(os.path.dirname(dst), metadata.SUMMARY))
    tmp = temporary_path(dst)
    read = count_records(src)
    written, seen, names = 0, {}, collections.Counter()
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for serialized, images in _batches(src, options):
                interrupts.check()  # swallowed on its way (a finalizer)
                logits = np.asarray(teacher.call(images), np.float32)
                if options.prepend_zero:
                    logits = np.pad(logits, [[0, 0], [1, 0]])
                for raw, row in zip(serialized.numpy(), logits, strict=True):
                    example = tf.train.Example.FromString(raw)
                    if not np.isfinite(row).all():
                        raise _nonfinite_logits(example, src, options)
                    _note_label(example, seen, labels, src, options)
                    feature = example.features.feature[schema.LOGIT]
                    del feature.float_list.value[:]
                    feature.float_list.value.extend(row.tolist())
                    writer.write(example.SerializeToString(deterministic=True))
                    written += 1
                    names[_filename(example)] += 1
        os.replace(tmp, dst)
    except BaseException:
        remove(tmp)
        raise
    return read, written, seen, _left_out(src, names) if read > written else []


def _nonfinite_logits(example, src, options):
    """The error of a record whose teacher logits are not finite (before:
    written, and training stopped at its first steps on a NaN loss that
    named no teacher)."""
    field = (
        "teacher_saved_model"
        if options.teacher_saved_model
        else "teacher_weights"
    )
    return OptionError(
        field,
        "{field}={path} gives logits that are not finite (NaN or Inf) for "
        "{name} of {src}: its weights diverged or overflow on these "
        "images; extract from a checkpoint whose logits are finite.",
        path=getattr(options, field),
        name=_filename(example) or "a record",
        src=src,
    )


def input_identity(path):
    """{"bytes", "mtime_ns"} of an input shard: a shard rebuilt under the
    same name (another dataset, more records) differs in one of them."""
    stat = tf.io.gfile.stat(path)
    return {"bytes": int(stat.length), "mtime_ns": int(stat.mtime_nsec)}


def _filename(example):
    value = example.features.feature[schema.FILENAME].bytes_list.value
    return value[0].decode("utf-8", "replace") if value else ""


def _left_out(src, written):
    """The `image/filename`s of the records of `src` beyond the counts of
    `written` ({filename: records written}), in input order (before: only
    their number was said)."""
    from google.protobuf.message import DecodeError

    left = collections.Counter(written)
    out = []
    records = tf.data.TFRecordDataset(src).as_numpy_iterator()
    for index, raw in enumerate(records):
        try:
            name = _filename(tf.train.Example.FromString(raw))
        except DecodeError:  # before: a DecodeError traceback
            out.append(f"record {index} (not a tf.train.Example)")
            continue
        if left[name]:
            left[name] -= 1
        else:
            out.append(name or "(no image/filename)")
    return out


def _batches(src, options):
    """(serialized records, eval crops) batches of a shard's readable
    images, in order."""
    from assemble_tf.data import input_pipeline, preprocessing

    spec = {schema.IMAGE: tf.io.FixedLenFeature([], tf.string)}
    kind = options.teacher_preprocessing

    def parse(serialized):
        image = tf.io.parse_single_example(serialized, spec)[schema.IMAGE]
        return serialized, image

    def crop(serialized, image):
        return serialized, preprocessing.preprocess_eval(image, kind)

    return (
        tf.data.TFRecordDataset(src)
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        # The records the input pipelines read (a whole JPEG, or a PNG, GIF
        # or BMP); the others are left out and named, as undecodable ones.
        .filter(lambda _, image: input_pipeline.is_record_image(image))
        .map(crop, num_parallel_calls=tf.data.AUTOTUNE)
        .ignore_errors()
        .batch(options.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def _note_label(example, seen, labels=None, path="", options=None):
    """Adds the record's class to `seen`; refuses a label outside `labels`
    (the range the logits cover; None: any)."""
    feature = example.features.feature
    if (
        schema.LABEL not in feature
        or not feature[schema.LABEL].int64_list.value
    ):
        return
    label = int(feature[schema.LABEL].int64_list.value[0])
    if labels is not None and label not in labels:
        raise label_error(label, labels, path, options)
    if label not in seen:
        seen[label] = tuple(
            _text(feature, key) for key in (schema.SYNSET, schema.TEXT)
        )


def label_error(label, labels, path, options):
    """The OptionError of a record label the stored logits do not cover."""
    values = {"path": path, "label": label}
    bad = _outside_the_data(label, options.input_dir)
    if bad is not None:  # the record is wrong, not the teacher
        return OptionError(
            "input_dir",
            "{field}: {path} holds label {label}, outside the {count} "
            "classes of its folder's {file} ({low}..{high}): the record is "
            "wrong. Rebuild the shard with `python -m "
            "tools.build_imagenet_tfrecords`.",
            **bad,
            **values,
        )
    if options.prepend_zero and label < labels.start:
        return OptionError(
            "prepend_zero",
            "{field} makes logit 0 the background of labels stored from 1 "
            "(ImageNet's 1..1000), but {path} holds label {label}: leave "
            "{field} out for 0-based labels.",
            **values,
        )
    if not options.prepend_zero and labels.start == 0 and label == labels.stop:
        # One past the last: labels stored from 1 (ImageNet's 1..1000)
        # with a teacher of as many classes.
        return OptionError(
            "input_dir",
            "{field}: {path} holds label {label}, but the stored logits "
            "cover labels {low}..{high}: for labels stored from 1 with a "
            "teacher of as many classes, pass {prepend_zero} (logit 0 "
            "becomes the background).",
            ["prepend_zero"],
            low=labels.start,
            high=labels.stop - 1,
            **values,
        )
    return OptionError(
        "input_dir",
        "{field}: {path} holds label {label}, but the stored logits cover "
        "labels {low}..{high}; use a teacher of this data's classes, or, if "
        "the record's label is wrong (the folder has no labels.txt to tell), "
        "rebuild the shard with `python -m tools.build_imagenet_tfrecords`.",
        low=labels.start,
        high=labels.stop - 1,
        **values,
    )


def _outside_the_data(label, input_dir):
    """{count, file, low, high} of the folder's classes where `label` is
    outside them, else None (no or unreadable metadata included)."""
    from assemble_tf.data import metadata

    try:
        info = metadata.dataset_info(input_dir)
    except ValueError:
        return None
    if info is None:
        return None
    low, count = info.label_base, info.num_classes
    if low <= label < low + count:
        return None
    return {
        "count": count,
        "file": os.path.basename(info.source),
        "low": low,
        "high": low + count - 1,
    }


def _text(feature, key):
    if key not in feature or not feature[key].bytes_list.value:
        return ""
    return feature[key].bytes_list.value[0].decode("utf-8", "replace")


def count_records(path):
    """The records of a TFRecord file.

    Raises:
        ValueError: the file is cut off or corrupt (named, with the fix).
    """
    from assemble_tf.data import checks

    read, error = checks.read_through(path)
    if error is not None:
        raise checks.damaged_shard_error(path, read, error)
    return read


def scan_shard(path, labels=True):
    """(records, {label: (synset, text)}) of a finished shard (the labels
    only when asked: they need every record parsed)."""
    records, seen = 0, {}
    for raw in tf.data.TFRecordDataset(path):
        records += 1
        if labels:
            _note_label(tf.train.Example.FromString(raw.numpy()), seen)
    return records, seen


def temporary_path(dst):
    """The hidden name `dst` is written under until complete."""
    folder, name = os.path.split(dst)
    return os.path.join(folder, TEMPORARY.format(name=name))


def remove(path):
    if os.path.exists(path):
        os.remove(path)
