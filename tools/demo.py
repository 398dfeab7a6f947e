"""The end-to-end demo: real data in, a trained Assemble model out.

    python -m tools.demo --output_dir=demo_out

1. writes scikit-learn's handwritten digits as TFRecords (no download);
2. trains a small Assemble configuration (BigLittleNet + SK + anti-aliasing
   + DropBlock, with Mixup, label smoothing and AutoAugment: the
   assemble_resnet50 recipe at base width 16 on 32x32 inputs) on the CPU;
3. evaluates it on the held-out digits (top-1, top-5, ECE);
4. writes training curves, a reliability diagram and a short report, and
   prints one JSON line.
About six minutes on 2 cores.
Rerunning resumes / reuses what is there.
"""

import json
import os
import sys
import time

from absl import flags

from official.utils.flags import core as flags_core

flags.DEFINE_string("output_dir", "demo_out", "Where everything is written.")
flags.DEFINE_integer("epochs", 40, "Training epochs.", lower_bound=1)
FLAGS = flags.FLAGS

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


def report(path, config, summary, history):
    a, t = config.augment, config.train
    lines = [
        "# Assemble-TF demo report",
        "",
        f"Data: {summary['data_dir']} (scikit-learn digits, 1,438 train / "
        "359 validation, 64x64 JPEG).",
        f"Model: `{config.model.preset}` at base width "
        f"{config.model.base_width}, blocks {config.model.block_sizes}, "
        f"input {config.data.image_size}: BigLittleNet + SK + anti-aliasing "
        f"+ DropBlock ({summary['params']:,} parameters).",
        f"Recipe: {t.epochs:g} epochs, batch {t.batch_size}, SGD momentum "
        f"{t.momentum}, LR {t.base_learning_rate} {t.lr_schedule} with "
        f"{t.warmup_epochs:g} warm-up epoch, weight decay {t.weight_decay}, "
        f"Mixup type {a.mixup_type}, label smoothing {a.label_smoothing}, "
        f"AutoAugment {a.autoaugment}, DropBlock keep "
        f"{' -> '.join(map(str, t.dropblock_keep_prob or (1.0,)))}.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| top-1 | {summary['top1']:.4f} |",
        f"| top-5 | {summary['top5']:.4f} |",
        f"| ECE (10 bins) | {summary['ece']:.4f} |",
        f"| train images/s (last epoch) | "
        f"{summary['train_images_per_sec']:.0f} |",
        f"| wall time | {summary['seconds']:.0f} s |",
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
    lines += [
        "",
        "![training curves](training_curves.png)",
        "![reliability](reliability.png)",
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main(argv):
    del argv
    start = time.time()
    from assemble_tf import config as config_lib
    from assemble_tf.data import demo_dataset
    from assemble_tf.evaluation import plots
    from assemble_tf.training import train_lib

    out = os.path.abspath(FLAGS.output_dir)
    data_dir = os.path.join(out, "digits")
    if not os.path.isfile(os.path.join(data_dir, "summary.json")):
        print("Writing the digits dataset ...", file=sys.stderr)
        demo_dataset.make_demo_dataset(data_dir, progress=False)
    overrides = {k: dict(v) for k, v in DEMO_OVERRIDES.items()}
    overrides["data"]["data_dir"] = data_dir
    overrides["train"]["epochs"] = float(FLAGS.epochs)
    model_dir = os.path.join(out, "run")
    config = config_lib.make_config(model_dir, "assemble_resnet50", overrides)
    summary = train_lib.run_experiment(config)
    with open(summary["history"]) as f:
        history = json.load(f)
    rel = history[-1]["val_reliability"]
    reliability = os.path.join(model_dir, "reliability.png")
    plots.reliability_diagram(
        (rel["count"], rel["confidence"], rel["accuracy"]),
        reliability,
        title="Demo: held-out digits",
    )
    from assemble_tf.runs.models import build_run_model

    summary.update(
        data_dir=data_dir,
        reliability_png=reliability,
        params=build_run_model(config).count_params(),
        seconds=time.time() - start,
    )
    summary["report"] = os.path.join(model_dir, "report.md")
    report(summary["report"], config, summary, history)
    print(json.dumps(summary))


if __name__ == "__main__":
    flags_core.run(main)
