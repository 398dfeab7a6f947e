r"""Evaluates a training run or imported weights on a validation split.

    python -m tools.evaluate --model_dir=/runs/a50            # latest ckpt
    python -m tools.evaluate --model_dir=/runs/a50 --checkpoint=best
    python -m tools.evaluate --preset=assemble_resnet50 \
        --weights=assemble_r50.weights.h5 --data_dir=/data/imagenet \
        --output_dir=/evals/a50

    python -m tools.evaluate --model_dir=/runs/a50 --precision=bfloat16

Reports top-1, top-5, cross-entropy and ECE (10 bins) over the whole split
(no dropped partial batch), writes `eval.json`, a reliability diagram
`reliability.png` and `per_class.csv` (images and top-1 of each class, by
the names the run keeps), and prints one JSON line (with `worst_classes`:
the 5 classes of the lowest top-1).

`--precision=bfloat16` evaluates the model computing in bfloat16 (as
`tools.export_saved_model --precision=bfloat16` serves it) and, on the same
batches, in float32: the top-level metrics are bfloat16's, "float32" holds
float32's and "agreement" top-1 of both, the top-1 delta in points, the
top-1 agreement (fraction of images whose class is the same) and the mean
relative logit L2 difference; also written as `agreement.md`. The work is
`assemble_tf.evaluation.run.evaluate_model`.
"""

import dataclasses
import json

from absl import flags

from flags import model_source_flags
from official.utils.flags import core as flags_core

FLAGS = flags.FLAGS


def define_flags():
    """Defines the binary's flags (names match `EvaluateOptions` fields)."""
    model_source_flags.define_model_source_flags(model_overrides=True)
    _define_data_flags()
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
        "Where eval.json and reliability.png go (default: model_dir; with "
        "--weights, also beside --model_dir, <weights folder>/eval/<weights "
        "name>).",
    )


def _define_data_flags():
    """What to evaluate on, instead of the run's data and eval crop."""
    flags.DEFINE_string("data_dir", None, "Override the run's data_dir.")
    flags.DEFINE_string("validation_pattern", None, "Override the shard glob.")
    flags.DEFINE_integer("label_offset", None, "Override the label offset.")
    flags.DEFINE_string(
        "eval_preprocessing",
        None,
        "Eval resize/crop instead of the run's or preset's: imagenet (256 "
        "-> 224), imagenet_NNN (int(NNN / 0.875) -> NNN), imagenet_NNNa "
        "(NNN + 1 -> NNN), imagenet_224_256 (292 -> 256), "
        "imagenet_224_256a (257 -> 256).",
    )
    flags.DEFINE_bool("progress", True, "Show a progress bar (on stderr).")


def options_from_flags(flag_values):
    """The `EvaluateOptions` of the parsed flags."""
    from assemble_tf.evaluation import run

    return run.EvaluateOptions(
        **{
            f.name: flag_values[f.name].value
            for f in dataclasses.fields(run.EvaluateOptions)
        }
    )


def main(argv):
    del argv
    from assemble_tf.evaluation import run

    report = run.evaluate_model(options_from_flags(FLAGS))
    print(json.dumps(report))


if __name__ == "__main__":
    define_flags()
    flags_core.run(main, tensorflow_only=True)
