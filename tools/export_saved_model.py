r"""Exports a trained or imported model as a verified SavedModel.

    python -m tools.export_saved_model --model_dir=/runs/a50 \
        --export_dir=/serving/a50/1
    python -m tools.export_saved_model --preset=assemble_resnet50 \
        --weights=assemble_r50.weights.h5 --export_dir=/serving/a50/1

    python -m tools.export_saved_model --model_dir=/runs/a50 \
        --precision=bfloat16 --export_dir=/serving/a50_bf16/1

    python -m tools.export_saved_model --preset=assemble_resnet50 \
        --weights=assemble_r50.weights.h5 --class_names=imagenet_labels.txt \
        --export_dir=/serving/a50/1

Signatures: `serving_default` (JPEG/PNG bytes -> classes, class_names,
probabilities, logits, with the preset's eval preprocessing in the graph),
`preprocessed` (float eval crops) and `feature_vector` (the embedding: an
embedding head's batch-normalised output, else the pooled features).
The class names are the run's (its class_names.txt, written by training)
or `--class_names`' (else the indices); the SavedModel carries them as
`assets/class_names.txt`, and its eval preprocessing as
`assets/preprocessing.txt` (what a KD teacher and retrieval read). The
export is written to a temporary folder, reloaded and compared with the
in-memory model signature by signature, then renamed into place.

`--precision=bfloat16` serves the same weights computing in bfloat16 (R50:
1.6-2.7x the float32 images/s on a CPU with AMX, about 1.6x with
AVX512_BF16 alone); the inputs
and outputs stay float32 (and string). The verification then also compares
every signature with the float32 model on 32 images: mean relative L2 of
logits and features <= 0.15 and top-1 agreement >= 0.8, else nothing is
written. Check the accuracy on data with
`tools.evaluate --precision=bfloat16`. The work is
`assemble_tf.export.saved_model_run.export`.
"""

import dataclasses
import json

from absl import flags

from flags import model_source_flags
from official.utils.flags import core as flags_core

FLAGS = flags.FLAGS


def define_flags():
    """Defines the binary's flags (names match `ExportOptions` fields)."""
    model_source_flags.define_model_source_flags(model_overrides=True)
    _define_served_model_flags()
    flags.DEFINE_alias("eval_preprocessing", "preprocessing")
    flags.DEFINE_string("export_dir", None, "Where the SavedModel goes.")
    flags.DEFINE_bool(
        "overwrite",
        False,
        "Replace an existing export_dir (only a SavedModel or an empty "
        "folder).",
    )
    flags.DEFINE_string(
        "class_names",
        None,
        "File naming each logit (one name per line, logit 0 first, or a "
        "builder's labels.txt) for the class_names outputs; default the "
        "run's class_names.txt, else the logits' indices.",
    )
    flags.mark_flag_as_required("export_dir")


def _define_served_model_flags():
    """What the signatures compute: preprocessing, XLA, folding, precision."""
    flags.DEFINE_string(
        "preprocessing",
        None,
        "Eval preprocessing (default: the run's/preset's); also spelled "
        "--eval_preprocessing, as in the other model-source binaries.",
    )
    flags.DEFINE_bool(
        "jit_compile",
        False,
        "XLA-compile the network of `preprocessed` (and so of "
        "`serving_default`, which calls it; `feature_vector` is not).",
    )
    flags.DEFINE_bool(
        "fold_bn", False, "Fold every conv + BatchNorm pair (faster inference)."
    )
    flags.DEFINE_enum(
        "precision",
        "float32",
        ["float32", "bfloat16"],
        "Compute precision of the served model (inputs and outputs stay "
        "float32); bfloat16 is verified against the float32 model (for "
        "TensorFlow / TF Serving: TFLite has no bfloat16 ops).",
    )


def options_from_flags(flag_values):
    """The `ExportOptions` of the parsed flags."""
    from assemble_tf.export import saved_model_run

    return saved_model_run.ExportOptions(
        **{
            f.name: flag_values[f.name].value
            for f in dataclasses.fields(saved_model_run.ExportOptions)
        }
    )


def main(argv):
    del argv
    from assemble_tf.export import saved_model_run

    report = saved_model_run.export(options_from_flags(FLAGS))
    print(json.dumps(report))


if __name__ == "__main__":
    define_flags()
    flags_core.run(main, tensorflow_only=True)
