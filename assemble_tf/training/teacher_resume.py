"""What an output folder of `teacher_logits` already holds: which shards a
rerun keeps.

A finished run's `summary.json`, or an interrupted run's
`extract_progress.json`, records the settings that decide a shard's logits
(the teacher, its preprocessing, `prepend_zero`, the width) and, per shard,
its counts and its input's identity (size and modification time). A rerun
keeps the shards written with the same settings from an unchanged input,
refuses other settings without `overwrite`, and refuses files it cannot
account for.
"""

import json
import os
import re
import sys

import tensorflow as tf

from assemble_tf.data import metadata, schema
from assemble_tf.data.builder.inputs import listing
from assemble_tf.training.teacher_shards import input_identity, remove
from official.utils.misc.validation import (
    OptionError,
)

_SHARD_NAME = re.compile(r"-\d{5}-of-\d{5}$")  # the builder's shard names


# Per finished shard of an unfinished run: records written and skipped (a
# rerun keeps the shard and reads its counts here, or in the summary.json
# of a finished run). Removed when summary.json is written; training
# refuses a folder that holds it.
PROGRESS = metadata.EXTRACT_PROGRESS


def metadata_path(options):
    """The output folder's summary.json."""
    return os.path.join(options.output_dir, metadata.SUMMARY)


def shard_settings(options, teacher, width):
    """What decides a shard's logits: kept shards must share it (as JSON
    stores it: lists for tuples)."""
    settings = {
        "teacher": dict(teacher.source),
        "preprocessing": options.teacher_preprocessing,
        "prepend_zero": options.prepend_zero,
        "num_logits": width,
    }
    return json.loads(json.dumps(settings))


def recorded_runs(options):
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


def same_settings(recorded, settings):
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


def refuse_shared_names(files, options):
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


def check_kept_shards(files, options, settings):
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
    recorded, written = recorded_runs(options)
    differs = recorded is not None and not same_settings(recorded, settings)
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
            remove(os.path.join(options.output_dir, name))
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


def input_changed(name, known, identity, bar):
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
