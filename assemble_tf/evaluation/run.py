"""Top-1, top-5, cross-entropy and ECE of a model on a validation split.

The work of `tools.evaluate`: the model is a training run (config.json and
a checkpoint) or a preset with a `.weights.h5` file
(`assemble_tf.runs.loading`); every image of the split counts (no dropped
partial batch; `assemble_tf.evaluation.evaluator`). `evaluate_model`
writes `eval.json`, a reliability diagram `reliability.png` (10 bins,
Guo et al. 2017) and `per_class.csv` (images and top-1 of each class, named
as the run names them: `assemble_tf.runs.class_names`) and returns the
report, which lists the 5 classes of the lowest top-1.

With `precision="bfloat16"` the model computing in bfloat16 (as
`tools.export_saved_model` with precision bfloat16 serves it) and in float32
run on the same batches: the top-level metrics are bfloat16's, "float32"
holds float32's and "agreement" top-1 of both, the top-1 delta in points,
the top-1 agreement (fraction of images whose class is the same) and the
mean relative logit L2 difference; also written as `agreement.md`
(`assemble_tf.evaluation.agreement`).

    options = run.EvaluateOptions(model_dir="/runs/a50", checkpoint="best")
    report = run.evaluate_model(options)   # top1, top5, ece, loss, ...
"""

import dataclasses
import json
import os
import sys

from assemble_tf.runs import loading
from official.utils.misc import progress as progress_lib
from official.utils.misc.validation import (
    OptionError,
    check_at_least,
    check_choices,
    check_creatable,
)

PRECISIONS = ("float32", "bfloat16")
# Options that override the run's (or preset's) data config when set.
DATA_OVERRIDES = (
    "data_dir",
    "validation_pattern",
    "num_classes",
    "label_offset",
    "eval_preprocessing",
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvaluateOptions(loading.ModelSource):
    """What to evaluate; field names are `tools.evaluate`'s flags.

    Attributes (besides the `loading.ModelSource` fields):
        data_dir: replaces the run's data_dir.
        validation_pattern: replaces the run's validation shard glob.
        label_offset: replaces the run's label offset.
        eval_preprocessing: replaces the run's eval resize / crop.
        batch_size: images per evaluation batch.
        precision: "float32", "bfloat16" (also evaluates float32 and
            reports the agreement) or None (the run's mixed precision).
        output_dir: where eval.json and reliability.png go (default the
            run, or <weights folder>/eval/<weights name>).
        progress: show a progress bar (on stderr).
    """

    data_dir: str | None = None
    validation_pattern: str | None = None
    label_offset: int | None = None
    eval_preprocessing: str | None = None
    batch_size: int = 100
    precision: str | None = None
    output_dir: str | None = None
    progress: bool = True


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A restored model and where it came from (`load_model`)."""

    config: object  # assemble_tf.config.ExperimentConfig
    strategy: object  # tf.distribute.Strategy (JaxRuntime under JAX)
    model: object  # the Keras classifier
    checkpoint: str | None  # the checkpoint prefix restored, or None
    weights: str | None  # the weights file restored, or None


def validate(options):
    """Raises `OptionError` naming the option of a bad value."""
    check_choices(options, {"precision": PRECISIONS})
    check_at_least(options, {"batch_size": 1})
    check_creatable(options, folders=["output_dir"])
    if options.model_dir and options.num_classes is not None:
        # A run's head is what its config.json says; a different class
        # count cannot restore its checkpoint.
        raise OptionError(
            "num_classes",
            "{field} applies to {preset} with {weights}; a run's class "
            "count comes from its config.json ({model_dir}={path}): leave "
            "{field} out.",
            others=["preset", "weights", "model_dir"],
            path=options.model_dir,
        )


def resolve(options):
    """(config, checkpoint prefix or None, weights or None) of `options`'
    model source, with its data overrides and batch size."""
    data = {
        name: getattr(options, name)
        for name in DATA_OVERRIDES
        if getattr(options, name) is not None
    }
    return options.resolve_source(
        output_dir=options.output_dir,
        data=data,
        train={"eval_batch_size": options.batch_size},
    )


def load_model(options):
    """Sets up the runtime and restores the model of `options`.

    An explicit `precision` computes in float32 (Keras' dtype policy),
    whatever the run's mixed precision.

    Returns:
        A `LoadedModel`.
    """
    from assemble_tf.runs import checkpoints, runtime
    from assemble_tf.runs import models as run_models

    config, checkpoint, weights = resolve(options)
    with runtime.kept_dtype_policy():
        strategy = runtime.setup_runtime(config)
        if options.precision:
            import keras

            keras.config.set_dtype_policy("float32")
        if not isinstance(strategy, runtime.JaxRuntime):
            runtime.check_eval_batch(
                "batch_size", options.batch_size, strategy.num_replicas_in_sync
            )
        with strategy.scope():
            model = run_models.build_run_model(config)
    checkpoints.restore(model, checkpoint, weights)
    return LoadedModel(config, strategy, model, checkpoint, weights)


def make_evaluator(loaded, precision=None):
    """An `Evaluator` of the loaded model or, for "bfloat16", an
    `AgreementEvaluator` of its bfloat16 copy against it."""
    from assemble_tf.evaluation.evaluator import Evaluator
    from assemble_tf.runs import models as run_models

    with loaded.strategy.scope():
        if precision != "bfloat16":
            return Evaluator(loaded.model, loaded.strategy, per_class=True)
        from assemble_tf.evaluation.agreement import AgreementEvaluator
        from assemble_tf.export import precision as precision_lib

        bfloat16 = precision_lib.bfloat16_copy(
            loaded.model, lambda: run_models.build_run_model(loaded.config)
        )
        return AgreementEvaluator(
            bfloat16, loaded.model, loaded.strategy, per_class=True
        )


def run_evaluation(evaluator, config, progress=True, preset=None):
    """`evaluator.evaluate` over the config's whole validation split; a
    warning on stderr names the records it skipped. `preset`: the model
    is that preset with weights, not a run (`config_lib.eval_size_warning`)."""
    from assemble_tf import config as config_lib
    from assemble_tf.data import input_pipeline
    from assemble_tf.evaluation import checks
    from assemble_tf.runs import inputs

    size = config_lib.eval_size_warning(config.data, preset)
    if size:  # before: top-1 0.10 of 32-px digits at 224 px, without a word
        print(f"WARNING: {size}", file=sys.stderr)
    input_config = inputs.input_config(config, is_training=False)
    stats = input_pipeline.PipelineStats()
    with progress_lib.bar(
        desc="evaluating", unit="batch", progress=progress
    ) as bar:
        dataset = evaluator.dataset(input_config, stats)
        result = evaluator.evaluate(dataset, bar, stats)
    skipped = result["skipped"]
    short = inputs.validation_shortfall(config, result["count"] + skipped)
    if short is not None:
        message, cut_off = short
        if cut_off:
            raise input_pipeline.DataError(message)
        print(f"WARNING: {message}", file=sys.stderr)
    if skipped:
        print(
            f"WARNING: {skipped:,} of {skipped + result['count']:,} "
            f"validation records skipped ({stats.describe(True)}); the metrics "
            "count the others.",
            file=sys.stderr,
        )
    model = getattr(evaluator, "model", None)
    policy = getattr(getattr(model, "dtype_policy", None), "name", None)
    warning = checks.nonfinite_warning(result, policy)
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr)
    return result


WORST_CLASSES = 5


def per_class_rows(per_class, names=None):
    """`[{"class", "name", "images", "top1"}]` of an evaluation's
    `per_class` counts, by class; `names` (one per logit, or None) name
    them, else the name is the index. top1 is None without images."""
    return [
        {
            "class": i,
            "name": names[i] if names else str(i),
            "images": images,
            "top1": top1,
        }
        for i, (images, top1) in enumerate(
            zip(per_class["images"], per_class["top1"], strict=True)
        )
    ]


def worst_classes(rows, count=WORST_CLASSES):
    """The `count` rows of classes with images and the lowest top-1 (the
    most images first among equals)."""
    seen = [r for r in rows if r["images"]]
    return sorted(seen, key=lambda r: (r["top1"], -r["images"]))[:count]


def write_per_class_csv(rows, path):
    """Writes `per_class_rows` as CSV (class, name, images, top1)."""
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["class", "name", "images", "top1"])
        writer.writeheader()
        writer.writerows(rows)


def write_outputs(result, loaded, precision, out_dir, names):
    """Writes reliability.png, per_class.csv, agreement.md (with an
    agreement) and eval.json to `out_dir`; returns the report (eval.json
    without the reliability bins and the per-class rows). `names`: the
    class names (`runs.class_names.of_run`'s, None when nothing names
    them)."""
    from assemble_tf.evaluation import plots

    os.makedirs(out_dir, exist_ok=True)
    png = os.path.join(out_dir, "reliability.png")
    rel = result["reliability"]
    plots.reliability_diagram(
        (rel["count"], rel["confidence"], rel["accuracy"]),
        png,
        title=f"{loaded.config.model.preset}"
        + (f" ({precision})" if precision else "")
        + f": top-1 {100.0 * result['top1']:.2f}%",  # as the ECE
    )
    rows = per_class_rows(result["per_class"], names)
    report = {
        k: v for k, v in result.items() if k not in ("reliability", "per_class")
    }
    report.update(
        precision=precision or loaded.config.train.mixed_precision,
        checkpoint=loaded.checkpoint,
        weights=loaded.weights,
        worst_classes=worst_classes(rows),
        reliability_png=png,
        per_class_csv=os.path.join(out_dir, "per_class.csv"),
        eval_json=os.path.join(out_dir, "eval.json"),
    )
    write_per_class_csv(rows, report["per_class_csv"])
    if "agreement" in result:
        from assemble_tf.evaluation.agreement import agreement_markdown

        report["agreement_md"] = os.path.join(out_dir, "agreement.md")
        with open(report["agreement_md"], "w") as f:
            f.write(agreement_markdown(result))
    elif os.path.exists(os.path.join(out_dir, "agreement.md")):
        # An earlier evaluation's (another checkpoint or precision): it
        # stayed beside this eval.json as if it were its own.
        os.remove(os.path.join(out_dir, "agreement.md"))
    with open(report["eval_json"], "w") as f:
        json.dump(dict(report, reliability=rel, per_class=rows), f, indent=1)
    return report


def evaluate_model(options):
    """Evaluates the model of `options` on its validation split.

    Args:
        options: an `EvaluateOptions`.

    Returns:
        The report: top1, top5, ece, loss, count (with bfloat16 also
        "float32" and "agreement"), precision, checkpoint, weights,
        reliability_png, eval_json (and agreement_md). eval.json holds
        it plus the reliability bins.

    Raises:
        OptionError: a bad or missing option (named).
        FileNotFoundError: no config.json, checkpoint or weights file.
        DataError: the split yielded no usable image.
    """
    from assemble_tf.runs import class_names
    from official.utils.misc.validation import check_writable_folder

    validate(options)
    loaded = load_model(options)
    out = output_dir(options, loaded)
    # Before the evaluation, not at its first write; so are the class
    # names (before: refused after the whole split was evaluated, with
    # reliability.png written).
    check_writable_folder("output_dir", out, bool(options.output_dir))
    names, _ = class_names.of_run(loaded.config.model_dir, loaded.config)
    evaluator = make_evaluator(loaded, options.precision)
    preset = None if options.model_dir else loaded.config.model.preset
    result = run_evaluation(
        evaluator, loaded.config, options.progress, preset=preset
    )
    return write_outputs(result, loaded, options.precision, out, names)


def output_dir(options, loaded):
    """`options.output_dir`, else for a weights file (with a preset, or
    replacing a run's checkpoint) <weights folder>/eval/<weights name>,
    else the run's folder, as the robustness and retrieval tools. Before:
    the weights' folder itself, where a second weights file's report
    replaced the first's; and with a run, the run's folder, where the
    weights' report replaced the checkpoint's."""
    from assemble_tf.runs import loading

    if options.output_dir:
        return options.output_dir
    return loading.default_results_dir(
        loaded.weights, loaded.config.model_dir, "eval"
    )
