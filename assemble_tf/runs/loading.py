"""Where a trained model comes from: a run's model_dir or preset + weights.

Shared by the libraries of the evaluation binaries
(`assemble_tf.evaluation.run` of `tools.evaluate`,
`assemble_tf.robustness.run` of `tools.eval_robustness`,
`assemble_tf.retrieval.embed` of `tools.eval_retrieval`): a training run is
its `config.json` plus a checkpoint (latest, best or an explicit prefix);
an imported original checkpoint is a preset plus a `.weights.h5` file. A
missing source is an `OptionError` naming the options (a binary prints
their flags).
"""

import contextlib
import dataclasses
import os

from assemble_tf import config as config_lib
from assemble_tf.runs import checkpoints
from official.utils.misc import file_utils
from official.utils.misc.validation import MissingPathError, OptionError


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelSource:
    """Where the model comes from: the fields every evaluation, export and
    retrieval options object starts with (their binaries' shared flags).

    Attributes:
        model_dir: a training run (config.json and checkpoints/).
        checkpoint: with `model_dir`: "latest" (default), "best" or a
            checkpoint prefix.
        preset: without `model_dir`: the preset `weights` belong to.
        weights: a .weights.h5 file; with `model_dir` it replaces the
            run's checkpoint.
        num_classes: logits of `preset`'s model (default the preset's).
        model_overrides: `build_model` arguments replacing the config's (a
            dict or a JSON object's text).
    """

    model_dir: str | None = None
    checkpoint: str | None = None
    preset: str | None = None
    weights: str | None = None
    num_classes: int | None = None
    model_overrides: str | dict | None = None

    def resolve_source(self, **kwargs):
        """`resolve` of this source (its model overrides parsed);
        `kwargs` are `resolve`'s other arguments (`output_dir`, `data`,
        `train`, `needs_data`)."""
        return resolve(
            model_dir=self.model_dir,
            checkpoint=self.checkpoint,
            preset=self.preset,
            weights=self.weights,
            model=config_lib.parse_model_overrides(self.model_overrides),
            **kwargs,
        )


def refuse_num_classes_with_run(model_dir, num_classes, overrides):
    """A run's head width is its config.json's: `num_classes` (or one in
    the model `overrides`) with `model_dir` is an error naming them
    (tools.export_saved_model ignored it, silently)."""
    if model_dir and (num_classes or "num_classes" in (overrides or {})):
        raise OptionError(
            "num_classes",
            "{field} comes from the run's config.json with {model_dir}; "
            "drop it (or num_classes in {model_overrides}).",
            ["model_dir", "model_overrides"],
        )


WEIGHTS_SUFFIXES = (".weights.h5", ".h5", ".keras")


def weights_results_dir(weights, job):
    """The default results folder of `job` (e.g. "robustness") for a
    weights file: `<its folder>/<job>/<its name>` (a.weights.h5 ->
    <folder>/robustness/a), so that two weights files in one folder keep
    their reports and caches apart."""
    folder, name = os.path.split(os.path.abspath(weights))
    for suffix in WEIGHTS_SUFFIXES:
        if name.endswith(suffix) and name != suffix:
            name = name[: -len(suffix)]
            break
    return os.path.join(folder, job, name)


def default_results_dir(weights, run_folder, job):
    """Where `job`'s results go without an output folder: beside a weights
    file (`weights_results_dir`), also one that replaces a run's
    checkpoint (before: into the run's folder, where its report replaced
    the checkpoint's), else `run_folder`."""
    if weights:
        return weights_results_dir(weights, job)
    return run_folder


def resolve(
    *,
    model_dir=None,
    checkpoint=None,
    preset=None,
    weights=None,
    output_dir=None,
    data=None,
    model=None,
    train=None,
    needs_data=True,
):
    """The experiment config and the weights source of a model.

    Args:
        model_dir: a training run (holds `config.json` and `checkpoints/`).
        checkpoint: with `model_dir`: "latest" (default), "best" or a
            checkpoint prefix.
        preset: a preset name, when there is no `model_dir`; needs `weights`.
        weights: a `.weights.h5` file (e.g. from the checkpoint importer).
            With `model_dir` it replaces the run's checkpoint.
        output_dir: the config's model_dir when built from a preset (default:
            the folder of `weights`).
        data, model, train: config overrides (dicts of field -> value).
        needs_data: False for tools that read their own data (robustness,
            retrieval): a preset config then needs no TFRecord data_dir.

    Returns:
        (config, checkpoint_prefix or None, weights or None).

    Raises:
        OptionError: neither source given, or a preset without weights
            (named: "`preset` needs `weights` ...").
        FileNotFoundError: no config.json, no such checkpoint or no such
            `weights` file (a `MissingPathError` naming the option).
    """
    _refuse_ignored(model_dir, checkpoint, preset, weights)
    if weights and not os.path.isfile(weights):
        # Before anything reads it (h5py's errno message names no flag).
        raise MissingPathError(
            "weights", "{field}={path}: no such file.", path=weights
        )
    known = {f.name for f in dataclasses.fields(config_lib.ModelConfig)}
    unknown = sorted(set(model or {}) - known - {"preset"})
    if unknown:
        # Before: "Unknown model config keys [...]", naming no option.
        raise OptionError(
            "model_overrides",
            "{field} sets {unknown}, not an option of a run's model; it "
            "takes {known} (the other architecture options come with the "
            "preset: pick one that has them).",
            unknown=", ".join(unknown),
            known=", ".join(sorted(known - {"preset"})),
        )
    overrides = {"data": dict(data or {}), "model": model or {}}
    if not needs_data and not model_dir:
        overrides["data"].setdefault("synthetic", True)
    if train:
        overrides["train"] = train
    if model_dir:
        config = _run_config(model_dir, overrides)
    elif preset:
        with _overrides_named(overrides):
            config = _preset_config(preset, weights, output_dir, overrides)
    else:
        raise OptionError(
            "model_dir",
            "Pass {field}, or {preset} with {weights}.",
            ["preset", "weights"],
        )
    prefix = None
    if not weights:
        prefix = checkpoints.find_checkpoint(
            config.model_dir, checkpoint or "latest"
        )
    return config, prefix, weights


@contextlib.contextmanager
def _overrides_named(overrides):
    """An `OptionError` of a model override's value, named as the override:
    "--model_overrides: base_width=0 is invalid: ..." (before: "--base_width
    =0 is invalid", a flag tools.evaluate has not)."""
    try:
        yield
    except OptionError as e:
        if e.field not in overrides.get("model", {}):
            raise
        raise OptionError(
            "model_overrides",
            "{field}: {detail}",
            detail=e.bare(),
        ) from None


def _refuse_ignored(model_dir, checkpoint, preset, weights):
    """Refuses source options the source ignores (before: accepted; the
    run's own preset and the weights file were used)."""
    if model_dir and preset:
        raise OptionError(
            "preset",
            "{field}={preset} with {model_dir}: the run's config.json names "
            "its preset; leave {field} out (it goes with {weights} alone).",
            ["model_dir", "weights"],
            preset=preset,
        )
    if weights and checkpoint:
        raise OptionError(
            "checkpoint",
            "{field}={value} with {weights}: the weights file is what is "
            "read, not a checkpoint; leave one of them out.",
            ["weights"],
            value=checkpoint,
        )


def _run_config(model_dir, overrides):
    """The config.json of the run in `model_dir`, with `overrides`
    ({group: {field: value}}) applied and validated."""
    path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(path):
        # Before: "has no config.json" for a folder that is not there (a
        # typo), or a file.
        what = (
            "has no config.json"
            if os.path.isdir(model_dir)
            else "is a file, not a run folder"
            if os.path.exists(model_dir)
            else "does not exist"
        )
        raise MissingPathError(
            "model_dir",
            "{field}={path} {what}; pass a training run's {field}, or "
            "{preset} with {weights}.",
            ["preset", "weights"],
            path=model_dir,
            what=what,
        )
    stored = config_lib.ExperimentConfig.from_json(path)
    base = stored.to_dict()
    for group, values in overrides.items():
        base[group].update(values)
    config = config_lib.ExperimentConfig.from_dict(base)
    with _overrides_named(overrides):
        config_lib.validate(config)
    for group, field, value, allowed, others in config_lib.ignored_options(
        config
    ):
        if field in overrides.get(group, {}):
            # An override the run's model would ignore (before: accepted).
            for name in others:  # named as config fields, not flags
                allowed = allowed.replace("{" + name + "}", name)
            raise OptionError(
                "model_overrides",
                "{field} sets {key}={value}, which the run ignores: it "
                + allowed
                + ".",
                key=field,
                value=value,
            )
    if config.data.data_dir != stored.data.data_dir:
        check_same_classes(
            stored, config.data.data_dir, config.data.label_offset
        )
    elif config.data.label_offset != stored.data.label_offset:
        # The run's own data read with another offset: every class shifted
        # by the difference (before: evaluated, top-1 0.099 on the demo,
        # with only the out-of-range records counted).
        raise OptionError(
            "label_offset",
            "{field}={value}: the run was trained on {data_dir}={path} "
            "with {field}={trained}, and its head's outputs are those "
            "classes; another offset shifts every label. Leave {field} out "
            "(it applies to other data, with {data_dir}).",
            ["data_dir"],
            value=config.data.label_offset,
            trained=stored.data.label_offset,
            path=stored.data.data_dir or stored.data.source,
        )
    return config


def check_same_classes(run, data_dir, label_offset=None):
    """Refuses a TFRecord folder whose classes are not the run's: another
    count (its summary.json / labels.txt), or, where both folders have a
    labels.txt, another class under a label (before: evaluated without a
    word, e.g. top-1 0.0 on another dataset, or a class numbered otherwise
    by a validation-only build).

    Raises:
        OptionError: naming `data_dir`, the counts or the first class that
            differs.
    """
    from assemble_tf.data import metadata

    offset = run.data.label_offset if label_offset is None else label_offset
    info = metadata.dataset_info(data_dir)
    if info is None:
        return
    width = info.head_width(offset)
    if width != run.data.num_classes:
        raise OptionError(
            "data_dir",
            "{field}={path} holds {count} classes stored as {low}..{high} "
            "({file}), which a head of {width} outputs fits, but the run's "
            "has {classes}: evaluate on data of the run's classes.",
            path=data_dir,
            count=info.num_classes,
            low=info.label_base,
            high=info.label_base + info.num_classes - 1,
            file=os.path.basename(info.source),
            width=width,
            classes=run.data.num_classes,
        )
    if not run.data.data_dir:  # synthetic or tfds: no labels.txt
        return
    ours = os.path.join(run.data.data_dir, metadata.LABELS)
    theirs = os.path.join(data_dir, metadata.LABELS)
    if not (file_utils.isfile(ours) and file_utils.isfile(theirs)):
        return
    # Compared by head output: each folder's labels less its offset.
    trained = {
        label - run.data.label_offset: (label, wnid)
        for label, wnid, _ in metadata.read_labels(ours)
        if wnid
    }
    for label, wnid, _ in metadata.read_labels(theirs):
        mine = trained.get(label - offset)
        if wnid and mine is not None and mine[1] != wnid:
            raise OptionError(
                "data_dir",
                "{field}={path} stores {wnid} as label {label}, but the run "
                "was trained with {trained} as {trained_label} ({ours}): "
                "the same classes, numbered alike, are needed (build the "
                "data with the training set's class list).",
                path=data_dir,
                wnid=wnid,
                label=label,
                trained=mine[1],
                trained_label=mine[0],
                ours=ours,
            )


def _preset_config(preset, weights, output_dir, overrides):
    """The config of `preset` with `overrides`, its model_dir `output_dir`
    (default: the folder of `weights`, which must exist)."""
    if not weights:
        raise OptionError(
            "preset",
            "{field} needs {weights} (or use {model_dir}).",
            ["weights", "model_dir"],
        )
    data = overrides.get("data", {})
    if not any(data.get(k) for k in ("data_dir", "source", "synthetic")):
        # Before: "--data_dir=None is invalid: required unless
        # --synthetic", a flag the evaluation has not.
        raise OptionError(
            "data_dir",
            "{field} is required with {preset}: the TFRecord folder whose "
            "validation split is evaluated.",
            ["preset"],
        )
    out = output_dir or os.path.dirname(os.path.abspath(weights))
    return config_lib.make_config(out, preset, overrides)
