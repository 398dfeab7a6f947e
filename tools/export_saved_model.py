"""Exports a trained or imported model as a verified SavedModel.

    python -m tools.export_saved_model --model_dir=/runs/a50 \
        --export_dir=/serving/a50/1
    python -m tools.export_saved_model --preset=assemble_resnet50 \
        --weights=assemble_r50.weights.h5 --export_dir=/serving/a50/1

    python -m tools.export_saved_model --model_dir=/runs/a50 \
        --precision=bfloat16 --export_dir=/serving/a50_bf16/1

Signatures: `serving_default` (JPEG/PNG bytes -> classes, probabilities,
logits, with the preset's eval preprocessing in the graph), `preprocessed`
(float eval crops) and `feature_vector` (pooled features). The export is
written to a temporary folder, reloaded and compared with the in-memory
model signature by signature, then renamed into place.

`--precision=bfloat16` serves the same weights computing in bfloat16 (R50:
1.6-2.7x the float32 images/s on a CPU with AVX512_BF16 / AMX); the inputs
and outputs stay float32 (and string). The verification then also compares
every signature with the float32 model on 32 images: mean relative L2 of
logits and features <= 0.15 and top-1 agreement >= 0.8, else nothing is
written. Check the accuracy on data with
`tools.evaluate --precision=bfloat16`.
"""

import json
import os
import sys

from absl import flags

from flags import model_source_flags
from official.utils.flags import core as flags_core

model_source_flags.define_model_source_flags(model_overrides=True)
flags.DEFINE_string(
    "preprocessing", None, "Eval preprocessing (default: the run's/preset's)."
)
flags.DEFINE_string("export_dir", None, "Where the SavedModel goes.")
flags.DEFINE_bool("jit_compile", False, "XLA-compile `preprocessed`.")
flags.DEFINE_bool(
    "fold_bn", False, "Fold every conv + BatchNorm pair (faster inference)."
)
flags.DEFINE_bool("overwrite", False, "Replace an existing export_dir.")
flags.DEFINE_enum(
    "precision",
    "float32",
    ["float32", "bfloat16"],
    "Compute precision of the served model (inputs and outputs stay "
    "float32); bfloat16 is verified against the float32 model.",
)
flags.mark_flag_as_required("export_dir")
FLAGS = flags.FLAGS


def load_model():
    """Returns (model, eval preprocessing, rebuild) from the flags.

    `rebuild(**extra)` builds the same architecture again (BN folding).
    """

    from assemble_tf import config as config_lib
    from assemble_tf import presets
    from assemble_tf.models import build_model
    from assemble_tf.runs import checkpoints
    from assemble_tf.runs import models as run_models

    if FLAGS.model_dir:
        config = config_lib.ExperimentConfig.from_json(
            os.path.join(FLAGS.model_dir, "config.json")
        )
        model = run_models.build_run_model(config)
        if FLAGS.weights:
            model.load_weights(FLAGS.weights)
        else:
            prefix = checkpoints.find_checkpoint(
                FLAGS.model_dir, FLAGS.checkpoint or "latest"
            )
            checkpoints.restore(model, prefix)
        return (
            model,
            config.data.eval_preprocessing,
            lambda **extra: run_models.build_run_model(config, **extra),
        )
    if not (FLAGS.preset and FLAGS.weights):
        raise ValueError("Pass --model_dir, or --preset with --weights.")
    preset = presets.get(FLAGS.preset)
    kwargs = model_source_flags.parse_overrides(FLAGS.model_overrides)
    if FLAGS.num_classes:
        kwargs["num_classes"] = FLAGS.num_classes
    model = build_model(FLAGS.preset, **kwargs)
    model.load_weights(FLAGS.weights)
    return (
        model,
        preset.eval_preprocessing,
        lambda **extra: build_model(FLAGS.preset, **kwargs, **extra),
    )


def main(argv):
    del argv
    from assemble_tf.export import precision
    from assemble_tf.export import saved_model as export_lib

    model, ptype, rebuild = load_model()
    ptype = FLAGS.preprocessing or ptype
    float32_model = model
    if FLAGS.fold_bn:
        from assemble_tf.export.optimize import fold_batch_norm

        folded = rebuild(fold_bn=True)
        count = fold_batch_norm(model, folded)
        print(f"Folded {count} BatchNorm layers.", file=sys.stderr)
        model = folded
    reference = None
    if FLAGS.precision == "bfloat16":
        model = precision.bfloat16_copy(
            model, lambda: rebuild(fold_bn=FLAGS.fold_bn)
        )
        reference = export_lib.ReferenceCheck(float32_model)
    diffs = export_lib.export_saved_model(
        model,
        FLAGS.export_dir,
        ptype,
        jit_compile=FLAGS.jit_compile,
        overwrite=FLAGS.overwrite,
        reference=reference,
    )
    summary = {
        "export_dir": os.path.abspath(FLAGS.export_dir),
        "preprocessing": ptype,
        "precision": FLAGS.precision,
        "max_abs_diff": diffs,
    }
    if reference is not None:
        summary["vs_float32"] = dict(
            reference.measured, tolerance=reference.tolerance()
        )
    print(json.dumps(summary))


if __name__ == "__main__":
    flags_core.run(main)
