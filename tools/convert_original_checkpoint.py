"""Converts a checkpoint of the original TF1 Assemble-ResNet code to Keras.

    python -m tools.convert_original_checkpoint \
        --checkpoint=/ckpts/assemble_r50/model.ckpt-750683 \
        --preset=assemble_resnet50 --output=assemble_r50.weights.h5

The checkpoint comes from clovaai/assembled-cnn (branch master,
resnet_version 1 or 2). Optimizer slots and global_step are ignored; any
other unmatched or missing variable, or a shape mismatch, stops the
conversion with the full list. `--golden=FILE.npz` (arrays `inputs`,
`logits`) checks the converted model against logits the original graph
produced and fails when max |diff| > `--tolerance` x max |logit|.
"""

import os

from absl import flags

from flags import model_flags
from official.utils.flags import core as flags_core

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
FLAGS = flags.FLAGS


def convert(checkpoint, preset, output, overrides, overwrite=False):
    """Converts and saves; returns `(model, num_variables)`."""
    from assemble_tf.convert.original_checkpoint import build_and_load
    from assemble_tf.models import build_model

    if not output.endswith(".weights.h5"):
        raise ValueError(
            f"--output must end with .weights.h5 (Keras 3 weights file). "
            f"Received: --output={output}"
        )
    if os.path.exists(output) and not overwrite:
        raise FileExistsError(
            f"--output={output} exists; pass --overwrite to replace it."
        )
    model, count = build_and_load(
        checkpoint,
        lambda layout, **kw: build_model(preset, layout, **kw),
        **overrides,
    )
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    model.save_weights(output)
    return model, count


def verify(model, golden, tolerance):
    """Returns `(max_diff, max_logit)`; raises ValueError past tolerance."""
    import numpy as np

    data = np.load(golden)
    logits = np.asarray(model(data["inputs"], training=False))
    diff = float(np.abs(logits - data["logits"]).max())
    scale = float(np.abs(data["logits"]).max())
    if diff > tolerance * scale:
        raise ValueError(
            f"Converted model differs from {golden}: max |diff| {diff:.4g} "
            f"> {tolerance} x max |logit| {scale:.4g}."
        )
    return diff, scale


def main(argv):
    del argv
    model, count = convert(
        FLAGS.checkpoint,
        FLAGS.preset,
        FLAGS.output,
        model_flags.model_overrides(FLAGS),
        FLAGS.overwrite,
    )
    print(f"Copied {count} variables into {FLAGS.output}")
    if FLAGS.golden:
        diff, scale = verify(model, FLAGS.golden, FLAGS.tolerance)
        print(
            f"Golden check passed: max |diff| {diff:.3g} "
            f"(max |logit| {scale:.3g}, ratio {diff / scale:.2g})"
        )


if __name__ == "__main__":
    model_flags.define_model_flags()
    flags.mark_flags_as_required(["checkpoint", "output"])
    flags_core.run(main)
