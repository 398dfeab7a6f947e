"""Exports a trained or imported model as a verified SavedModel.

The work of `tools.export_saved_model`. The model is a training run
(config.json and a checkpoint, or `weights` replacing it) or a preset with
a `.weights.h5` file; `export` optionally folds every conv + BatchNorm pair
(`assemble_tf.export.optimize`) and serves it computing in bfloat16
(`assemble_tf.export.precision`), then writes it with
`assemble_tf.export.saved_model.export_saved_model`: signatures
`serving_default` (JPEG/PNG bytes -> classes, class_names, probabilities,
logits, with the eval preprocessing in the graph), `preprocessed` (float
eval crops) and `feature_vector` (pooled features), written to a temporary
folder, reloaded and compared with the in-memory model signature by
signature, then renamed into place. The class names are the run's
(`assemble_tf.runs.class_names`) or a file's; the SavedModel also carries
them as `assets/class_names.txt`.

With `precision="bfloat16"` the inputs and outputs stay float32 (and
string), and the verification also compares every signature with the
float32 model on 32 images: mean relative L2 of logits and features <=
0.15 and top-1 agreement >= 0.8, else nothing is written.

    options = saved_model_run.ExportOptions(
        export_dir="/serving/a50/1", model_dir="/runs/a50")
    report = saved_model_run.export(options)   # export_dir, max_abs_diff
"""

import dataclasses
import os
import sys

from assemble_tf.runs import class_names, loading
from official.utils.misc.validation import (
    OptionError,
    check_choices,
    check_creatable,
)

PRECISIONS = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExportOptions(loading.ModelSource):
    """What to export; field names are `tools.export_saved_model`'s flags.

    Attributes (besides the `loading.ModelSource` fields):
        export_dir: where the SavedModel goes.
        preprocessing: eval preprocessing put in the graph (default the
            run's / preset's).
        jit_compile: XLA-compile the `preprocessed` signature.
        fold_bn: fold every conv + BatchNorm pair (faster inference).
        overwrite: replace an existing `export_dir`.
        precision: compute precision of the served model, "float32" or
            "bfloat16" (verified against the float32 model).
        class_names: a file naming each logit (one name per line, or a
            builder's labels.txt); default the run's class_names.txt, else
            the logits' indices.
    """

    export_dir: str
    preprocessing: str | None = None
    jit_compile: bool = False
    fold_bn: bool = False
    overwrite: bool = False
    precision: str = "float32"
    class_names: str | None = None


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A restored model, its eval preprocessing and how to rebuild it.

    `rebuild(**extra)` builds the same architecture again with `build_model`
    arguments `extra` (e.g. `num_classes=...`). `class_names` name its
    logits (None: unknown), as `names_from` says.
    """

    model: object  # the Keras classifier
    preprocessing: str
    rebuild: object  # callable(**extra) -> keras.Model
    class_names: list | None = None
    names_from: str = "no class names given"
    image_size: int | None = None  # the training crops' side, where known


def validate(options):
    """Raises `OptionError` naming the option of a bad value."""
    if not options.export_dir:
        raise OptionError("export_dir", "{field} is required.")
    check_creatable(options, ["export_dir"])  # before the model loads
    check_choices(options, {"precision": PRECISIONS})
    if options.preprocessing:  # before: "preprocessing_type must be ..."
        from assemble_tf.data.sizes import eval_sizes

        eval_sizes(options.preprocessing, "preprocessing")


def _load_run(options):
    """The `LoadedModel` of the training run `options.model_dir` (its
    checkpoint, or `options.weights`)."""
    from assemble_tf import config as config_lib
    from assemble_tf.runs import checkpoints
    from assemble_tf.runs import models as run_models

    # The model overrides validated and applied, a head width refused, as
    # the other binaries do (before: both ignored without a word).
    loading.refuse_num_classes_with_run(
        options.model_dir,
        options.num_classes,
        config_lib.parse_model_overrides(options.model_overrides),
    )
    config, prefix, weights = options.resolve_source(needs_data=False)
    model = run_models.build_run_model(config)
    checkpoints.restore(model, prefix, weights)
    names, where = class_names.of_run(options.model_dir, config)
    return LoadedModel(
        model,
        config.data.eval_preprocessing,
        lambda **extra: run_models.build_run_model(config, **extra),
        names,
        where,
        config.data.image_size,
    )


def _load_preset(options):
    """The `LoadedModel` of `options.preset` with `options.weights`."""
    from assemble_tf import config as config_lib
    from assemble_tf import presets
    from assemble_tf.models import build_model
    from assemble_tf.runs import checkpoints

    preset = presets.get(options.preset)
    kwargs = config_lib.parse_model_overrides(options.model_overrides)
    if options.num_classes:
        kwargs["num_classes"] = options.num_classes
    model = build_model(options.preset, **kwargs)
    checkpoints.load_weights_file(model, options.weights)
    return LoadedModel(
        model,
        preset.eval_preprocessing,
        lambda **extra: build_model(options.preset, **kwargs, **extra),
    )


def load_model(options):
    """The `LoadedModel` of `options`' model source.

    Raises:
        OptionError: neither a run nor a preset with weights (named).
    """
    if options.model_dir:
        return _load_run(options)
    if not (options.preset and options.weights):
        raise OptionError(
            "model_dir",
            "Pass {field}, or {preset} with {weights}.",
            ["preset", "weights"],
        )
    return _load_preset(options)


def _log_to_stderr(text):
    print(text, file=sys.stderr)


def serving_model(options, loaded, log=_log_to_stderr):
    """(model to export, `ReferenceCheck` or None): the loaded model,
    BN-folded with `fold_bn` (logs the count) and computing in bfloat16
    with `precision="bfloat16"` (checked against the float32 model)."""
    from assemble_tf.export import optimize, precision, verification

    model = float32_model = loaded.model
    if options.fold_bn:
        model, count = optimize.folded_copy(model)
        log(f"Folded {count} BatchNorm layers.")
    if options.precision != "bfloat16":
        return model, None

    def rebuild():
        fresh = loaded.rebuild()
        return optimize.fold_bn_graph(fresh) if options.fold_bn else fresh

    model = precision.bfloat16_copy(model, rebuild)
    return model, verification.ReferenceCheck(float32_model)


def check_crop(model, preprocessing):
    """A Big-Little model takes crops of a multiple of 32 (its big branch
    runs at half the resolution); another crop failed in the export's
    first trace with a Keras call dump that named no option.

    Raises:
        OptionError: naming `preprocessing`, its crop and a size that fits.
    """
    from assemble_tf.data.sizes import eval_sizes
    from assemble_tf.layers.big_little import BigLittleMerge

    crop = eval_sizes(preprocessing, "preprocessing")[2]
    if crop % 32 and any(isinstance(x, BigLittleMerge) for x in model.layers):
        raise OptionError(
            "preprocessing",
            "{field}={value} gives {crop}-px crops; this Big-Little model "
            "(its big branch at half the resolution) takes multiples of 32, "
            "e.g. {field}=imagenet_{near}.",
            value=preprocessing,
            crop=crop,
            near=max(32, round(crop / 32) * 32),
        )


def _crop_size_warning(options, loaded, ptype):
    """The warning of a `preprocessing` given far from the training crops
    (before: a model trained at 32 px exported for 64-px crops without a
    word; tools.train warns about its own); a preset's weights are said
    to be of the size the preset trains at. None otherwise."""
    if not options.preprocessing or not (loaded.image_size or options.preset):
        return None
    from assemble_tf import config as config_lib
    from assemble_tf import presets

    preset = None if loaded.image_size else options.preset
    return config_lib.crop_size_warning(
        "preprocessing",
        ptype,
        loaded.image_size or presets.get(preset).train_image_size,
        "serves",
        preset=preset,
    )


def export(options, log=_log_to_stderr):
    """Exports and verifies the model of `options`.

    Args:
        options: an `ExportOptions`.
        log: called with each progress line (default: printed to stderr).

    Returns:
        {"export_dir" (absolute), "preprocessing", "precision",
        "class_names" (where they came from, or "indices"),
        "max_abs_diff" ({signature: max |difference| after reloading})},
        with bfloat16 also "vs_float32" (the comparison with the float32
        model and its tolerance).

    Raises:
        OptionError: a bad or missing option (named).
        FileExistsError: `export_dir` exists and not `overwrite`.
        ValueError: the export does not match the model.
    """
    from assemble_tf.export import saved_model as export_lib

    validate(options)
    version = os.path.basename(os.path.normpath(options.export_dir))
    if not version.isdigit():
        log(
            f"WARNING: TF Serving serves numbered version folders of its "
            f"--model_base_path: {options.export_dir} is not one. For TF "
            f"Serving, export to {os.path.join(options.export_dir, '1')} "
            "and serve its parent."
        )
    loaded = load_model(options)
    names, names_from = loaded.class_names, loaded.names_from
    if options.class_names:
        width = int(loaded.model.outputs[0].shape[-1])
        names = class_names.read(options.class_names, width)
        names_from = options.class_names
        twice = class_names.duplicates_warning(names, options.class_names)
        if twice:  # before: exported without a word
            log(f"WARNING: {twice}")
    if names is None:
        log(
            f"The class_names outputs will be the logits' indices "
            f"({names_from}); the class_names option takes a file naming "
            "them."
        )
    ptype = options.preprocessing or loaded.preprocessing
    check_crop(loaded.model, ptype)
    size = _crop_size_warning(options, loaded, ptype)
    if size:
        log(f"WARNING: {size}")
    model, reference = serving_model(options, loaded, log)
    diffs = export_lib.export_saved_model(
        model,
        options.export_dir,
        ptype,
        jit_compile=options.jit_compile,
        overwrite=options.overwrite,
        reference=reference,
        log=log,
        class_names=names,
    )
    report = {
        "export_dir": os.path.abspath(options.export_dir),
        "preprocessing": ptype,
        "precision": options.precision,
        "class_names": names_from if names else "indices",
        "max_abs_diff": diffs,
    }
    if reference is not None:
        report["vs_float32"] = dict(
            reference.measured, tolerance=reference.tolerance()
        )
    return report
