"""Converts a checkpoint of the original TF1 Assemble-ResNet code to Keras.

The work of `tools.convert_original_checkpoint`. The checkpoint comes from
clovaai/assembled-cnn (branch master, resnet_version 1 or 2; Lee et al.
2020, https://arxiv.org/abs/2001.06268) and is matched variable by
variable by `assemble_tf.convert.original_checkpoint`: optimizer slots and
global_step are ignored; any other unmatched or missing variable, or a
shape mismatch, stops the conversion with the full list. `convert` saves
the Keras weights file; `verify` checks the converted model against logits
the original graph produced (a golden `.npz` with arrays `inputs`,
`logits`) and fails when max |diff| > tolerance x max |logit|.

    options = run.ConvertOptions(
        checkpoint="/ckpts/assemble_r50/model.ckpt-750683",
        preset="assemble_resnet50", output="assemble_r50.weights.h5")
    model, count = run.convert(options)
    diff, scale = run.verify(model, "golden.npz", options.tolerance)
"""

import dataclasses
import functools
import os

from official.utils.misc.validation import OptionError, PathExistsError

WEIGHTS_SUFFIX = ".weights.h5"


@dataclasses.dataclass(frozen=True)
class ConvertOptions:
    """What to convert; field names are
    `tools.convert_original_checkpoint`'s flags.

    Attributes:
        checkpoint: TF1 checkpoint prefix (without .index).
        preset: the preset the checkpoint's model is.
        output: the Keras weights file to write, *.weights.h5.
        model_overrides: `build_model` arguments of the checkpoint's model
            (depth, width, class count, ...).
        overwrite: replace an existing `output`.
        golden: an .npz with `inputs` and `logits` to verify, or None.
        tolerance: allowed max |diff| as a fraction of max |logit|.
    """

    checkpoint: str
    preset: str
    output: str
    model_overrides: dict = dataclasses.field(default_factory=dict)
    overwrite: bool = False
    golden: str | None = None
    tolerance: float = 1e-3


def check_output(output, overwrite=False):
    """Refuses an `output` that is not a Keras 3 weights file, or that
    exists without `overwrite`.

    Raises:
        OptionError: not *.weights.h5 (named).
        FileExistsError: it exists and not `overwrite`.
    """
    if not output.endswith(WEIGHTS_SUFFIX):
        raise OptionError(
            "output",
            "{field} must end with .weights.h5 (Keras 3 weights file). "
            "Received: {field}={output}",
            output=output,
        )
    if os.path.exists(output) and not overwrite:
        raise PathExistsError(
            "output",
            "{field}={output} exists; pass {overwrite} to replace it.",
            ["overwrite"],
            output=output,
        )


def convert(options):
    """Converts the checkpoint and saves the weights file.

    Args:
        options: a `ConvertOptions`.

    Returns:
        `(model, number of variables copied)`.

    Raises:
        OptionError, FileExistsError: a bad `output` (`check_output`).
        ValueError: variables that do not match the model, all listed.
    """
    from assemble_tf.convert.original_checkpoint import build_and_load
    from assemble_tf.models import build_model

    check_output(options.output, options.overwrite)
    model, count = build_and_load(
        options.checkpoint,
        functools.partial(build_model, options.preset),
        **options.model_overrides,
    )
    os.makedirs(os.path.dirname(os.path.abspath(options.output)), exist_ok=True)
    model.save_weights(options.output)
    return model, count


def verify(model, golden, tolerance):
    """Returns `(max_diff, max_logit)` of `model` on the golden inputs.

    Raises:
        ValueError: max |diff| > `tolerance` x max |logit|.
    """
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
