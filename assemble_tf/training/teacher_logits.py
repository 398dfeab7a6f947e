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
are kept on rerun unless `overwrite`. One shard's work is
`teacher_shards`; what a rerun keeps of the output folder,
`teacher_resume`.

    options = teacher_logits.TeacherLogitsOptions(
        input_dir="/data/imagenet", output_dir="/data/imagenet_kd",
        teacher_saved_model="/exports/a152/1",
        teacher_preprocessing="imagenet_224_256a")
    report = teacher_logits.extract_teacher_logits(options)  # summary.json
"""

import dataclasses
import os
import sys

import tensorflow as tf

from assemble_tf.data import metadata
from assemble_tf.runs.warm_start import run_config_path
from assemble_tf.training import teacher_resume, teacher_shards, teachers
from official.utils.misc import file_utils, interrupts
from official.utils.misc import progress as progress_lib
from official.utils.misc.validation import (
    MissingPathError,
    OptionError,
    check_creatable,
    split_names,
)

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
        # An empty glob matched the input folder itself (before: "holds ,
        # whose records carry nothing readable"; "has no shards matching
        # ." for an empty list).
        if not split_names("patterns", self.patterns):
            raise OptionError(
                "patterns",
                "{field} is empty: give the shard globs to read, e.g. "
                "train-*,validation-*.",
            )
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
    if not files and not tf.io.gfile.isdir(options.input_dir):
        # Before: "has no shards matching train-*, validation-*".
        raise MissingPathError(
            "input_dir",
            "{field}={path} is not a folder: point it at the folder of the "
            "TFRecord shards.",
            path=options.input_dir,
        )
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
    teacher_resume.refuse_shared_names(files, options)
    teacher = teachers.load_teacher(options)
    width = teacher.num_logits + int(options.prepend_zero)
    base, num_classes = label_space(options, width)
    settings = teacher_resume.shard_settings(options, teacher, width)
    out = options.output_dir
    # One run at a time: what the folder holds is read under the lock (and
    # a failure before the first shard leaves no folder).
    with file_utils.folder_lock(out, "output_dir", _JOB):
        earlier, redo = teacher_resume.check_kept_shards(
            files, options, settings
        )
        # Ctrl-C and SIGTERM say how to go on (before: "Interrupted." or
        # "Terminated." alone).
        resume = (
            "Rerun the same command to resume: the finished shards in "
            f"{out} are kept."
        )
        try:
            with interrupts.sigterm_raises(resume):
                shards, seen = _write_shards(
                    files,
                    teacher,
                    options,
                    range(base, base + num_classes),
                    settings,
                    redo,
                )
        except KeyboardInterrupt:
            raise KeyboardInterrupt(resume) from None
        earlier = {n: {**c, "kept": True} for n, c in earlier.items()}
        shards = dict(sorted({**earlier, **shards}.items()))
        summary = make_summary(options, teacher, base, num_classes, shards)
        _refuse_empty_splits(summary, options)
        write_metadata(options, summary, seen)
        teacher_shards.remove(os.path.join(out, teacher_resume.PROGRESS))
    return summary


_JOB = "tools.extract_teacher_logits run"


def _refuse_empty_splits(summary, options):
    """Refuses a split of which no record has a usable image (before: a
    0-byte shard was left)."""
    empty = [s for s, v in summary["splits"].items() if not v["images"]]
    if empty:
        split = summary["splits"][empty[0]]
        raise ValueError(
            f"No record of the {empty[0]} shards in {options.input_dir} "
            f"has an image that decodes ({split['skipped']:,} left "
            "out): rebuild them with `python -m "
            "tools.build_imagenet_tfrecords`."
        )


def _write_shards(files, teacher, options, labels, settings, redo=()):
    """({shard: {records, skipped, kept}}, {label: (synset, text)});
    `settings` (`teacher_resume.shard_settings`) go into the progress
    file; the shards named in `redo` are extracted again though they
    exist."""
    need_labels = not os.path.isfile(
        os.path.join(options.input_dir, metadata.LABELS)
    )
    progress_path = os.path.join(options.output_dir, teacher_resume.PROGRESS)
    recorded, done = teacher_resume.recorded_runs(options)
    if not teacher_resume.same_settings(recorded, settings):
        done = {}  # another extraction's shards: not this one's progress
    shards, seen = {}, {}
    bar = progress_lib.bar(
        files, desc="shards", unit="shard", progress=options.progress
    )
    for src in bar:
        interrupts.check()  # a SIGTERM or Ctrl-C swallowed on its way
        name = os.path.basename(src)
        dst = os.path.join(options.output_dir, name)
        # The temporary file a killed run left.
        teacher_shards.remove(teacher_shards.temporary_path(dst))
        kept = (
            os.path.exists(dst) and not options.overwrite and name not in redo
        )
        if kept:
            try:
                records, found = teacher_shards.scan_shard(dst, need_labels)
            except (tf.errors.DataLossError, ValueError):
                # A damaged shard of an earlier run: extracted again
                # (before: a traceback).
                kept = False
        identity = teacher_shards.input_identity(src)
        known = done.get(name, {})
        if kept and teacher_resume.input_changed(name, known, identity, bar):
            kept = False
        if kept:
            # Counts of an older run without them: read the input again.
            read = (
                records + known["skipped"]
                if (known.get("records") == records)
                else teacher_shards.count_records(src)
            )
        else:
            read, records, found, left_out = teacher_shards.extract_shard(
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
            bar.write(_left_out_warning(name, read, left_out), file=sys.stderr)
        for label, names in found.items():
            seen.setdefault(label, names)
    return shards, seen


def _left_out_warning(name, read, left_out):
    """The warning line of a shard whose records `left_out` (their
    `image/filename`s) were not written, of `read`."""
    shown = ", ".join(left_out[:5]) + (
        f" and {len(left_out) - 5:,} more" if len(left_out) > 5 else ""
    )
    return (
        f"WARNING: {name}: {len(left_out):,} of {read:,} records left out "
        "(their image is not one the input pipelines read, or does not "
        f"decode): {shown}."
    )


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
