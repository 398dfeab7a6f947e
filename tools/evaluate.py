"""Evaluates a training run or imported weights on a validation split.

    python -m tools.evaluate --model_dir=/runs/a50            # latest ckpt
    python -m tools.evaluate --model_dir=/runs/a50 --checkpoint=best
    python -m tools.evaluate --preset=assemble_resnet50 \
        --weights=assemble_r50.weights.h5 --data_dir=/data/imagenet \
        --output_dir=/evals/a50

Reports top-1, top-5, cross-entropy and ECE (10 bins) over the whole split
(no dropped partial batch), writes `eval.json` and a reliability diagram
`reliability.png`, and prints one JSON line.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from official.utils.flags import core as flags_core  # noqa: E402

flags.DEFINE_string("model_dir", None, "A training run (holds config.json).")
flags.DEFINE_string(
    "checkpoint",
    None,
    "Checkpoint prefix, 'latest' (default with --model_dir) or 'best'.",
)
flags.DEFINE_string("weights", None, "A .weights.h5 file (e.g. imported).")
flags.DEFINE_string("preset", None, "Preset, when there is no model_dir.")
flags.DEFINE_string("data_dir", None, "Override the run's data_dir.")
flags.DEFINE_string("validation_pattern", None, "Override the shard glob.")
flags.DEFINE_integer("num_classes", None, "Override (no model_dir).")
flags.DEFINE_integer("label_offset", None, "Override the label offset.")
flags.DEFINE_string("eval_preprocessing", None, "Override resize/crop.")
flags.DEFINE_integer("batch_size", 100, "Eval batch size.", lower_bound=1)
flags.DEFINE_string(
    "output_dir",
    None,
    "Where eval.json and reliability.png go (default: model_dir).",
)
FLAGS = flags.FLAGS


def resolve(flag_values):
    """Returns (config, checkpoint_prefix_or_None, weights_or_None)."""
    from assemble_tf import config as config_lib
    from assemble_tf.training import trainer as trainer_lib

    data, model = {}, {}
    for name, group in (
        ("data_dir", data),
        ("validation_pattern", data),
        ("num_classes", data),
        ("label_offset", data),
        ("eval_preprocessing", data),
    ):
        if flag_values[name].value is not None:
            group[name] = flag_values[name].value
    overrides = {
        "data": data,
        "model": model,
        "train": {"eval_batch_size": flag_values.batch_size},
    }
    if flag_values.model_dir:
        path = os.path.join(flag_values.model_dir, "config.json")
        base = config_lib.ExperimentConfig.from_json(path).to_dict()
        for group, values in overrides.items():
            base[group].update(values)
        config = config_lib.ExperimentConfig.from_dict(base)
        config_lib.validate(config)
    elif flag_values.preset:
        if not flag_values.weights:
            raise ValueError("--preset needs --weights (or use --model_dir).")
        out = flag_values.output_dir or os.path.dirname(
            os.path.abspath(flag_values.weights)
        )
        config = config_lib.make_config(out, flag_values.preset, overrides)
    else:
        raise ValueError("Pass --model_dir, or --preset with --weights.")
    checkpoint = None
    if not flag_values.weights:
        checkpoint = trainer_lib.find_checkpoint(
            config.model_dir, flag_values.checkpoint or "latest"
        )
    return config, checkpoint, flag_values.weights


def main(argv):
    del argv
    import tensorflow as tf
    from tqdm import tqdm

    from assemble_tf.evaluation import plots
    from assemble_tf.evaluation.evaluator import Evaluator
    from assemble_tf.training import trainer as trainer_lib

    config, checkpoint, weights = resolve(FLAGS)
    strategy = trainer_lib.setup_runtime(config)
    with strategy.scope():
        model = trainer_lib.build_run_model(config)
        evaluator = Evaluator(model, strategy)
    if weights:
        model.load_weights(weights)
    else:
        tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial()
    input_config = trainer_lib.input_config(config, is_training=False)
    with tqdm(desc="evaluating", unit="batch", file=sys.stderr) as bar:
        result = evaluator.evaluate(evaluator.dataset(input_config), bar)
    out_dir = FLAGS.output_dir or config.model_dir
    os.makedirs(out_dir, exist_ok=True)
    png = os.path.join(out_dir, "reliability.png")
    rel = result["reliability"]
    plots.reliability_diagram(
        (rel["count"], rel["confidence"], rel["accuracy"]),
        png,
        title=f"{config.model.preset}: top-1 {result['top1']:.4f}",
    )
    summary = {k: v for k, v in result.items() if k != "reliability"}
    summary.update(
        checkpoint=checkpoint,
        weights=weights,
        reliability_png=png,
        eval_json=os.path.join(out_dir, "eval.json"),
    )
    with open(summary["eval_json"], "w") as f:
        json.dump(dict(summary, reliability=rel), f, indent=1)
    print(json.dumps(summary))


if __name__ == "__main__":
    app.run(flags_core.clean_errors(main))
