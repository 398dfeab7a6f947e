"""Checks the data against a run's configuration before the run starts.

The tf.data pipeline skips unusable records (and stops after a long run of
them), but a configuration the data cannot serve should stop before
anything is written, with a message that names the option and the fix: the
Assemble recipes distil from teacher logits (`image/logit`, Lee et al.
2020, https://arxiv.org/abs/2001.06268; clovaai/assembled-cnn reads them
from the records), which plain ImageNet records do not have; a 1001-way
head does not fit 0-based labels of 10 classes; a split may be empty.
The first records of each split are read (no image is decoded).
"""

import collections
import dataclasses
import functools
import os
import re

import numpy as np
import tensorflow as tf

from assemble_tf.data import metadata, schema
from assemble_tf.data.input_pipeline import DataError, DataOptionError
from official.utils.misc import file_utils
from official.utils.misc.validation import MissingPathError

# Records read per split: enough to see a mixed set, fast on any disk.
SAMPLE_RECORDS = 1000
# Images of the sample decoded (milliseconds): a split whose images pass
# the format check but none decodes (12-bit or lossless JPEGs, damaged
# data) is refused; the pipeline drops such records as it meets them.
DECODE_TRIES = 8


@dataclasses.dataclass(frozen=True)
class RecordSample:
    """What the first records of a split hold.

    Attributes:
        pattern: the shard glob.
        files: number of shards.
        records: records read (at most the sample size).
        images: records whose image is a whole JPEG, or a PNG, GIF or
            BMP (`input_pipeline.is_record_image`).
        logit_sizes: {length of image/logit: records} (0: no logits).
        min_label, max_label: stored labels seen (None without records).
        decode_tries: images of the first records decoded (at most
            `DECODE_TRIES`).
        decoded: those of them that decoded.
        unparsed: records that are no `tf.train.Example` of this project's
            features (not an Example, a float label, two labels, ...).
        unlabelled: Examples without image/class/label (not in the label
            range: the pipeline skips and counts them).
        boxed: records with at least one bounding box (image/object/bbox).
    """

    pattern: str
    files: int
    records: int
    images: int
    logit_sizes: dict
    min_label: int | None
    max_label: int | None
    decode_tries: int = 0
    decoded: int = 0
    unparsed: int = 0
    unlabelled: int = 0
    boxed: int = 0


def damaged_shard_error(path, read, error):
    """The one-line `ValueError` for a TFRecord file that stopped reading
    after `read` records with `error` (a cut-off file, or a record that is
    not a `tf.train.Example`), naming it and the fix."""
    what = "holds a record that is not a tf.train.Example"
    if isinstance(error, tf.errors.DataLossError):
        what = "is cut off or corrupt"
        # Read in batches, the count stopped at the last whole one.
        read = max(read, read_through(path)[0])
    return ValueError(
        f"{path} {what} (after {read:,} readable records). Rebuild it with "
        "`python -m tools.build_imagenet_tfrecords`, or leave it out of the "
        "input."
    )


def read_through(path):
    """(records of the TFRecord file `path` that read, the `DataLossError`
    that stopped it or None).

    Bytes after the last whole record are an error too: TensorFlow's reader
    takes fewer than a record header's 12 as the end of the file (before:
    an 11-byte cut-off shard, or a short text file, read as 0 records
    without a word)."""
    count = consumed = 0
    try:
        records = tf.data.TFRecordDataset(path).map(tf.strings.length)
        for length in records:  # the lengths, not the data, to Python
            count += 1
            # A record: length (8), its CRC (4), the data, the data's CRC (4).
            consumed += int(length) + 16
    except tf.errors.DataLossError as e:
        return count, e
    left = tf.io.gfile.stat(path).length - consumed
    if left:
        return count, tf.errors.DataLossError(
            None, None, f"{left} bytes after the last whole record"
        )
    return count, None


def check_shard_sizes(files):
    """Refuses TFRecord `files` whose size is not the one our builder wrote
    (its `.build_state/`): a cut-off copy or download. The reader stops at
    the cut, and a pipeline that skips what does not read lost the
    records after it without a word (evaluate counted 14 images of 26).
    Shards of other builders have no record to compare with. The sizes of
    a folder are read again only when its state folder changed (the
    builder writes each state by a rename)."""
    for path in files:
        if "://" in path:
            continue
        folder, name = os.path.split(path)
        try:
            stamp = os.stat(os.path.join(folder, metadata.STATE_DIR))
        except OSError:
            continue
        expected = _built_sizes(folder, stamp.st_mtime_ns).get(name)
        if expected is None:
            continue
        size = os.path.getsize(path)
        if size != expected:
            raise DataError(
                f"{path} has {size:,} bytes and the build wrote {expected:,} "
                f"({folder}/{metadata.STATE_DIR}/): it is cut off or was "
                "changed since. Copy it again, or rebuild it with `python -m "
                "tools.build_imagenet_tfrecords` (the rerun rewrites that "
                "shard)."
            )


_SHARD_NAME = re.compile(r"^(.*)-(\d+)-of-(\d+)$")


def shard_files(pattern, others=("train_pattern", "validation_pattern")):
    """The sorted TFRecord files of the shard glob `pattern` ([] where
    none: the caller raises `no_records_error`).

    Folders it matches are not shards: left out, as a README or
    .DS_Store beside the shards is (`train-*` does not match them; before:
    a `train-old/` folder was a
    FailedPreconditionError traceback in training, and `validation-old/`
    skipped by the evaluation). Where some files are named
    `NAME-NNNNN-of-NNNNN`, a matched file that is not (`train-00000-of-
    00001 copy`, `.bak`) is refused (before: read as one more shard, its
    records counted twice). Without such names, any name is a shard.

    Raises:
        DataError: a stray file among numbered shards; a `DataOptionError`
            naming `others`, the caller's pattern options, where given.
    """
    # A numbered shard is taken as a file without asking (on GCS a stat per
    # file of a 1,024-shard split is a request each).
    files = [
        f
        for f in sorted(tf.io.gfile.glob(pattern))
        if _SHARD_NAME.match(os.path.basename(f)) or not tf.io.gfile.isdir(f)
    ]
    names = [bool(_SHARD_NAME.match(os.path.basename(f))) for f in files]
    if any(names) and not all(names):
        stray = files[names.index(False)]
        text = (
            "{path} is not named NAME-NNNNN-of-NNNNN like the other shards "
            "{pattern} matches (a copy?) and would be read as one more, its "
            "records counted twice: remove or rename it, or give "
        )
        if not others:
            raise DataError(
                text.format(path=stray, pattern=pattern)
                + "a pattern that leaves it out."
            )
        raise DataOptionError(
            others[0],
            text
            + " / ".join(["{field}", *("{" + o + "}" for o in others[1:])])
            + " that leaves it out.",
            others[1:],
            path=stray,
            pattern=pattern,
        )
    return files


def check_shard_set(files, pattern):
    """Refuses shards named `<prefix>-NNNNN-of-MMMMM` that a catch-all
    `pattern` (`<prefix>-*`, `*`) matches when some of the M are missing,
    and (any pattern) shards of one prefix with two totals M.

    Before: a folder that lost `validation-00001-of-00002` (a copy
    without its summary.json and build state) was evaluated on the other
    half without a word. A pattern that selects shards on purpose (e.g.
    `train-0000[0-4]-*`) is not checked for missing ones.
    """
    found = collections.defaultdict(set)
    for path in files:
        name = _SHARD_NAME.match(os.path.basename(path))
        if name:
            prefix, index, total = name.groups()
            found[(os.path.dirname(path), prefix, total)].add(int(index))
    totals = collections.defaultdict(list)
    for folder, prefix, total in sorted(found):
        totals[(folder, prefix)].append(total)
    for (folder, prefix), sets in sorted(totals.items()):
        if len(sets) > 1:
            # Before: both sets read, the images of two builds (or one
            # build twice) in one split.
            shown = " and ".join(f"{prefix}-*-of-{t}" for t in sets)
            raise DataError(
                f"{pattern} matches the shards of {len(sets)} builds in "
                f"{folder}: {shown}. Keep one set (remove or move the "
                "others), or name one in the pattern (e.g. "
                f"{prefix}-*-of-{sets[-1]})."
            )
    if not re.fullmatch(r"[^*?\[\]]*\*", os.path.basename(pattern)):
        return
    for (folder, prefix, total), indices in sorted(found.items()):
        missing = sorted(set(range(int(total))) - indices)
        if not missing:
            continue
        names = [f"{prefix}-{i:0{len(total)}d}-of-{total}" for i in missing]
        shown = ", ".join(names[:3]) + (
            f" and {len(names) - 3:,} more" if len(names) > 3 else ""
        )
        raise DataError(
            f"{pattern} matches {len(indices):,} of the {int(total):,} "
            f"shards {prefix}-*-of-{total} in {folder}: {shown} missing. "
            "Copy them too, or rebuild with `python -m "
            "tools.build_imagenet_tfrecords`; to read only some shards, "
            "name them in the pattern (e.g. "
            f"{prefix}-{min(indices):0{len(total)}d}-*)."
        )


@functools.lru_cache(maxsize=64)
def _built_sizes(folder, stamp):
    del stamp  # the cache key: the state folder's modification time
    return metadata.built_shard_sizes(folder)


def _is_image(data):
    """A whole JPEG, or a PNG, GIF or BMP: the input pipeline's rule
    (`input_pipeline.is_record_image`)."""
    if data.startswith(b"\xff\xd8"):
        return len(data) > 4 and data.endswith(b"\xff\xd9")
    return data.startswith((b"\x89PNG\r\n\x1a\n", b"GIF", b"BM"))


def no_records_error(pattern, others=("train_pattern", "validation_pattern")):
    """The `MissingPathError` (naming `data_dir` and `others`, the pattern
    options of the caller) of a shard glob that matches nothing; a folder
    that is not there is said to be missing (before: "No TFRecord files
    match" for a typo'd folder)."""
    import glob as glob_lib

    check = " / ".join(["{field}", *("{" + o + "}" for o in others)])
    folder = os.path.dirname(pattern)
    if (
        folder
        and not glob_lib.has_magic(folder)
        and "://" not in folder
        and not os.path.isdir(folder)
    ):
        return MissingPathError(
            "data_dir",
            "No TFRecord files match {pattern!r}: {folder} is not a folder. "
            "Check " + check + ".",
            others,
            pattern=pattern,
            folder=folder,
        )
    return MissingPathError(
        "data_dir",
        "No TFRecord files match {pattern!r}. Build them with `python "
        "-m tools.build_imagenet_tfrecords` (or `tools.make_demo_dataset`)"
        " and check " + check + ".",
        others,
        pattern=pattern,
    )


# What `sample_records` reads for a record without image/class/label.
_NO_LABEL = np.iinfo(np.int64).min


def sample_records(
    pattern,
    limit=SAMPLE_RECORDS,
    others=("train_pattern", "validation_pattern"),
):
    """Reads the first `limit` records of the sorted shards of `pattern`.

    Raises:
        FileNotFoundError: no file matches `pattern` (a `MissingPathError`
            naming `data_dir` and `others`, the caller's pattern options).
    """
    files = shard_files(pattern, others)
    if not files:
        raise no_records_error(pattern, others)
    check_shard_sizes(files)
    spec = {
        schema.IMAGE: tf.io.FixedLenFeature([], tf.string, default_value=""),
        schema.LABEL: tf.io.FixedLenFeature(
            [], tf.int64, default_value=_NO_LABEL
        ),
        schema.LOGIT: tf.io.VarLenFeature(tf.float32),
        schema.BBOX_YMIN: tf.io.VarLenFeature(tf.float32),
    }
    records, images, sizes, labels = 0, 0, collections.Counter(), []
    unparsed = unlabelled = boxed = 0
    first_images = []
    for path in files:
        if records >= limit:
            break
        read = 0
        try:
            for serialized in (
                tf.data.TFRecordDataset(path).take(limit - records).batch(256)
            ):
                parsed = _parse_batch(serialized, spec)
                data = parsed[schema.IMAGE].numpy()
                read += len(serialized)
                records += len(serialized)
                unparsed += len(serialized) - len(data)
                whole = [d for d in data if _is_image(d)]
                images += len(whole)
                first_images += whole[: DECODE_TRIES - len(first_images)]
                rows = parsed[schema.LOGIT].indices.numpy()[:, 0]
                sizes.update(np.bincount(rows, minlength=len(data)).tolist())
                boxes = parsed[schema.BBOX_YMIN].indices.numpy()[:, 0]
                boxed += len(np.unique(boxes))
                label = parsed[schema.LABEL].numpy()
                # Before: a missing label read as -1 ("holds labels -1..2:
                # fix --num_classes").
                unlabelled += int(np.sum(label == _NO_LABEL))
                labels.append(label[label != _NO_LABEL])
        except tf.errors.DataLossError as e:
            # A cut-off shard: one line naming it (before: a traceback).
            raise damaged_shard_error(path, read, e) from None
    labels = np.concatenate(labels) if labels else np.zeros([0], np.int64)
    return RecordSample(
        pattern=pattern,
        files=len(files),
        records=records,
        images=images,
        logit_sizes=dict(sizes),
        min_label=int(labels.min()) if labels.size else None,
        max_label=int(labels.max()) if labels.size else None,
        decode_tries=len(first_images),
        decoded=sum(map(_decodes, first_images)),
        unparsed=unparsed,
        unlabelled=unlabelled,
        boxed=boxed,
    )


def _decodes(data):
    """Whether image bytes decode as the pipelines decode them."""
    from assemble_tf.data import preprocessing

    try:
        preprocessing.decode_image(tf.constant(data))
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        return False
    return True


def _parse_batch(serialized, spec):
    """`tf.io.parse_example` of a batch, leaving out the records that are
    not `tf.train.Example`s (the pipeline skips and counts them; here they
    were a traceback). TensorFlow's error quotes the record: for bytes that
    are not UTF-8 (a bare JPEG written as a record) building its message
    raises UnicodeDecodeError instead."""
    unparsable = (tf.errors.InvalidArgumentError, UnicodeDecodeError)
    try:
        return tf.io.parse_example(serialized, spec)
    except unparsable:
        good = []
        for record in serialized:
            try:
                tf.io.parse_single_example(record, spec)
            except unparsable:
                continue
            good.append(record)
        return tf.io.parse_example(
            tf.stack(good) if good else tf.constant([], tf.string), spec
        )


def _check_labels(sample, data_config):
    d = data_config
    if sample.min_label is None:
        raise DataError(
            f"None of the first {sample.records:,} records of "
            f"{sample.pattern} has a label (image/class/label, one int64). "
            "Rebuild them with `python -m tools.build_imagenet_tfrecords`."
        )
    low = sample.min_label - d.label_offset
    high = sample.max_label - d.label_offset
    if low < 0 or high >= d.num_classes:
        raise DataOptionError(
            "num_classes",
            "{pattern} holds labels {min_label}..{max_label}, which with "
            "{label_offset}={offset} do not fit {field}={classes} (model "
            "labels {low}..{high} must lie in 0..{top}). Fix {field} / "
            "{label_offset} (ImageNet records are 1..1000: 1001 classes with "
            "offset 0, or 1000 with offset 1).",
            ["label_offset"],
            pattern=sample.pattern,
            min_label=sample.min_label,
            max_label=sample.max_label,
            offset=d.label_offset,
            classes=d.num_classes,
            low=low,
            high=high,
            top=d.num_classes - 1,
        )


def check_training_data(config, limit=SAMPLE_RECORDS):
    """Raises unless the TFRecords of `config` can feed its run.

    Checks both splits exist and hold records with images and labels that
    fit the head, and, with knowledge distillation on, that the training
    records carry teacher logits of the head's width. Synthetic data and
    tfds / folder sources are not TFRecords and pass.

    Args:
        config: an `ExperimentConfig`.
        limit: records read per split.

    Returns:
        {split: RecordSample} of what was read.

    Raises:
        FileNotFoundError: a split has no shard.
        DataError: a split is empty or unusable, or KD lacks logits.
    """
    d = config.data
    if d.synthetic or d.source:
        return {}
    progress = os.path.join(d.data_dir, metadata.EXTRACT_PROGRESS)
    if file_utils.isfile(progress):
        # Before: trained on the shards of an interrupted extraction,
        # which may hold the logits of two teachers; first, as shards it
        # had not written yet may be missing (before: "No TFRecord files
        # match", with the builder as the fix).
        raise DataError(
            f"{progress} says a `python -m tools.extract_teacher_logits` "
            "run into this folder did not finish (its shards may hold the "
            "logits of two teachers, or none): rerun that command to "
            "finish it."
        )
    samples = {}
    for split, pattern in (
        ("train", d.train_pattern),
        ("validation", d.validation_pattern),
    ):
        sample = sample_records(os.path.join(d.data_dir, pattern), limit)
        samples[split] = sample
        check_records(split, sample)
        _check_labels(sample, d)
    if config.train.kd_temperature > 0:
        _check_teacher_logits(config, samples["train"])
    if d.use_bboxes and not samples["train"].boxed:
        # Before: taken, and every crop sampled from the whole image.
        raise DataOptionError(
            "use_bboxes",
            "None of the first {records:,} records of {pattern} holds a "
            "bounding box (image/object/bbox/*), so {field} would sample "
            "every crop from the whole image: leave {field} out, or rebuild "
            "the records with `python -m tools.build_imagenet_tfrecords "
            "--bbox_csv=...`.",
            records=samples["train"].records,
            pattern=samples["train"].pattern,
        )
    return samples


def check_records(split, sample):
    """Raises `DataError` unless `sample` (of `split`) read records with
    images."""
    if not sample.records:
        raise DataError(
            f"The {split} shards {sample.pattern} ({sample.files} files) "
            "hold no records. Rebuild them with `python -m "
            "tools.build_imagenet_tfrecords` and check that the "
            f"{split} folder has readable images."
        )
    if sample.unparsed == sample.records:
        # Before: "None of the first 8 records holds a whole JPEG" of
        # records whose images were fine and whose labels were floats.
        raise DataError(
            f"None of the first {sample.records:,} records of "
            f"{sample.pattern} is a tf.train.Example of this project's "
            "features (image/encoded: one bytes value; image/class/label: "
            "one int64; image/logit: floats): not Examples, or a label "
            "stored as a float or more than once? Rebuild them with "
            "`python -m tools.build_imagenet_tfrecords`."
        )
    if not sample.images:
        raise DataError(
            f"None of the first {sample.records:,} records of "
            f"{sample.pattern} holds a whole JPEG, or a PNG, GIF or BMP "
            "image (image/encoded). "
            "Rebuild them with `python -m tools.build_imagenet_tfrecords`."
        )
    if sample.decode_tries and not sample.decoded:
        # Before: the pipeline dropped each as it failed, and a training
        # split of them read on forever.
        raise DataError(
            f"None of the first {sample.decode_tries} images of "
            f"{sample.pattern} decodes, though each looks like a whole "
            "JPEG, PNG, GIF or BMP (12-bit or lossless JPEG, or damaged "
            "data?). Rebuild the records with `python -m "
            "tools.build_imagenet_tfrecords`, which re-encodes what it "
            "can read and skips the rest."
        )


def _check_teacher_logits(config, sample):
    """Raises `DataOptionError` (naming `kd_temperature`) unless the
    training records of `sample` carry teacher logits of the head's
    width (knowledge distillation is on)."""
    d, t = config.data, config.train
    want = d.num_classes + d.label_offset
    parsed = sum(sample.logit_sizes.values())  # records that parse
    with_logits = parsed - sample.logit_sizes.get(0, 0)
    fix = (
        "Set {field}=0 to train without knowledge distillation, or "
        "write the teacher's logits into a copy of the records first "
        "with `python -m tools.extract_teacher_logits` (docs/training.md)"
        " and set {data_dir} to that copy."
    )
    if not with_logits:
        raise DataOptionError(
            "kd_temperature",
            "{field}={value:g} turns on knowledge distillation (the "
            "{preset} recipe), which needs teacher logits (image/logit) "
            "in the training records, and none of the first {records:,} "
            "records of {pattern} has them. " + fix,
            ["data_dir"],
            value=t.kd_temperature,
            preset=config.model.preset,
            records=sample.records,
            pattern=sample.pattern,
        )
    wrong = {n: c for n, c in sample.logit_sizes.items() if n not in (0, want)}
    # A few records of another width among right ones are the records'
    # fault: the pipeline skips and counts them (before: the whole set was
    # refused, naming the few widths only).
    if wrong and not sample.logit_sizes.get(want):
        raise DataOptionError(
            "kd_temperature",
            "The teacher logits (image/logit) in {pattern} hold {sizes} "
            "values, but {num_classes}={classes} with {label_offset}="
            "{offset} needs {want}. Extract them for this head "
            "(tools.extract_teacher_logits, whose prepend_zero option "
            "adds the background logit of 1001-way heads; "
            "docs/training.md) or set {field}=0.",
            ["num_classes", "label_offset"],
            pattern=sample.pattern,
            sizes=sorted(wrong),
            classes=d.num_classes,
            offset=d.label_offset,
            want=want,
        )
