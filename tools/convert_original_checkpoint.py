r"""Converts a checkpoint of the original TF1 Assemble-ResNet code to Keras.

    python -m tools.convert_original_checkpoint \
        --checkpoint=/ckpts/assemble_r50/model.ckpt-750683 \
        --preset=assemble_resnet50 --output=assemble_r50.weights.h5

The checkpoint comes from clovaai/assembled-cnn (branch master,
resnet_version 1 or 2). Optimizer slots and global_step are ignored; any
other unmatched or missing variable, or a shape mismatch, stops the
conversion with the full list. `--golden=FILE.npz` (arrays `inputs`,
`logits`) checks the converted model against logits the original graph
produced and fails when max |diff| > `--tolerance` x max |logit|. The work
is `assemble_tf.convert.run.convert` and `verify`.
"""

from absl import flags

from flags import model_flags
from official.utils.flags import core as flags_core

FLAGS = flags.FLAGS


def define_flags():
    """Defines --preset and its overrides, and the conversion's flags."""
    model_flags.define_model_flags()
    flags.DEFINE_string(
        "checkpoint", None, "TF1 checkpoint prefix (without .index)."
    )
    flags.DEFINE_string("output", None, "Keras weights file, *.weights.h5.")
    flags.DEFINE_string(
        "golden", None, "Optional .npz with `inputs` and `logits` to verify."
    )
    flags.DEFINE_float(
        "tolerance", 1e-3, "Allowed max |diff| as a fraction of max |logit|."
    )
    flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")
    flags.mark_flags_as_required(["checkpoint", "output"])


def options_from_flags(flag_values):
    """The `ConvertOptions` of the parsed flags."""
    from assemble_tf.convert import run

    return run.ConvertOptions(
        checkpoint=flag_values.checkpoint,
        preset=flag_values.preset,
        output=flag_values.output,
        model_overrides=model_flags.model_overrides(flag_values),
        overwrite=flag_values.overwrite,
        golden=flag_values.golden,
        tolerance=flag_values.tolerance,
    )


def main(argv):
    del argv
    from assemble_tf.convert import run

    options = options_from_flags(FLAGS)
    _, count, checked = run.convert(options)
    print(f"Copied {count} variables into {options.output}")
    if checked:
        diff, scale = checked
        print(
            f"Golden check passed: max |diff| {diff:.3g} "
            f"(max |logit| {scale:.3g}, ratio {diff / scale:.2g})"
        )


if __name__ == "__main__":
    define_flags()
    flags_core.run(
        main,
        tensorflow_only="the .weights.h5 it writes loads under any backend.",
    )
