"""The tf.data input pipeline: decode -> preprocess -> batch -> mix.

Shape after TF Model Garden `official/vision/dataloaders` (a Decoder kept
apart from the train / eval parsers, batch-level Mixup as a post-process)
and the mechanics of clovaai/assembled-cnn `utils/data_util.py` (Lee et al.
2020, https://arxiv.org/abs/2001.06268): shuffle the file list, interleave
files, shuffle records, repeat, map, batch, prefetch. Per-worker sharding
goes through `tf.distribute.InputContext`.

Elements are `(images, batch)` with `batch` a dict: `labels` int32 [B]
(with `label_offset` removed), `targets` float32 [B, K] (one-hot, then
Mixup / CutMix, then label smoothing), `teacher_probs` float32 [B, K] when
teacher logits are read (softmax(logits / T), mixed with the same lambda),
`lambda` with Mixup, and `filenames`.

A record that cannot be used (its bytes are not an image, its image does not
decode, e.g. a truncated download, or it lacks the teacher logits that KD
asks for) is skipped and counted (`PipelineStats`), never crashing a long
run; but never without bound: `max_consecutive_unusable` such records in a
row stop the pipeline with a `DataError` (a repeated dataset of unusable
records would otherwise never yield and training would hang).
"""

import contextlib
import dataclasses
import functools
import string

import tensorflow as tf

from assemble_tf.data import preprocessing, schema
from assemble_tf.data.postprocess import BatchPostprocess
from official.utils.misc import seeds
from official.utils.misc.validation import OptionError

# Marks the guard's error so that `reraise_data_errors` can recognise it.
_DATA_ERROR_TAG = "[assemble_tf.DataError]"
# How many unusable records a warning names (`PipelineStats.names`).
NAMED = 5


class DataError(ValueError):
    """The data cannot feed the configured run (e.g. no usable record)."""


class DataOptionError(OptionError, DataError):
    """A `DataError` whose fix is an option: an `OptionError` (`str(e)`
    names the fields, a binary prints their flags)."""


def _data_error(text):
    """`DataOptionError` of a template naming options as `{name}` (the
    first is the field), else a plain `DataError`."""
    names = [n for _, n, _, _ in string.Formatter().parse(text) if n]
    if not names:
        return DataError(text.replace("{{", "{").replace("}}", "}"))
    return DataOptionError(names[0], text, others=sorted(set(names)))


class PipelineStats:
    """Counters of records read and skipped (tf.Variables on the host).

    Each record is counted as it is read: `invalid` (bytes that fail the
    format check: SOI/EOI markers for TFRecords, a JPEG, PNG, GIF or BMP
    signature for tfds and folder sources), `undecodable` (bytes that pass
    it but do not decode: a truncated or damaged file), `no_logits`
    (without the teacher logits KD needs), `wrong_logits` (teacher logits
    of another width than the model's: counted as without before),
    `bad_label` (a label, less
    `label_offset`, outside 0..num_classes-1: the up-front check reads the
    first records only, and such a label trained on an all-zero target).
    `parsed` counts the records that parse as a `tf.train.Example` (all
    of a tfds or folder source): the others are dropped by the pipeline.
    `skipped` (read, not emitted) is exact once a pass has been consumed;
    during training it also holds the records in flight.
    """

    def __init__(self):
        with tf.init_scope():
            self.read = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.parsed = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.invalid = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.undecodable = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.no_logits = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.wrong_logits = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.bad_label = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.emitted = tf.Variable(0, dtype=tf.int64, trainable=False)
            # The names of the first NAMED unusable records that have one
            # (a folder's file paths, a TFRecord's image/filename), and
            # how many had one; the last slot takes the rest.
            self.named = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.names = tf.Variable(
                [""] * (NAMED + 1), dtype=tf.string, trainable=False
            )

    def counts(self):
        """The counters, each read once: a `StatsCounts` whose numbers
        agree with each other while the pipeline reads ahead."""
        named = int(self.named.numpy())
        names = [n.decode("utf-8", "replace") for n in self.names.numpy()]
        return StatsCounts(
            **{
                f.name: int(getattr(self, f.name).numpy())
                for f in dataclasses.fields(StatsCounts)
                if f.name not in ("named", "names")
            },
            named=named,
            names=tuple(names[: min(named, NAMED)]),
        )

    def note_unusable(self, ok, name):
        """Records `name` (a string scalar) when `ok` is false and `name`
        is not empty; returns an op."""
        known = tf.logical_not(ok) & (tf.strings.length(name) > 0)

        def note():
            i = self.named.assign_add(1) - 1
            slot = tf.minimum(i, NAMED)
            with tf.control_dependencies(
                [self.names.scatter_nd_update([[slot]], [name])]
            ):
                return tf.constant(True)

        return tf.cond(known, note, lambda: tf.constant(False))

    @property
    def skipped(self):
        return self.counts().skipped

    @property
    def unusable(self):
        return self.counts().unusable

    def as_dict(self):
        return self.counts().as_dict()

    def describe(self, finished=False):
        return self.counts().describe(finished)


@dataclasses.dataclass(frozen=True)
class StatsCounts:
    """`PipelineStats` read at one moment (see there for each count)."""

    read: int
    parsed: int
    invalid: int
    undecodable: int
    no_logits: int
    wrong_logits: int
    bad_label: int
    emitted: int
    named: int = 0  # unusable records with a name
    names: tuple = ()  # the first NAMED of them

    @property
    def skipped(self):
        """Read, not emitted (records in flight included)."""
        return self.read - self.emitted

    @property
    def unusable(self):
        """Records found unusable as they were read (exact at any time)."""
        return (
            self.invalid
            + self.undecodable
            + self.no_logits
            + self.wrong_logits
            + self.bad_label
        )

    def as_dict(self):
        return {
            "records_read": self.read,
            "records_skipped": self.skipped,
            "records_not_examples": self.read - self.parsed,
            "records_invalid_jpeg": self.invalid,
            "records_undecodable": self.undecodable,
            "records_without_logits": self.no_logits,
            "records_wrong_logits": self.wrong_logits,
            "records_label_out_of_range": self.bad_label,
        }

    def describe(self, finished=False):
        """'2 not images, 1 not decodable': the non-zero kinds. With
        `finished` (a consumed pass), the records that did not parse as a
        `tf.train.Example` are named, and the others `ignore_errors`
        dropped (a whole TFRecord JPEG that did not decode) count as not
        decodable. Before, a record that was not an Example was counted as
        not decodable."""
        undecodable, not_examples = self.undecodable, 0
        if finished:
            not_examples = self.read - self.parsed
            undecodable += self.skipped - self.unusable - not_examples
        kinds = (
            (
                not_examples,
                "not a tf.train.Example"
                if not_examples == 1
                else "not tf.train.Examples",
            ),
            (
                self.invalid,
                "not an image" if self.invalid == 1 else "not images",
            ),
            (undecodable, "not decodable"),
            (self.no_logits, "without teacher logits"),
            (self.wrong_logits, "with teacher logits of another width"),
            (self.bad_label, "with a label out of range"),
        )
        text = ", ".join(f"{n:,} {what}" for n, what in kinds if n)
        if self.names:  # once each (a training split repeats)
            names = ", ".join(dict.fromkeys(self.names))
            more = self.named > len(self.names)
            text += f"; {'first names' if more else 'names'}: {names}"
        return text


@contextlib.contextmanager
def reraise_data_errors():
    """Turns the pipeline guard's error into a one-line `DataError`."""
    try:
        yield
    except tf.errors.InvalidArgumentError as e:
        text = e.message
        if _DATA_ERROR_TAG not in text:
            raise
        text = text.split(_DATA_ERROR_TAG, 1)[1]
        text = text.split("\n", 1)[0].split("[[", 1)[0]
        text = text.replace("] [", " ").strip(" ]")
        raise _data_error(text) from None


@dataclasses.dataclass(frozen=True)
class InputConfig:
    """What the pipeline reads and how.

    Attributes:
        file_pattern: glob of TFRecord shards, e.g. `/data/train-*`.
        is_training: random crops, shuffling and repetition when True.
        batch_size: global batch size (per worker after sharding).
        num_classes: width of `targets`.
        image_size: train crop side.
        preprocessing_type: eval resize/crop rule (see preprocessing).
        label_offset: subtracted from the stored label (1 maps ImageNet's
            1..1000 records onto 1000 classes; 0 keeps 1001-way labels).
        use_bboxes: sample train crops around stored boxes.
        min_crop_area: smallest train crop, as a fraction of the image area
            (0.05 as the original).
        num_logits: read `image/logit` of this length (KD), else None.
        teacher_temperature: T of softmax(teacher_logits / T).
        mixup_type, mixup_alpha, mixup_mode, label_smoothing: see mixup.
        augmenter: object with `distort(uint8 image)` or None.
        stddev: divide by the RGB stddev (not in the original).
        dtype: image dtype. "uint8" (training only) leaves normalization
            and Mixup to `BatchPostprocess` in the train step: a quarter of
            the bytes, and the input benchmark's fastest configuration.
        shuffle_buffer: records shuffle buffer (10,000 for ImageNet).
        cycle_length: files interleaved at once.
        deterministic: fixed order and seeds (slower).
        seed: base seed of file and record shuffles and of the crops.
        drop_remainder: defaults to `is_training` (eval sees every image).
        cache: cache decoded records in memory (small datasets).
        record_source: None (read `file_pattern` TFRecords) or a callable
            `(input_context, is_training, seed) -> Dataset of (image_bytes,
            label)` or `(image_bytes, label, name)`, e.g. a tfds dataset
            or an image folder (`assemble_tf.data.sources`); labels are
            0-based; a warning names the unusable images by `name`.
        skip_steps: global steps of this (training) pass already run, by
            a run that resumes within an epoch: their records are skipped
            before decoding, and the records after them get the seeds they
            had (the same batches as before, with `deterministic` and no
            unusable records among those skipped).
        max_consecutive_unusable: this many unusable records in a row
            (not an image, or without teacher logits when `num_logits` is
            set) stop the pipeline with a `DataError`.
    """

    file_pattern: str
    is_training: bool
    batch_size: int
    num_classes: int
    image_size: int = 224
    preprocessing_type: str = "imagenet"
    label_offset: int = 0
    use_bboxes: bool = False
    min_crop_area: float = preprocessing.AREA_RANGE[0]
    num_logits: int | None = None
    teacher_temperature: float = 1.0
    mixup_type: int = 0
    mixup_alpha: float = 0.2
    mixup_mode: str = "mixup"
    label_smoothing: float = 0.0
    augmenter: object = None
    stddev: tuple | None = None
    dtype: str = "float32"
    shuffle_buffer: int = 10_000
    cycle_length: int = 20
    deterministic: bool = False
    seed: int = 0
    drop_remainder: bool | None = None
    cache: bool = False
    record_source: object = None
    skip_steps: int = 0
    max_consecutive_unusable: int = 1000


def decode_record(serialized, num_logits=None):
    """Serialized Example -> dict (the Decoder: no image decoding here).

    Never raises on a missing or mis-sized feature: a record without
    `image/logit` of `num_logits` values gets `has_logits` False (and
    `logit_count`, the values it has).
    """
    parsed = tf.io.parse_single_example(
        serialized, schema.feature_spec(num_logits)
    )
    out = {
        "image_bytes": parsed[schema.IMAGE],
        "label": tf.cast(parsed[schema.LABEL], tf.int32),
        "filename": parsed[schema.FILENAME],
        "bboxes": _boxes(parsed),
    }
    if num_logits:
        logits = tf.sparse.to_dense(parsed[schema.LOGIT])
        out["logit_count"] = tf.size(logits)
        out["has_logits"] = tf.equal(out["logit_count"], num_logits)
        out["logits"] = tf.cond(
            out["has_logits"],
            lambda: tf.reshape(logits, [num_logits]),
            lambda: tf.zeros([num_logits]),
        )
    return out


def _boxes(parsed):
    """[N, 4] (ymin, xmin, ymax, xmax) boxes of a record, clipped to
    [0, 1]; none where the four coordinate lists differ in length, and
    without the boxes that hold NaN. The builder writes clipped boxes; a
    record of another tool with a box outside the image made the crop
    sampler fail, and `ignore_errors` dropped the record uncounted."""
    coords = [
        tf.sparse.to_dense(parsed[key])
        for key in (
            schema.BBOX_YMIN,
            schema.BBOX_XMIN,
            schema.BBOX_YMAX,
            schema.BBOX_XMAX,
        )
    ]
    sizes = tf.stack([tf.size(c) for c in coords])
    same = tf.reduce_all(tf.equal(sizes, sizes[0]))
    boxes = tf.cond(
        same,
        lambda: tf.stack(coords, axis=-1),
        lambda: tf.zeros([0, 4], tf.float32),
    )
    finite = tf.reduce_all(tf.math.is_finite(boxes), axis=-1)
    return tf.clip_by_value(tf.boolean_mask(boxes, finite), 0.0, 1.0)


def is_record_image(image_bytes):
    """A TFRecord image the pipelines read: a whole JPEG (`looks_like_jpeg`:
    a cut-off file lacks its end marker) or a PNG, GIF or BMP by signature.
    The rule of `checks` and of `tools.extract_teacher_logits` too (before:
    JPEGs only here, so a PNG record that the up-front check and the
    teacher's logits took was skipped by training and evaluation). Our
    builder re-encodes a JPEG with data after its end marker."""
    other = preprocessing.is_supported_image(image_bytes) & tf.logical_not(
        tf.io.is_jpeg(image_bytes)
    )
    return looks_like_jpeg(image_bytes) | other


def looks_like_jpeg(image_bytes):
    """True when the bytes start with SOI (FFD8) and end with EOI (FFD9).

    A cheap check that never raises: truncated files lose their EOI marker.
    """
    n = tf.strings.length(image_bytes)
    head = tf.strings.substr(image_bytes, 0, 2)
    tail = tf.strings.substr(image_bytes, tf.maximum(n - 2, 0), 2)
    return (n > 4) & tf.equal(head, b"\xff\xd8") & tf.equal(tail, b"\xff\xd9")


def _file_dataset(config, input_context):
    from assemble_tf.data import checks

    files = checks.shard_files(config.file_pattern, others=())
    if not files:
        raise checks.no_records_error(config.file_pattern, others=())
    checks.check_shard_sizes(files)
    checks.check_shard_set(files, config.file_pattern)
    ds = tf.data.Dataset.from_tensor_slices(files)
    if input_context is not None and input_context.num_input_pipelines > 1:
        pipelines = input_context.num_input_pipelines
        _check_shards_per_pipeline(len(files), pipelines, config)
        ds = ds.shard(pipelines, input_context.input_pipeline_id)
    if config.is_training:
        ds = ds.shuffle(len(files), seed=config.seed)
    return ds


def _check_shards_per_pipeline(count, pipelines, config):
    """Each input pipeline (one per worker) reads whole shards, every
    `pipelines`-th one: fewer shards than pipelines is refused, and in
    training a count that `pipelines` does not divide gets a warning (the
    pipelines read other numbers of records, so an epoch repeats some
    images and skips others: 27 of 32 seen, 5 twice, with 3 shards over
    2 pipelines; before: without a word)."""
    fix = (
        f"rebuild the records with a multiple of {pipelines} shards (the "
        "builder's train_shards / validation_shards)"
    )
    if count < pipelines:
        raise DataError(
            f"{config.file_pattern} matches {count} shard(s), fewer than the "
            f"{pipelines} input pipelines (one per worker), which each read "
            f"whole shards: {fix}."
        )
    if config.is_training and count % pipelines:
        import logging

        logging.getLogger(__name__).warning(
            f"{count} shards of {config.file_pattern} over {pipelines} input "
            "pipelines (one per worker), which each read whole shards: they "
            "read other numbers of records, so an epoch sees some images "
            f"twice and others not at all; {fix}."
        )


def _one_hot(label, config):
    return tf.one_hot(label, config.num_classes, dtype=tf.float32)


def build_dataset(config, input_context=None, stats=None):
    """Builds the `tf.data.Dataset` of `(images, batch_dict)`.

    Records (TFRecords or `config.record_source`) -> decode and flag the
    unusable ones -> crop / augment / normalize -> drop unusable records,
    stopping after a long run of them -> batch -> one-hot targets and
    Mixup / CutMix -> prefetch.

    Args:
        config: `InputConfig`.
        input_context: `tf.distribute.InputContext` or None; the batch
            size becomes the per-replica size and files are sharded.
        stats: `PipelineStats` or None, to count skipped records.

    Returns:
        A batched, prefetched dataset (infinite when training).
    """
    batch_size = config.batch_size
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    if config.dtype == "uint8" and not config.is_training:
        raise ValueError(
            "dtype='uint8' is for training pipelines; evaluation returns the "
            "original's normalized float crops."
        )
    if config.is_training and config.mixup_type == 2 and batch_size % 2:
        # Type 2 mixes the two halves of a batch: an odd one lost an image
        # per batch, a batch of 1 gave empty batches forever.
        raise DataOptionError(
            "batch_size",
            "{field}={value} (per replica: {per_replica}) with "
            "{mixup_type}=2, which mixes the two halves of each batch: "
            "make it even.",
            ["mixup_type"],
            value=config.batch_size,
            per_replica=batch_size,
        )
    stats = stats or PipelineStats()
    ds = _records(config, input_context)
    skipped = _records_to_skip(config, input_context)
    if skipped:
        ds = ds.skip(skipped)
    decode = _decoder(config, stats)
    parse = _parser(config, stats)
    guard = _guard(config, stats)
    # One parallel map per record (one stage of threads and buffers less);
    # the index is the record's place in the shuffled stream, so
    # deterministic runs replay the same seeds.
    ds = ds.enumerate(start=skipped)
    ds = ds.map(
        _graph_fn(lambda index, element: parse(index, decode(element))),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=config.deterministic,
    )
    # Images of tfds and folder sources that do not decode are flagged in
    # `parse`; this drops what else fails (e.g. a record that is not an
    # Example): `PipelineStats.skipped` counts it once a pass is consumed.
    ds = ds.ignore_errors()
    ds = ds.filter(_graph_fn(guard))  # sequential: counts runs in record order
    ds = _batches(ds, config, batch_size, stats, skipped)
    options = tf.data.Options()
    options.deterministic = config.deterministic
    options.experimental_optimization.map_parallelization = True
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def _records_to_skip(config, input_context):
    """Records of this pipeline that `config.skip_steps` global steps
    consumed: a global batch (times the Mixup multiplier) per step, split
    over the input pipelines."""
    if not config.skip_steps:
        return 0
    if not config.is_training:
        raise ValueError("skip_steps is for training pipelines.")
    pipelines = input_context.num_input_pipelines if input_context else 1
    multiplier = BatchPostprocess(config).batch_multiplier
    return config.skip_steps * (config.batch_size // pipelines) * multiplier


def _graph_fn(fn):
    """`fn` for `tf.data` without autograph: the pipeline's functions use
    TensorFlow control flow where they need it, and converting them costs
    about a second per trace."""
    return tf.autograph.experimental.do_not_convert(fn)


def _records(config, input_context):
    """The record stream: a `record_source`'s (image bytes, label[, name]) as
    record dicts, or the TFRecord shards interleaved; cached, shuffled and
    repeated as the config says."""
    if config.record_source is not None:
        if config.num_logits:
            raise ValueError(
                "Teacher logits (KD) are read from TFRecords; a tfds or "
                "folder source has none. Set `kd_temperature` to 0."
            )
        ds = config.record_source(
            input_context, config.is_training, config.seed
        )
        ds = ds.map(
            lambda image_bytes, label, *name: {
                "image_bytes": image_bytes,
                "label": tf.cast(label, tf.int32),
                # A folder's file path (`encoded_dataset(with_names=True)`)
                "filename": name[0] if name else tf.constant(""),
                "bboxes": tf.zeros([0, 4], tf.float32),
            },
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    else:
        ds = _file_dataset(config, input_context)
        ds = ds.interleave(
            tf.data.TFRecordDataset,
            cycle_length=config.cycle_length,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=config.deterministic,
        )
    if config.cache:
        ds = ds.cache()
    if config.is_training:
        ds = ds.shuffle(config.shuffle_buffer, seed=config.seed)
        ds = ds.repeat()
    return ds


def _decoder(config, stats):
    """`decode(element) -> record` with `ok` (a usable image, and teacher
    logits when KD needs them), counting what is read and skipped."""

    def decode(element):
        # Counted before the parse, which fails on a record that is not an
        # Example (`ignore_errors` drops it): `read - parsed` counts those.
        read = stats.read.assign_add(1)
        with tf.control_dependencies([read]):
            if config.record_source is not None:
                record = dict(element)
                ok = preprocessing.is_supported_image(record["image_bytes"])
            else:
                record = decode_record(element, config.num_logits)
                ok = is_record_image(record["image_bytes"])
        with tf.control_dependencies([record["label"]]):
            stats.parsed.assign_add(1)
        stats.invalid.assign_add(tf.cast(tf.logical_not(ok), tf.int64))
        if config.num_logits:
            has = record.pop("has_logits")
            some = record.pop("logit_count") > 0
            missing = ok & tf.logical_not(has)
            stats.no_logits.assign_add(
                tf.cast(missing & tf.logical_not(some), tf.int64)
            )
            stats.wrong_logits.assign_add(tf.cast(missing & some, tf.int64))
            ok = ok & has
        label = record["label"] - config.label_offset
        fits = (label >= 0) & (label < config.num_classes)
        stats.bad_label.assign_add(tf.cast(ok & tf.logical_not(fits), tf.int64))
        record["ok"] = ok & fits
        return record

    return decode


def _preprocess(config, record, seed):
    """The train crop (with augmentation) or the eval resize / crop."""
    if config.is_training:
        return preprocessing.preprocess_train(
            record["image_bytes"],
            seed,
            config.image_size,
            record["bboxes"] if config.use_bboxes else None,
            config.augmenter,
            config.dtype,
            config.stddev,
            (config.min_crop_area, 1.0),
        )
    return preprocessing.preprocess_eval(
        record["image_bytes"],
        config.preprocessing_type,
        config.dtype,
        config.stddev,
    )


def _or_flagged(fn, *inputs):
    """`(fn(*inputs), True)`, or `(zeros of its spec, False)` where `fn`
    raises (an image that passes the format check but does not decode).

    A one-element dataset with `ignore_errors` is the one way to catch a
    kernel's error inside a `tf.data` function; without it the record was
    dropped uncounted, and a split of such images hung training (the guard
    never saw them)."""
    inner = (
        tf.data.Dataset.from_tensors(inputs)
        .map(_graph_fn(lambda *x: (fn(*x), tf.constant(True))))
        .ignore_errors()
    )
    spec = inner.element_spec[0]
    fallback = tf.nest.map_structure(
        lambda s: tf.zeros([d or 0 for d in s.shape], s.dtype), spec
    )
    out, ok = (
        inner.concatenate(
            tf.data.Dataset.from_tensors((fallback, tf.constant(False)))
        )
        .take(1)
        .get_single_element()
    )
    # The fallback's unknown dimensions are 0: keep the static shape.
    out = tf.nest.map_structure(
        lambda t, s: tf.ensure_shape(t, s.shape), out, spec
    )
    return out, ok


def _parser(config, stats):
    """`parse(index, record) -> example dict` (images, labels, filenames,
    teacher probabilities, `ok`), counting images that do not decode."""
    # Unusable records flow on (flagged, their image replaced by a tiny
    # valid JPEG: cheaper than a branch) to the guard, which must see them
    # to bound them.
    placeholder = tf.constant(_PLACEHOLDER_JPEG)

    def parse(index, record):
        seed = tf.stack([tf.cast(config.seed, tf.int64), index])
        record = dict(
            record,
            image_bytes=tf.where(
                record["ok"], record["image_bytes"], placeholder
            ),
        )
        if config.record_source is None:
            # Our builder decoded every image it wrote, and a truncated
            # JPEG fails `is_record_image`: what still fails to decode is
            # dropped by ignore_errors (counted at the end of a pass).
            # Flagging costs 20 % of the ImageNet pipeline's speed.
            images, decoded = _preprocess(config, record, seed), True
        else:
            # User files, checked by their signature only.
            images, decoded = _or_flagged(
                functools.partial(_preprocess, config), record, seed
            )
            stats.undecodable.assign_add(
                tf.cast(record["ok"] & tf.logical_not(decoded), tf.int64)
            )
        out = {
            "ok": record["ok"] & decoded,
            "images": images,
            "labels": record["label"] - config.label_offset,
            "filenames": record["filename"],
        }
        if config.num_logits:
            # The same offset as the labels: with 1001 stored logits and
            # label_offset 1 the background logit is dropped.
            logits = record["logits"][
                config.label_offset : config.label_offset + config.num_classes
            ]
            out["teacher_probs"] = tf.nn.softmax(
                logits / config.teacher_temperature
            )
        return out

    return parse


def _guard(config, stats):
    """The filter predicate: keeps usable examples and stops the pipeline
    (an assertion naming the counts) after `max_consecutive_unusable`
    unusable records in a row."""
    limit = config.max_consecutive_unusable
    message = _unusable_message(config, limit)
    with tf.init_scope():
        # Unusable records since the last usable one.
        run = tf.Variable(0, dtype=tf.int64, trainable=False)

    def guard(element):
        ok = element["ok"]
        current = run.assign(tf.where(ok, tf.constant(0, tf.int64), run + 1))
        check = tf.debugging.Assert(
            current < limit,
            [
                message,
                "Of",
                stats.read.read_value(),
                "records read:",
                stats.invalid.read_value(),
                "not images,",
                stats.undecodable.read_value(),
                "not decodable,",
                stats.no_logits.read_value(),
                "without teacher logits,",
                stats.wrong_logits.read_value(),
                "with teacher logits of another width,",
                stats.bad_label.read_value(),
                "with a label out of range.",
            ],
            summarize=10,
        )
        noted = stats.note_unusable(ok, element["filenames"])
        with tf.control_dependencies([check, noted]):
            return tf.identity(ok)

    return guard


def _batches(ds, config, batch_size, stats, skipped=0):
    """Batches of `batch_size` examples (times the Mixup multiplier) as
    `(images, batch dict)`, with one-hot targets, mixed when the config
    mixes (float pipelines; uint8 ones are mixed on the device); `skipped`
    records came before the first."""
    post = BatchPostprocess(config)
    mixer = post if config.dtype != "uint8" and post.active else None
    drop = (
        config.is_training
        if config.drop_remainder is None
        else config.drop_remainder
    )
    ds = ds.batch(
        batch_size * post.batch_multiplier,
        drop_remainder=drop,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=config.deterministic,
    )

    def count(batch):
        batch.pop("ok")  # all true after the filter
        # One op per batch rather than one per image (and 4 KB fewer per
        # image through batching).
        batch["targets"] = _one_hot(batch["labels"], config)
        stats.emitted.assign_add(
            tf.cast(tf.shape(batch["labels"])[0], tf.int64)
        )
        return batch

    ds = ds.map(_graph_fn(count))
    if mixer is None:
        return ds.map(_graph_fn(lambda b: (b.pop("images"), b)))
    mixing_seed = seeds.derive_seed(config.seed, "mixing")
    per_batch = batch_size * post.batch_multiplier
    return ds.enumerate(start=skipped // per_batch).map(
        _graph_fn(
            lambda i, b: mixer(
                b, tf.stack([tf.constant(mixing_seed, tf.int64), i])
            )
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=config.deterministic,
    )


# An 8x8 grey baseline greyscale JPEG (stands in for unusable records' images).
_PLACEHOLDER_JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909"
    "080a0c140d0c0b0b0c1912130f141d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c"
    "30313434341f27393d38323c2e333432ffc0000b080008000801011100ffc4001f000001"
    "0501010101010100000000000000000102030405060708090a0bffc400b5100002010303"
    "020403050504040000017d01020300041105122131410613516107227114328191a10823"
    "42b1c11552d1f02433627282090a161718191a25262728292a3435363738393a43444546"
    "4748494a535455565758595a636465666768696a737475767778797a838485868788898a"
    "92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9ca"
    "d2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda0008010100"
    "003f00f9fe8a28a00fffd9"
)


def _unusable_message(config, limit):
    """The guard's message: what was read, what was wrong, what to do."""
    if config.record_source is None:
        where = config.file_pattern.replace("{", "{{").replace("}", "}}")
    else:
        where = "{source}"
    text = (
        f"{_DATA_ERROR_TAG} {limit:,} records in a row of {where} could not "
        "be used: each was not a decodable image"
    )
    text += (
        f", or had a label outside 0..{config.num_classes - 1} (after "
        f"subtracting the label offset {config.label_offset})"
    )
    if config.num_logits:
        text += (
            f", or had no teacher logits (image/logit of {config.num_logits} "
            "values, needed by knowledge distillation). For KD, add them "
            "with `python -m tools.extract_teacher_logits`; to train "
            "without, set {kd_temperature}=0"
        )
    elif config.record_source is None:
        text += (
            ". Rebuild the records with `python -m "
            "tools.build_imagenet_tfrecords`"
        )
    else:
        text += " (a JPEG, PNG, GIF or BMP file that opens)"
    return text + "."


def build_synthetic_dataset(config, input_context=None):
    """Random images and labels with the element spec of `build_dataset`.

    For benchmarks that must not depend on disk or decoding speed. A uint8
    training config gets, as from `build_dataset`, the batch times the
    Mixup multiplier, unmixed (the train step mixes it: before, a type-1
    step trained on half the synthetic batch and counted all of it); a
    float one the mixed batch.
    """
    batch_size = config.batch_size
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    size = config.image_size
    if not config.is_training:
        size = preprocessing.eval_sizes(config.preprocessing_type)[2]
    in_step = config.dtype == "uint8"
    if in_step:
        batch_size *= BatchPostprocess(config).batch_multiplier
        low, high = 0.0, 255.0
    else:
        low, high = -120.0, 130.0  # mean-subtracted
    images = tf.random.stateless_uniform(
        [batch_size, size, size, 3], [config.seed, 0], low, high
    )
    labels = tf.random.stateless_uniform(
        [batch_size], [config.seed, 1], 0, config.num_classes, tf.int32
    )
    batch = {
        "labels": labels,
        "targets": tf.one_hot(labels, config.num_classes),
        "filenames": tf.fill([batch_size], "synthetic"),
    }
    if config.mixup_type and config.is_training and not in_step:
        batch["lambda"] = tf.ones([batch_size])
    if config.num_logits:
        batch["teacher_probs"] = tf.one_hot(labels, config.num_classes)
    element = (tf.cast(images, config.dtype), batch)
    ds = tf.data.Dataset.from_tensors(element).repeat()
    return ds.prefetch(tf.data.AUTOTUNE)
