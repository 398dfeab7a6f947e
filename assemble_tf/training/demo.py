"""The end-to-end demo: real data in, a trained Assemble model out.

The work of `tools.demo` (`make demo`), in `run_demo`:

1. writes scikit-learn's handwritten digits as TFRecords (no download;
   `assemble_tf.data.demo_dataset`);
2. trains a small Assemble configuration (BigLittleNet + SK +
   anti-aliasing + DropBlock, with Mixup, label smoothing and AutoAugment:
   the assemble_resnet50 recipe of Lee et al. 2020,
   https://arxiv.org/abs/2001.06268, at base width 16 on 32x32 inputs) on
   the CPU with `train_lib.run_experiment`;
3. evaluates it on the held-out digits (top-1, top-5, ECE);
4. writes a reliability diagram and a short report (`report.md`, beside
   the training curves of the run).

About three and a half minutes on 2 cores (README.md). Rerunning resumes /
reuses what is there.

    summary = demo.run_demo(demo.DemoOptions(output_dir="demo_out"))
"""

import dataclasses
import json
import os
import sys
import time

from official.utils.misc.validation import OptionError, check_writable_folder

PRESET = "assemble_resnet50"
# The demo's departures from the assemble_resnet50 recipe, for 64x64 digits
# on 2 CPU cores: a 1/4-width, 7-block network on 32x32 crops, batch 32,
# faster BN statistics, larger minimum crops, no KD (no teacher logits).
DEMO_OVERRIDES = {
    "model": {"base_width": 16, "block_sizes": "2,2,2,1", "bn_momentum": 0.9},
    "data": {
        "num_classes": 10,
        "image_size": 32,
        "eval_preprocessing": "imagenet_32",
        "min_crop_area": 0.35,
        "cache": True,
    },
    "train": {
        "batch_size": 32,
        "warmup_epochs": 1.0,
        "base_learning_rate": 0.05,
        "weight_decay": 5e-5,
        "kd_temperature": 0.0,
        "eval_every_epochs": 5.0,
        "seed": 0,
    },
}


@dataclasses.dataclass(frozen=True)
class DemoOptions:
    """The demo's settings; field names are `tools.demo`'s flags.

    Attributes:
        output_dir: where everything is written (the digits in
            <output_dir>/digits, the run in <output_dir>/run).
        epochs: training epochs.
        seed: the run's seed (data order, crops, mixing, initialisation).
    """

    output_dir: str = "demo_out"
    epochs: int = 40
    seed: int = 0


def _log_to_stderr(text):
    print(text, file=sys.stderr)


def prepare_data(out, log=_log_to_stderr):
    """Writes the digits TFRecords to <out>/digits unless they are there
    (its summary.json); returns that folder."""
    from assemble_tf.data import demo_dataset

    data_dir = os.path.join(out, "digits")
    if not os.path.isfile(os.path.join(data_dir, "summary.json")):
        log("Writing the digits dataset ...")
        demo_dataset.make_demo_dataset(data_dir, progress=False)
    return data_dir


def demo_config(options, data_dir):
    """The experiment config: assemble_resnet50 with `DEMO_OVERRIDES`, the
    digits of `data_dir` and `options.epochs`, run in <output_dir>/run."""
    from assemble_tf import config as config_lib

    overrides = {k: dict(v) for k, v in DEMO_OVERRIDES.items()}
    overrides["data"]["data_dir"] = data_dir
    overrides["train"]["epochs"] = float(options.epochs)
    # Warm-up must end before training does (before: 1 epoch failed
    # after the data was written, naming `warmup_epochs`, no demo flag).
    overrides["train"]["warmup_epochs"] = min(
        DEMO_OVERRIDES["train"]["warmup_epochs"], options.epochs / 2
    )
    overrides["train"]["seed"] = options.seed
    model_dir = os.path.join(os.path.abspath(options.output_dir), "run")
    return config_lib.make_config(model_dir, PRESET, overrides)


def adopt_moved_run(config, log=_log_to_stderr):
    """Points the run of a moved (or copied) demo folder at this folder's
    digits: its config.json names `<folder it was made in>/digits`, an
    absolute path, so a rerun was refused as "a different configuration
    (data.data_dir ...)". The digits are the same records wherever they
    are written."""
    from assemble_tf import config as config_lib

    path = os.path.join(config.model_dir, "config.json")
    if not os.path.isfile(path):
        return
    old = config_lib.ExperimentConfig.from_json(path)
    there, here = old.data.data_dir or "", config.data.data_dir
    if there == here or os.path.basename(there) != "digits":
        return
    data = dataclasses.replace(old.data, data_dir=here)
    dataclasses.replace(old, data=data).to_json(path)
    log(
        f"This demo folder was made as {os.path.dirname(there)}: its run now "
        f"reads {here}."
    )


def _setup_lines(config, summary):
    """The report's data, model and recipe paragraphs."""
    a, t = config.augment, config.train
    blocks = ",".join(map(str, config.model.block_sizes))
    return [
        f"Data: {summary['data_dir']} (scikit-learn digits, 1,438 train / "
        "359 validation, 64x64 JPEG).",
        f"Model: `{config.model.preset}` at base width "
        f"{config.model.base_width}, blocks {blocks}, "
        f"input {config.data.image_size}: BigLittleNet + SK + anti-aliasing "
        f"+ DropBlock ({summary['params']:,} parameters), trained under "
        f"{_backend()} in {t.mixed_precision}.",
        f"Recipe: {_count(t.epochs, 'epoch')}, batch {t.batch_size}, SGD "
        f"momentum {t.momentum}, LR {t.base_learning_rate} {t.lr_schedule} "
        f"with {_count(t.warmup_epochs, 'warm-up epoch')}, weight decay "
        f"{t.weight_decay}, "
        f"Mixup type {a.mixup_type}, label smoothing {a.label_smoothing}, "
        f"AutoAugment {a.autoaugment}, DropBlock keep "
        f"{' -> '.join(map(str, t.dropblock_keep_prob or (1.0,)))}.",
    ]


def _backend():
    """The Keras backend, as the report names it."""
    import keras

    return {"tensorflow": "TensorFlow", "jax": "JAX"}.get(
        keras.backend.backend(), keras.backend.backend()
    )


def _count(number, noun):
    """'1 epoch', '2 epochs', '0.5 warm-up epoch' (a fraction of one)."""
    return f"{number:g} {noun}" + ("s" if number > 1 else "")


def _result_lines(summary, history):
    """The report's metric table and per-epoch table."""
    lines = [
        "| metric | value |",
        "|---|---|",
        f"| top-1 | {summary['top1']:.4f} |",
        f"| top-5 | {summary['top5']:.4f} |",
        f"| ECE (10 bins) | {summary['ece']:.4f} |",
        f"| train images/s (last epoch) | "
        f"{summary['train_images_per_sec']:.0f} |",
        f"| wall time (this invocation) | {summary['seconds']:.0f} s |",
        "",
        "| epoch | train loss | val top-1 |",
        "|---|---|---|",
    ]
    for r in history:
        top1 = r.get("val_top1")
        lines.append(
            f"| {r['epoch']} | {r['train_loss']:.4f} | "
            f"{'-' if top1 is None else f'{top1:.4f}'} |"
        )
    return lines


def write_report(path, config, summary, history):
    """Writes the demo's markdown report (setup, metrics, per-epoch
    losses, the two plots) to `path`."""
    lines = [
        "# Assemble-TF demo report",
        "",
        *_setup_lines(config, summary),
        "",
        *_result_lines(summary, history),
        "",
        "![training curves](training_curves.png)",
        "![reliability](reliability.png)",
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def plot_reliability(history, path):
    """The reliability diagram of the last validation in `history` (the
    run's history.json records)."""
    from assemble_tf.evaluation import plots

    rel = history[-1]["val_reliability"]
    plots.reliability_diagram(
        (rel["count"], rel["confidence"], rel["accuracy"]),
        path,
        title="Demo: held-out digits",
    )


def _check_same_flags(config, output_dir):
    """Refuses a rerun whose --epochs or --seed differ from the demo run's
    in `output_dir`, naming those flags alone (before: the warm-up the
    demo derives from --epochs was listed too, a flag it has not). Other
    differences are left to the resume check."""
    import json

    try:
        with open(os.path.join(config.model_dir, "config.json")) as f:
            old = json.load(f)["train"]
        changed = [
            (name, old[name], getattr(config.train, name))
            for name in ("epochs", "seed")
            if old[name] != getattr(config.train, name)
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no run yet, or one the resume check names
    if not changed:
        return
    values = {}
    for i, (_, was, now) in enumerate(changed):
        values[f"old{i}"], values[f"new{i}"] = was, now
    raise OptionError(
        "output_dir",
        "{field}={path} holds a demo run with other settings ("
        + "; ".join(
            f"{{{name}}}: {{old{i}:g}} -> {{new{i}:g}}"
            for i, (name, _, _) in enumerate(changed)
        )
        + "). Rerun with the same ones to resume it, or pick a new "
        "{field}.",
        [name for name, _, _ in changed],
        path=os.path.abspath(output_dir),
        **values,
    )


def run_demo(options, log=_log_to_stderr):
    """Writes the digits, trains and evaluates the demo model, and writes
    its reliability diagram and report.

    Args:
        options: a `DemoOptions`.
        log: called with each progress line (default: printed to stderr).

    Returns:
        `train_lib.run_experiment`'s summary plus data_dir,
        reliability_png, params, seconds and report (the report's path).

    Raises:
        OptionError: `epochs` below 1 (named).
    """
    start = time.time()
    from assemble_tf.runs.models import build_run_model
    from assemble_tf.training import train_lib
    from assemble_tf.training import trainer as trainer_lib

    if options.epochs < 1:
        raise OptionError(
            "epochs",
            "{field}={value} must be at least 1.",
            value=options.epochs,
        )
    # Before: a NotADirectoryError traceback for a file in the way.
    check_writable_folder("output_dir", options.output_dir)
    data_dir = prepare_data(os.path.abspath(options.output_dir), log)
    config = demo_config(options, data_dir)
    adopt_moved_run(config, log)
    _check_same_flags(config, options.output_dir)
    try:
        summary = train_lib.run_experiment(config)
    except trainer_lib.OtherBackendRunError as e:
        # The demo has no warm start to offer (before: "--warm_start from
        # it", a flag tools.demo does not have).
        raise OptionError(
            "output_dir",
            "{field}={path} holds a demo run trained under the {writer} "
            "backend; rerun with KERAS_BACKEND={writer} to reuse it, or "
            "pick a new {field}.",
            path=os.path.abspath(options.output_dir),
            writer=e.values["writer"],
        ) from None
    except OptionError as e:
        out = os.path.abspath(options.output_dir)
        if "optimizer" in e.others:
            # A demo of an earlier version: the demo has no --optimizer
            # (before: "add --optimizer=keras_sgd", an unknown flag).
            raise OptionError(
                "output_dir",
                "{field}={path} holds a demo run of an earlier version "
                "(trained with Keras' SGD, which the demo no longer uses): "
                "pick a new {field}, or delete that one.",
                path=out,
            ) from None
        # The run folder is <output_dir>/run: the demo's flag for it
        # (before: "pick a new `model_dir`", no demo flag).
        path = e.values.get("path")
        values = {"path": out} if path == config.model_dir else {}
        raise e.renamed({"model_dir": "output_dir"}, **values) from None
    with open(summary["history"]) as f:
        history = json.load(f)
    reliability = os.path.join(config.model_dir, "reliability.png")
    plot_reliability(history, reliability)
    summary.update(
        data_dir=data_dir,
        reliability_png=reliability,
        params=build_run_model(config).count_params(),
        seconds=time.time() - start,
    )
    summary["report"] = os.path.join(config.model_dir, "report.md")
    write_report(summary["report"], config, summary, history)
    return summary
