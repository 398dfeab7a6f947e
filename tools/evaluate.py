"""Evaluates a training run or imported weights on a validation split.

    python -m tools.evaluate --model_dir=/runs/a50            # latest ckpt
    python -m tools.evaluate --model_dir=/runs/a50 --checkpoint=best
    python -m tools.evaluate --preset=assemble_resnet50 \
        --weights=assemble_r50.weights.h5 --data_dir=/data/imagenet \
        --output_dir=/evals/a50

    python -m tools.evaluate --model_dir=/runs/a50 --precision=bfloat16

Reports top-1, top-5, cross-entropy and ECE (10 bins) over the whole split
(no dropped partial batch), writes `eval.json` and a reliability diagram
`reliability.png`, and prints one JSON line.

`--precision=bfloat16` evaluates the model computing in bfloat16 (as
`tools.export_saved_model --precision=bfloat16` serves it) and, on the same
batches, in float32: the top-level metrics are bfloat16's, "float32" holds
float32's and "agreement" top-1 of both, the top-1 delta in points, the
top-1 agreement (fraction of images whose class is the same) and the mean
relative logit L2 difference; also written as `agreement.md`.
"""

import json
import os
import sys

from absl import flags

from flags import model_source_flags
from official.utils.flags import core as flags_core

model_source_flags.define_model_source_flags()
flags.DEFINE_string("data_dir", None, "Override the run's data_dir.")
flags.DEFINE_string("validation_pattern", None, "Override the shard glob.")
flags.DEFINE_integer("label_offset", None, "Override the label offset.")
flags.DEFINE_string("eval_preprocessing", None, "Override resize/crop.")
flags.DEFINE_integer("batch_size", 100, "Eval batch size.", lower_bound=1)
flags.DEFINE_enum(
    "precision",
    None,
    ["float32", "bfloat16"],
    "Compute precision (default: the run's --mixed_precision policy); "
    "bfloat16 also evaluates float32 and reports their agreement.",
)
flags.DEFINE_string(
    "output_dir",
    None,
    "Where eval.json and reliability.png go (default: model_dir).",
)
FLAGS = flags.FLAGS


def resolve(flag_values):
    """Returns (config, checkpoint_prefix_or_None, weights_or_None)."""
    from assemble_tf.runs import loading

    data = {
        name: flag_values[name].value
        for name in (
            "data_dir",
            "validation_pattern",
            "num_classes",
            "label_offset",
            "eval_preprocessing",
        )
        if flag_values[name].value is not None
    }
    return loading.resolve(
        **model_source_flags.model_source(flag_values),
        output_dir=flag_values.output_dir,
        data=data,
        train={"eval_batch_size": flag_values.batch_size},
    )


def main(argv):
    del argv
    from tqdm import tqdm

    from assemble_tf.evaluation import plots
    from assemble_tf.evaluation.evaluator import Evaluator
    from assemble_tf.runs import checkpoints, inputs, runtime
    from assemble_tf.runs import models as run_models

    config, checkpoint, weights = resolve(FLAGS)
    strategy = runtime.setup_runtime(config)
    if FLAGS.precision:
        import keras

        keras.config.set_dtype_policy("float32")
    with strategy.scope():
        model = run_models.build_run_model(config)
    checkpoints.restore(model, checkpoint, weights)
    with strategy.scope():
        if FLAGS.precision == "bfloat16":
            from assemble_tf.evaluation.agreement import AgreementEvaluator
            from assemble_tf.export import precision

            bfloat16 = precision.bfloat16_copy(
                model, lambda: run_models.build_run_model(config)
            )
            evaluator = AgreementEvaluator(bfloat16, model, strategy)
        else:
            evaluator = Evaluator(model, strategy)
    input_config = inputs.input_config(config, is_training=False)
    with tqdm(desc="evaluating", unit="batch", file=sys.stderr) as bar:
        result = evaluator.evaluate(evaluator.dataset(input_config), bar)
    out_dir = FLAGS.output_dir or config.model_dir
    os.makedirs(out_dir, exist_ok=True)
    png = os.path.join(out_dir, "reliability.png")
    rel = result["reliability"]
    plots.reliability_diagram(
        (rel["count"], rel["confidence"], rel["accuracy"]),
        png,
        title=f"{config.model.preset}"
        + (f" ({FLAGS.precision})" if FLAGS.precision else "")
        + f": top-1 {result['top1']:.4f}",
    )
    summary = {k: v for k, v in result.items() if k != "reliability"}
    summary.update(
        precision=FLAGS.precision or config.train.mixed_precision,
        checkpoint=checkpoint,
        weights=weights,
        reliability_png=png,
        eval_json=os.path.join(out_dir, "eval.json"),
    )
    if "agreement" in result:
        from assemble_tf.evaluation.agreement import agreement_markdown

        summary["agreement_md"] = os.path.join(out_dir, "agreement.md")
        with open(summary["agreement_md"], "w") as f:
            f.write(agreement_markdown(result))
    with open(summary["eval_json"], "w") as f:
        json.dump(dict(summary, reliability=rel), f, indent=1)
    print(json.dumps(summary))


if __name__ == "__main__":
    flags_core.run(main)
