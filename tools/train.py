"""Trains a preset with its recipe on TFRecords, on any tf.distribute
strategy, resumably.

    python -m tools.train --preset=assemble_resnet50 \
        --data_dir=/data/imagenet --model_dir=/runs/a50 \
        --distribution_strategy=mirrored --mixed_precision=mixed_float16

The preset sets the architecture and the paper's recipe; any flag set on the
command line overrides it. The resolved configuration is written to
`model_dir/config.json` and rerunning the same command resumes from the last
checkpoint. Prints one JSON line at the end.
"""

import json
import os
import sys

from absl import flags

from flags import config_flags
from official.utils.flags import core as flags_core

FLAGS = flags.FLAGS


def resolve_config(flag_values):
    """Flags -> config; an existing config.json must agree (resume)."""

    config = config_flags.flags_to_config(flag_values)
    check_resume(config)
    return config


def check_resume(config):
    """An existing config.json in model_dir must equal `config` when the
    run has a checkpoint to resume from (without one, the rerun replaces
    it: nothing would be lost)."""
    from assemble_tf import config as config_lib
    from assemble_tf.training import trainer as trainer_lib

    path = os.path.join(config.model_dir, "config.json")
    if os.path.isfile(path):
        old = config_lib.ExperimentConfig.from_json(path)
        try:
            trainer_lib.find_checkpoint(config.model_dir)
        except FileNotFoundError:
            return
        if old != config:
            a, b = old.to_dict(), config.to_dict()
            diffs = [
                f"{g}.{k}: {a[g][k]!r} -> {b[g][k]!r}"
                for g in config_lib.GROUPS
                for k in a[g]
                if a[g][k] != b[g][k]
            ]
            raise ValueError(
                f"--model_dir={config.model_dir} holds a run with a different "
                "configuration (" + "; ".join(diffs) + "). Rerun with the "
                "same flags to resume, or pick a new --model_dir."
            )


def run(config):
    """Trains and evaluates; returns the final summary dict."""
    from assemble_tf.data import checks
    from assemble_tf.training import trainer as trainer_lib

    strategy = trainer_lib.setup_runtime(config)
    checks.check_training_data(config)
    trainer = trainer_lib.Trainer(config, strategy)
    trainer.prepare()  # resume or warm start
    # Only now that the configuration, the data and the starting weights
    # have been checked: a failed start leaves nothing to refuse a rerun.
    config.to_json(os.path.join(config.model_dir, "config.json"))
    history = trainer.train()
    final = history[-1] if history else {}
    summary = {
        "model_dir": config.model_dir,
        "preset": config.model.preset,
        "steps": trainer.step,
        "epochs": final.get("epoch"),
        "train_loss": final.get("train_loss"),
        "top1": final.get("val_top1"),
        "top5": final.get("val_top5"),
        "ece": final.get("val_ece"),
        "train_images_per_sec": final.get("train_images_per_sec"),
        "checkpoint": trainer.manager.latest_checkpoint,
        "history": os.path.join(config.model_dir, "history.json"),
    }
    try:
        from assemble_tf.evaluation import plots

        png = os.path.join(config.model_dir, "training_curves.png")
        plots.training_curves(history, png)
        summary["training_curves"] = png
    except ImportError:
        pass
    return summary


def main(argv):
    del argv
    from assemble_tf.training.trainer import NonFiniteLossError

    config = resolve_config(FLAGS)
    try:
        summary = run(config)
    except NonFiniteLossError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        sys.exit(3)
    print(json.dumps(summary))


if __name__ == "__main__":
    config_flags.define_config_flags()
    flags_core.run(main)
