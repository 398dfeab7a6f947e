"""Teacher logits (`image/logit`) written into TFRecord shards, for KD.

Knowledge distillation (Hinton et al. 2015,
https://arxiv.org/abs/1503.02531) as Assemble-ResNet trains it (Lee et al.
2020, clovaai/assembled-cnn): the teacher's logits are stored in the
records (`image/logit`; the original `kd/extract_embeddings.py` computed
AmoebaNet / EfficientNet logits offline on center crops), so KD training
(`kd_temperature` > 0) needs no teacher at run time. This is the work of
`tools.extract_teacher_logits`: the teacher runs once over every record
with eval preprocessing (no augmentation) and each shard is written again,
record for record, with `image/logit` added; then the output folder gets
`labels.txt` and `summary.json` (`assemble_tf.data.metadata`), so training
on it takes the class count from the data like on any folder of ours.

The teacher is a training run, a preset with weights, or a SavedModel,
loaded by `assemble_tf.training.teachers` (which signature of a SavedModel
is called, and what identifies the teacher on rerun). The logits width must fit
the input folder's classes (its `labels.txt` / `summary.json`), with
`prepend_zero` adding the 0 background logit of 1000-class teachers for
the 1001-way original format. Shards are written under a hidden temporary
name and renamed when complete: a failure leaves no partial file (and,
when it comes before the first shard, no output folder); finished shards
are kept on rerun unless `overwrite`.

    options = teacher_logits.TeacherLogitsOptions(
        input_dir="/data/imagenet", output_dir="/data/imagenet_kd",
        teacher_saved_model="/exports/a152/1",
        teacher_preprocessing="imagenet_224_256a")
    report = teacher_logits.extract_teacher_logits(options)  # summary.json
"""

import collections
import dataclasses
import json
import os
import re
import sys

import numpy as np
import tensorflow as tf

from assemble_tf.data import metadata, schema
from assemble_tf.data.builder.inputs import listing
from assemble_tf.runs.warm_start import run_config_path
from assemble_tf.training import teachers
from official.utils.misc import file_utils
from official.utils.misc.validation import (
    MissingPathError,
    OptionError,
    check_creatable,
)

TEMPORARY = ".{name}.tmp"  # a shard being written
_SHARD_NAME = re.compile(r"-\d{5}-of-\d{5}$")  # the builder's shard names
# Per finished shard of an unfinished run: records written and skipped (a
# rerun keeps the shard and reads its counts here, or in the summary.json
# of a finished run). Removed when summary.json is written; training
# refuses a folder that holds it.
PROGRESS = metadata.EXTRACT_PROGRESS


_DEFAULT_NUM_CLASSES = 1001  # the original's ImageNet heads


@dataclasses.dataclass(frozen=True)
class TeacherLogitsOptions:
    """What to extract; field names are `tools.extract_teacher_logits`'s
    flags.

    Attributes:
        input_dir: folder of TFRecord shards (and, for our folders, their
            labels.txt / summary.json).
        output_dir: where the new shards go (not `input_dir`).
        patterns: shard globs in `input_dir`.
        teacher_preset: the teacher's preset (with `teacher_weights`).
        teacher_weights: .weights.h5 file, checkpoint prefix or run folder
            of the preset.
        teacher_num_classes: logits of the preset's model.
        teacher_overrides: `build_model` arguments of the preset's model.
        teacher_saved_model: a SavedModel teacher (instead of a preset).
        teacher_preprocessing: the eval resize / crop the teacher takes;
            None: a training run's own (its config.json), a preset's
            eval preprocessing, a SavedModel's own (its
            assets/preprocessing.txt, written by tools.export_saved_model),
            else "imagenet".
        prepend_zero: prepend a 0 background logit (1000-class teachers for
            the 1001-way original format, labels stored 1..1000).
        batch_size: images per teacher call.
        overwrite: redo shards that already exist in `output_dir`.
        progress: show a progress bar (on stderr).
    """

    input_dir: str
    output_dir: str
    patterns: tuple = ("train-*", "validation-*")
    teacher_preset: str | None = None
    teacher_weights: str | None = None
    teacher_num_classes: int = _DEFAULT_NUM_CLASSES
    teacher_overrides: dict = dataclasses.field(default_factory=dict)
    teacher_saved_model: str | None = None
    teacher_preprocessing: str | None = None
    prepend_zero: bool = False
    batch_size: int = 64
    overwrite: bool = False
    progress: bool = True

    def validate(self):
        """Raises OptionError naming the first missing or bad option."""
        for name in ("input_dir", "output_dir"):
            if not getattr(self, name):
                raise OptionError(name, "{field} is required.")
        if os.path.realpath(self.input_dir) == os.path.realpath(
            self.output_dir
        ):  # a link to the input folder too: its shards were rewritten
            raise OptionError(
                "output_dir", "{field} must differ from the input folder."
            )
        # Before: a bare "[Errno 17] File exists" once the teacher loaded.
        check_creatable(self, folders=["output_dir"])
        if self.teacher_saved_model and self.teacher_preset:
            raise OptionError(
                "teacher_saved_model",
                "{field} is a whole teacher: leave the preset out.",
            )
        if self.teacher_saved_model and self.teacher_weights:
            # Before: the weights were dropped without a word.
            raise OptionError(
                "teacher_saved_model",
                "{field} and {teacher_weights} each name a teacher: give one.",
                ["teacher_weights"],
            )
        if "num_classes" in self.teacher_overrides:
            # Before: replaced by teacher_num_classes without a word.
            raise OptionError(
                "teacher_overrides",
                "{field} sets num_classes={value}: pass it as "
                "{teacher_num_classes}={value}.",
                ["teacher_num_classes"],
                value=self.teacher_overrides["num_classes"],
            )
        if not self.teacher_saved_model:
            self._validate_preset()
        for name in ("batch_size", "teacher_num_classes"):
            if getattr(self, name) < 1:
                raise OptionError(name, "{field} must be at least 1.")
        teachers.crop_size(self.resolved())

    def resolved(self):
        """These options with `teacher_preprocessing` filled in: a run's
        own eval preprocessing (before: "imagenet", 224-px crops, for a
        32-px run), a preset's, an export's (before: "imagenet" for any),
        else "imagenet"."""
        if self.teacher_preprocessing:
            return self
        if self.teacher_saved_model:
            from assemble_tf.export import saved_model

            path = self.teacher_saved_model
            kind = saved_model.saved_preprocessing(path) or "imagenet"
        elif self.teacher_preset:
            from assemble_tf import presets

            try:
                preset = presets.get(self.teacher_preset)
            except OptionError as e:  # (before: named `preset`, no flag)
                raise e.renamed({"preset": "teacher_preset"}) from None
            kind = preset.eval_preprocessing
        else:
            from assemble_tf import config as config_lib

            path = run_config_path(self.teacher_weights)
            config = config_lib.ExperimentConfig.from_json(path)
            kind = config.data.eval_preprocessing
        return dataclasses.replace(self, teacher_preprocessing=kind)

    def _validate_preset(self):
        """A preset teacher needs both its name and its weights; a run
        folder (its config.json) needs neither the preset nor its build
        options."""
        if not self.teacher_preset and not self.teacher_weights:
            raise OptionError(
                "teacher_saved_model",
                "Name the teacher: {field}=<SavedModel folder>, a training "
                "run ({teacher_weights}=<model_dir>), or a preset with its "
                "weights ({teacher_preset}, {teacher_weights}).",
                ["teacher_weights", "teacher_preset"],
            )
        weights = self.teacher_weights
        if (
            weights
            and "://" not in weights
            and not os.path.exists(weights)
            and not tf.io.gfile.glob(weights + ".*")  # a checkpoint prefix
        ):
            # Before: "teacher_preset is required with teacher_weights".
            raise MissingPathError(
                "teacher_weights",
                "{field}={path} does not exist: a .weights.h5 file, a "
                "checkpoint prefix or a training run's model_dir.",
                path=weights,
            )
        if weights and os.path.isfile(os.path.join(weights, "saved_model.pb")):
            # Checked before the preset: "teacher_preset is required" sent
            # the user the wrong way.
            raise teachers.saved_model_as_weights(weights)
        if (
            weights
            and not self.teacher_preset
            and os.path.isdir(weights)
            and not run_config_path(weights)
        ):
            raise OptionError(
                "teacher_weights",
                "{field}={path} is a folder, but neither a training run "
                "(no config.json) nor a SavedModel (no saved_model.pb): pass "
                "a run's model_dir, a SavedModel as {teacher_saved_model}, "
                "or a .weights.h5 with {teacher_preset}.",
                ["teacher_saved_model", "teacher_preset"],
                path=weights,
            )
        if self._validate_run_teacher():
            return
        for name, other in (
            ("teacher_weights", "teacher_preset"),
            ("teacher_preset", "teacher_weights"),
        ):
            if not getattr(self, name):
                # (before: "--teacher_weights is required with
                # teacher_preset", the other without its dashes)
                template = "{field} is required with {" + other + "}."
                raise OptionError(name, template, [other])

    def _validate_run_teacher(self):
        """A training run's folder names its own model: no preset, no
        build options beside it. Returns whether the teacher is a run."""
        weights = self.teacher_weights
        if (
            self.teacher_preset
            and weights
            and os.path.isdir(weights)
            and run_config_path(weights)
        ):
            # Before: the preset was built and the run's checkpoint did not
            # fit it ("1001 classes, 180 variables missing").
            raise OptionError(
                "teacher_preset",
                "{teacher_weights}={path} is a training run, built from its "
                "config.json: leave {field} out.",
                ["teacher_weights"],
                path=weights,
            )
        if not self.teacher_preset and run_config_path(self.teacher_weights):
            given = [
                name
                for name, default in (
                    ("teacher_overrides", {}),
                    ("teacher_num_classes", _DEFAULT_NUM_CLASSES),
                )
                if getattr(self, name) != default
            ]
            if given:  # teacher_num_classes: before, ignored
                raise OptionError(
                    given[0],
                    "{field} builds a {teacher_preset}; the run "
                    "{teacher_weights}={path} is built from its config.json: "
                    "leave {field} out.",
                    ["teacher_preset", "teacher_weights"],
                    path=self.teacher_weights,
                )
            return True
        return False


def find_shards(options):
    """The input shards: every match of `options.patterns`, in order.

    Raises:
        OptionError: nothing matches (names `input_dir`).
    """
    files = []
    for pattern in options.patterns:
        found = tf.io.gfile.glob(os.path.join(options.input_dir, pattern))
        files += sorted(found)
    if not files:
        raise OptionError(
            "input_dir",
            "{field}={path} has no shards matching {patterns}.",
            path=options.input_dir,
            patterns=", ".join(options.patterns),
        )
    return list(dict.fromkeys(files))


def label_space(options, num_logits):
    """(label base, class count) the output folder declares.

    From the input folder's labels.txt / summary.json, whose classes the
    stored logits must cover (base + classes = `num_logits`); without them
    from the logits: stored from 1 with `prepend_zero` (0 is the
    background), else from 0.

    Raises:
        OptionError: the logits do not fit the input folder's classes.
    """
    info = metadata.dataset_info(options.input_dir)
    if info is None:
        base = int(options.prepend_zero)
        return base, num_logits - base
    need = info.label_base + info.num_classes
    if num_logits == need:
        return info.label_base, info.num_classes
    toggled = num_logits + (-1 if options.prepend_zero else 1)
    if toggled == need and (options.prepend_zero or info.label_base == 1):
        # A background logit to prepend only where labels start at 1
        # (before: advised on 0-based data, where it shifted the teacher's
        # class i onto the data's class i + 1).
        field = "prepend_zero"
        fix = "leave {field} out" if options.prepend_zero else "pass {field}"
    elif options.teacher_saved_model:
        field, fix = "teacher_saved_model", "{field} has other classes"
    elif options.teacher_weights and os.path.isdir(options.teacher_weights):
        # A run's head is its own (before: the advice named
        # teacher_num_classes, which a run's config.json overrides).
        field = "teacher_weights"
        fix = (
            "{field} is a training run with a {width}-way head: use a "
            "teacher trained on these classes"
        )
    else:
        field = "teacher_num_classes"
        fix = (
            "the logits must come from a teacher of these {classes} "
            "classes ({field}={classes}, with weights trained on them)"
        )
    raise OptionError(
        field,
        "The teacher's logits are {width} wide, but {source} lists {n} "
        "classes stored as {low}..{high}, which need {need}: " + fix + ".",
        classes=need - int(options.prepend_zero),
        width=num_logits,
        source=info.source,
        n=info.num_classes,
        low=info.label_base,
        high=need - 1,
        need=need,
    )


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
    _remove(os.path.join(os.path.dirname(dst), metadata.SUMMARY))
    tmp = temporary_path(dst)
    read = count_records(src)
    written, seen, names = 0, {}, collections.Counter()
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for serialized, images in _batches(src, options):
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
        _remove(tmp)
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
    left = collections.Counter(written)
    out = []
    for raw in tf.data.TFRecordDataset(src).as_numpy_iterator():
        name = _filename(tf.train.Example.FromString(raw))
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
        raise _label_error(label, labels, path, options)
    if label not in seen:
        seen[label] = tuple(
            _text(feature, key) for key in (schema.SYNSET, schema.TEXT)
        )


def _label_error(label, labels, path, options):
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
        "labels {low}..{high}; use a teacher of this data's classes.",
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


def metadata_path(options):
    """The output folder's summary.json."""
    return os.path.join(options.output_dir, metadata.SUMMARY)


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


def _remove(path):
    if os.path.exists(path):
        os.remove(path)


def extract_teacher_logits(options):
    """Writes every shard with teacher logits, then labels.txt and
    summary.json; returns the summary.

    Raises:
        OptionError: a bad option or teacher (before the output folder is
            made), or a record label the logits do not cover.
    """
    options.validate()
    options = options.resolved()
    files = find_shards(options)
    _refuse_shared_names(files, options)
    teacher = teachers.load_teacher(options)
    width = teacher.num_logits + int(options.prepend_zero)
    base, num_classes = label_space(options, width)
    settings = _settings(options, teacher, width)
    earlier, redo = _check_kept_shards(files, options, settings)
    out = options.output_dir
    created = not os.path.exists(out)
    os.makedirs(out, exist_ok=True)
    try:
        shards, seen = _write_shards(
            files,
            teacher,
            options,
            range(base, base + num_classes),
            settings,
            redo,
        )
        earlier = {n: {**c, "kept": True} for n, c in earlier.items()}
        shards = dict(sorted({**earlier, **shards}.items()))
        summary = make_summary(options, teacher, base, num_classes, shards)
        empty = [s for s, v in summary["splits"].items() if not v["images"]]
        if empty:
            split = summary["splits"][empty[0]]
            raise ValueError(
                f"No record of the {empty[0]} shards in {options.input_dir} "
                f"has an image that decodes ({split['skipped']:,} left "
                "out): rebuild them with `python -m "
                "tools.build_imagenet_tfrecords`."
            )
        write_metadata(options, summary, seen)
        _remove(os.path.join(out, PROGRESS))
    except BaseException:
        if created and not os.listdir(out):
            os.rmdir(out)
        raise
    return summary


def _settings(options, teacher, width):
    """What decides a shard's logits: kept shards must share it (as JSON
    stores it: lists for tuples)."""
    settings = {
        "teacher": dict(teacher.source),
        "preprocessing": options.teacher_preprocessing,
        "prepend_zero": options.prepend_zero,
        "num_logits": width,
    }
    return json.loads(json.dumps(settings))


def _recorded(options):
    """(settings, {shard: counts}) of the runs that wrote the output
    folder: its summary.json, then its progress file (newer); settings
    None when neither says."""
    settings, shards = None, {}
    path = metadata_path(options)
    if os.path.isfile(path):
        with open(path) as f:
            summary = json.load(f)
        shards.update(summary.get("shards", {}))
        teacher = dict(summary.get("teacher", {}))
        if teacher:
            settings = {
                "preprocessing": teacher.pop("preprocessing", None),
                "prepend_zero": teacher.pop("prepend_zero", None),
                "num_logits": summary.get("num_logits"),
            }
            teacher.pop("num_logits", None)  # the teacher's, not the width
            settings["teacher"] = teacher
    progress = os.path.join(options.output_dir, PROGRESS)
    if os.path.isfile(progress):
        with open(progress) as f:
            found = json.load(f)
        if "settings" not in found:  # written before settings were
            found = {"shards": found}
        if found.get("settings", settings) != settings:
            # An extraction of other settings (an interrupted overwrite)
            # wrote the progress: the summary's shards are not its own.
            shards = {}
        settings = found.get("settings", settings)
        shards.update(found["shards"])
    return settings, shards


def _same_settings(recorded, settings):
    """`recorded == settings`, a record from before the weights' digest
    compared without it."""
    if recorded is None:
        return False
    if "sha256" not in (recorded.get("teacher") or {}):
        teacher = dict(settings["teacher"])
        for key in ("sha256", "checkpoint"):
            teacher.pop(key, None)
        settings = {**settings, "teacher": teacher}
    return recorded == settings


def _refuse_shared_names(files, options):
    """Shards are written under their file names: two inputs of one name
    (a/train-0 and b/train-0) wrote one output, the other dropped."""
    first = {}
    for path in files:
        name = os.path.basename(path)
        if name in first:
            raise OptionError(
                "patterns",
                "{field} matches {a} and {b}, which share a file name: the "
                "output keeps one shard per name. Extract each folder into "
                "its own {output_dir}.",
                ["output_dir"],
                a=first[name],
                b=path,
            )
        first[name] = path


def _check_kept_shards(files, options, settings):
    """A rerun keeps the shards already written: only those of the same
    teacher and settings, holding logits of this width (before: any file
    of the name was kept, e.g. the input's own shards without logits, or
    those of another teacher weights, while the summary named this one).
    Shards an earlier run wrote outside this run's `patterns` stay part of
    the folder (and of its summary) when their settings are these.

    Returns:
        ({shard: counts} of the earlier shards outside `files` (still in
        the folder, same settings), {shards of `files` to extract again:
        there, but listed by no record of these settings}).

    Raises:
        OptionError: (field `output_dir`) naming the shard or the settings
            that differ, and `overwrite`; (field `patterns`) earlier shards
            of other settings that this run would not replace.
    """
    out = options.output_dir
    names = {os.path.basename(src) for src in files}
    recorded, written = _recorded(options)
    differs = recorded is not None and not _same_settings(recorded, settings)
    if recorded is not None and not differs:
        settings = recorded  # compared as recorded (the digest, or not)
    _refuse_unlisted(options, names, recorded, written, settings, differs)
    others = {
        name: counts
        for name, counts in sorted(written.items())
        if name not in names and os.path.exists(os.path.join(out, name))
    }
    for name in _stale(options, others):
        del others[name]
    kept = [n for n in sorted(names) if os.path.exists(os.path.join(out, n))]
    if options.overwrite or not kept:
        return others, set()
    if differs:
        raise OptionError(
            "output_dir",
            "{field}={path} holds shards extracted with other settings "
            "({diffs}): pass {overwrite} to extract every shard again, or "
            "pick another {field}.",
            ["overwrite"],
            path=out,
            diffs="; ".join(_differences(recorded, settings)),
        )
    if recorded is None:
        redo = set()
    else:
        # No record of these settings lists them (an interrupted overwrite
        # left the earlier teacher's): extracted again (before: kept, and
        # named as this teacher's).
        redo = {name for name in kept if name not in written}
    for name in sorted(set(kept) - redo):
        _check_width(options, name, name in written, settings["num_logits"])
    return others, redo


def _stale(options, others):
    """The earlier shards (`others`: outside this run's patterns) whose
    input shard is gone or has changed since: removed with `overwrite`,
    else refused (before: kept and counted, so a dataset rebuilt with 3
    train shards instead of 2 trained on every image twice)."""
    reasons = {}
    for name, counts in others.items():
        src = os.path.join(options.input_dir, name)
        if not tf.io.gfile.exists(src):
            reasons[name] = "its input shard is gone"
            continue
        identity = input_identity(src)
        if counts.get("input", identity) != identity:
            reasons[name] = "its input shard changed"
    if not reasons:
        return []
    names = list(reasons)
    stale = [f"{name} ({why})" for name, why in reasons.items()]
    if options.overwrite:
        for name in names:
            _remove(os.path.join(options.output_dir, name))
        print(
            f"Removed {len(names)} shard(s) extracted from input shards "
            f"that are gone or have changed since: {listing(stale)}.",
            file=sys.stderr,
        )
        return names
    raise OptionError(
        "output_dir",
        "{field}={path} holds shards extracted from input shards that are "
        "gone or have changed since: {stale}. Pass {overwrite} to remove "
        "them (and extract what {patterns} matches), or pick another "
        "{field}.",
        ["overwrite", "patterns"],
        path=options.output_dir,
        stale=listing(stale),
    )


def _refuse_unlisted(options, names, recorded, written, settings, differs):
    """Refuses shards outside this run (`names`) that no record of these
    settings lists: an interrupted overwrite left the earlier teacher's,
    and they cannot be kept beside this one's (before: kept, and
    summary.json counted this run's only: train read half-length
    epochs)."""
    out = options.output_dir
    if recorded is None or not os.path.isdir(out):
        return
    unlisted = sorted(
        name
        for name in os.listdir(out)
        if _SHARD_NAME.search(name)
        and name not in names
        and (differs or name not in written)
    )
    if not unlisted:
        return
    shards = ", ".join(unlisted[:3]) + (", ..." if len(unlisted) > 3 else "")
    if differs:
        raise OptionError(
            "patterns",
            "{output_dir}={path} holds {shards} of other settings ({diffs}), "
            "which {field} does not cover: the folder would hold logits of "
            "both. Extract those too (widen {field}, with {overwrite}), or "
            "pick another {output_dir}.",
            ["output_dir", "overwrite"],
            path=out,
            shards=shards,
            diffs="; ".join(_differences(recorded, settings)),
        )
    raise OptionError(
        "patterns",
        "{output_dir}={path} holds {shards}, which no record lists as "
        "written with these settings and which {field} does not cover: "
        "extract those too (widen {field}), or pick another {output_dir}.",
        ["output_dir"],
        path=out,
        shards=shards,
    )


def _check_width(options, name, listed, num_logits):
    """Refuses a kept shard whose records carry no logits or another
    width: not written by this extraction (a damaged or empty shard that
    a record lists is extracted again)."""
    width = _first_logit_width(os.path.join(options.output_dir, name))
    if width in ("damaged", "empty") and listed:
        return
    if width == num_logits:
        return
    found = {None: "no teacher logits", "empty": "no records"}.get(
        width, "nothing readable"
    )
    raise OptionError(
        "output_dir",
        "{field}={path} holds {name}, whose records carry {found} (this "
        "teacher writes {width}): it was not written by this extraction. "
        "Pass {overwrite} to extract it again, or pick another {field}.",
        ["overwrite"],
        path=options.output_dir,
        name=name,
        found=found
        if width in (None, "empty", "damaged")
        else f"{width} logits",
        width=num_logits,
    )


def _differences(recorded, settings):
    """["key 'old' -> 'new'"] of the settings that differ; the teacher's
    by its own keys (teacher.sha256: the weights' content changed)."""
    diffs = []
    for key, value in settings.items():
        before = recorded.get(key)
        if before == value:
            continue
        if isinstance(value, dict) and isinstance(before, dict):
            diffs += [
                f"{key}.{k} {before.get(k)!r} -> {value.get(k)!r}"
                for k in sorted(set(before) | set(value))
                if before.get(k) != value.get(k)
            ]
        else:
            diffs.append(f"{key} {before!r} -> {value!r}")
    return diffs


def _first_logit_width(path):
    """The `image/logit` length of the first record of `path`: None for
    none, "empty" for a shard without records (every record of its input
    was left out), "damaged" for one that does not read (extracted
    again)."""
    try:
        for raw in tf.data.TFRecordDataset(path).take(1):
            feature = tf.train.Example.FromString(raw.numpy()).features.feature
            if schema.LOGIT not in feature:
                return None
            return len(feature[schema.LOGIT].float_list.value)
    except (tf.errors.OpError, ValueError):
        return "damaged"
    return "empty"


def _write_shards(files, teacher, options, labels, settings, redo=()):
    """({shard: {records, skipped, kept}}, {label: (synset, text)});
    `settings` (`_settings`) go into the progress file; the shards named
    in `redo` are extracted again though they exist."""
    from tqdm import tqdm

    need_labels = not os.path.isfile(
        os.path.join(options.input_dir, metadata.LABELS)
    )
    progress_path = os.path.join(options.output_dir, PROGRESS)
    recorded, done = _recorded(options)
    if not _same_settings(recorded, settings):
        done = {}  # another extraction's shards: not this one's progress
    shards, seen = {}, {}
    bar = tqdm(
        files,
        desc="shards",
        unit="shard",
        file=sys.stderr,
        disable=not options.progress,
    )
    for src in bar:
        name = os.path.basename(src)
        dst = os.path.join(options.output_dir, name)
        _remove(temporary_path(dst))  # left by a killed run
        kept = (
            os.path.exists(dst) and not options.overwrite and name not in redo
        )
        if kept:
            try:
                records, found = scan_shard(dst, need_labels)
            except (tf.errors.DataLossError, ValueError):
                # A damaged shard of an earlier run: extracted again
                # (before: a traceback).
                kept = False
        identity = input_identity(src)
        known = done.get(name, {})
        if kept and _input_changed(name, known, identity, bar):
            kept = False
        if kept:
            # Counts of an older run without them: read the input again.
            read = (
                records + known["skipped"]
                if (known.get("records") == records)
                else count_records(src)
            )
        else:
            read, records, found, left_out = extract_shard(
                src, dst, teacher, options, labels
            )
            done[name] = {
                "records": records,
                "skipped": read - records,
                "left_out": left_out,
                "input": identity,
            }
            file_utils.atomic_write_json(
                progress_path, {"settings": settings, "shards": done}
            )
        shards[name] = {
            "records": records,
            "skipped": read - records,
            "input": identity,
        }
        if done.get(name, {}).get("left_out"):
            shards[name]["left_out"] = done[name]["left_out"]
        shards[name]["kept"] = kept
        if read > records and not kept:
            shown = ", ".join(left_out[:5]) + (
                f" and {len(left_out) - 5:,} more" if len(left_out) > 5 else ""
            )
            bar.write(
                f"WARNING: {name}: {read - records:,} of {read:,} records "
                "left out (their image is not one the input pipelines "
                f"read, or does not decode): {shown}.",
                file=sys.stderr,
            )
        for label, names in found.items():
            seen.setdefault(label, names)
    return shards, seen


def _input_changed(name, known, identity, bar):
    """Whether shard `name`'s input was rebuilt since its extraction
    (`known`: its record; before: its old logits and images were kept,
    and counted); said on `bar`."""
    if known.get("input", identity) == identity:
        return False
    bar.write(
        f"{name}: the input shard changed since it was extracted (size or "
        "modification time): extracting it again.",
        file=sys.stderr,
    )
    return True


def make_summary(options, teacher, base, num_classes, shards):
    """The output folder's summary.json: the builder's class keys
    (`num_classes`, `label_offset` = stored label of the first class),
    per split the images and `num_logits`, the teacher and every shard."""
    width = teacher.num_logits + int(options.prepend_zero)
    splits = {}
    for name, shard in shards.items():
        split = splits.setdefault(
            name.split("-")[0],
            {"images": 0, "shards": 0, "skipped": 0, "num_logits": width},
        )
        split["images"] += shard["records"]
        split["shards"] += 1
        split["skipped"] += shard["skipped"]
    teacher_info = dict(
        teacher.source,
        num_logits=teacher.num_logits,
        preprocessing=options.teacher_preprocessing,
        prepend_zero=options.prepend_zero,
    )
    return {
        "output_dir": os.path.abspath(options.output_dir),
        "input_dir": os.path.abspath(options.input_dir),
        "num_classes": num_classes,
        "label_offset": base,
        "num_logits": width,
        "teacher": teacher_info,
        "splits": splits,
        "skipped_records": sum(s["skipped"] for s in shards.values()),
        "shards": shards,
    }


def write_metadata(options, summary, seen):
    """Writes labels.txt (the input's, else one row per class with the
    synset and text its records hold) and summary.json, atomically."""
    out = options.output_dir
    labels = os.path.join(options.input_dir, metadata.LABELS)
    if os.path.isfile(labels):
        with open(labels, "rb") as f:
            file_utils.atomic_write(
                os.path.join(out, metadata.LABELS), f.read()
            )
    else:
        # The classes an earlier run (other `patterns`) saw stay named.
        path = os.path.join(out, metadata.LABELS)
        earlier = {}
        if os.path.isfile(path):
            earlier = {
                label: (wnid, text)
                for label, wnid, text in metadata.read_labels(path)
                if wnid or text
            }
        base = summary["label_offset"]
        rows = [
            (label, *seen.get(label, earlier.get(label, ("", ""))))
            for label in range(base, base + summary["num_classes"])
        ]
        metadata.write_labels(path, rows)
    file_utils.atomic_write_json(
        os.path.join(out, metadata.SUMMARY), summary, indent=1
    )


def console_line(summary):
    """The one-line report of `tools.extract_teacher_logits`."""
    keys = ("output_dir", "num_classes", "label_offset", "num_logits")
    line = {k: summary[k] for k in keys}
    line["shards"] = len(summary["shards"])
    # A rerun's kept shards, on the console too (before: only in
    # summary.json, and a resumed run said nothing of them).
    line["kept_shards"] = sum(s["kept"] for s in summary["shards"].values())
    line["images"] = sum(s["images"] for s in summary["splits"].values())
    line["skipped_records"] = summary["skipped_records"]
    return line
