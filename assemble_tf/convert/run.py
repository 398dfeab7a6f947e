"""Converts a checkpoint of the original TF1 Assemble-ResNet code to Keras.

The work of `tools.convert_original_checkpoint`. The checkpoint comes from
clovaai/assembled-cnn (branch master, resnet_version 1 or 2; Lee et al.
2020, https://arxiv.org/abs/2001.06268) and is matched variable by
variable by `assemble_tf.convert.original_checkpoint`: optimizer slots and
global_step are ignored; any other unmatched or missing variable, or a
shape mismatch, stops the conversion with the full list. `convert` saves
the Keras weights file; `verify` checks the converted model against logits
the original graph produced (a golden `.npz` with arrays `inputs`,
`logits`) and fails when max |diff| > tolerance x max |logit|; with
`golden` set, `convert` runs it before the file is written.

    options = run.ConvertOptions(
        checkpoint="/ckpts/assemble_r50/model.ckpt-750683",
        preset="assemble_resnet50", output="assemble_r50.weights.h5",
        golden="golden.npz")
    model, count, (diff, scale) = run.convert(options)
"""

import dataclasses
import functools
import math
import os

from official.utils.misc.validation import (
    MissingPathError,
    OptionError,
    PathExistsError,
    check_creatable_path,
    first_line,
)

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
    check_creatable_path("output", output, folder=False)
    if os.path.isdir(output):
        # Before: an h5py IsADirectoryError traceback when overwriting.
        raise OptionError(
            "output",
            "{field}={output} is a folder: name the weights file, e.g. "
            "{field}={example}.",
            output=output,
            example=os.path.join(output, "model" + WEIGHTS_SUFFIX),
        )
    if os.path.exists(output) and not overwrite:
        raise PathExistsError(
            "output",
            "{field}={output} exists; pass {overwrite} to replace it.",
            ["overwrite"],
            output=output,
        )


def _model_kwargs(options):
    """The `build_resnet` arguments of the preset with the overrides."""
    from assemble_tf import presets

    return {
        **presets.get(options.preset).model_kwargs(),
        **options.model_overrides,
    }


def _check_strides(options):
    """The original's stage strides are (1, 2, 2, 2), BigLittleNet's
    merges (2, 2, 1, 2), and `no_downsample` sets the last to 1: any other
    `stage_strides` has no variables of its own, so the weights converted
    and computed other logits (before: accepted)."""
    strides = options.model_overrides.get("stage_strides")
    if strides is None:
        return
    kwargs = _model_kwargs(options)
    usual = (2, 2, 1, 2) if kwargs.get("big_little") else (1, 2, 2, 2)
    if tuple(strides) not in (usual, usual[:3] + (1,)):
        raise OptionError(
            "stage_strides",
            "{field}={value}: the original's stage strides are {usual}, or "
            "{no_downsample} with its no_downsample; a checkpoint of it "
            "computes other logits under any other.",
            value=",".join(map(str, strides)),
            usual=",".join(map(str, usual)),
            no_downsample=",".join(map(str, usual[:3] + (1,))),
        )


def _check_shortcut(options):
    """The original code's ResNet-D shortcut is "avg2_tf1": it also pools
    S1's stride-1 projection, and counts the zero padding of an odd side.
    A preset's "avg2" (the paper's) loaded its checkpoints without a word
    and computed other logits (max |diff| 12 of 49 on a tiny R50-D + SK
    at 112 px)."""
    if _model_kwargs(options).get("shortcut") == "avg2":
        raise OptionError(
            "shortcut",
            "{preset} has the paper's ResNet-D shortcut (avg2); the "
            "original code's, whose checkpoints these are, also pools the "
            "first stage's stride-1 projection and counts the padding of "
            "an odd side: convert with {field}=avg2_tf1, and give the "
            "model that loads the weights the same shortcut (the model "
            "option `shortcut`, e.g. build_model(..., shortcut='avg2_tf1')).",
            preset=options.preset,
        )


def convert(options):
    """Converts the checkpoint, checks it against `options.golden` (when
    given) and only then saves the weights file: a failed check leaves no
    file for the next run to trip over.

    Args:
        options: a `ConvertOptions`.

    Returns:
        `(model, number of variables copied, (max_diff, max_logit) of the
        golden check or None)`.

    Raises:
        OptionError, FileExistsError: a bad `output` (`check_output`) or
            `golden` (`read_golden`), or an unreadable `checkpoint`
            (`MissingPathError`, also a FileNotFoundError), before any
            work.
        ValueError: variables that do not match the model, all listed; or
            the golden check failed.
    """
    from assemble_tf.convert.original_checkpoint import build_and_load
    from assemble_tf.models import build_model

    check_output(options.output, options.overwrite)
    if not 0 <= options.tolerance < math.inf:
        # Before: "differs ... > -1.0 x max |logit|", the model blamed;
        # and nan passed every check (no comparison with nan is true).
        raise OptionError(
            "tolerance",
            "{field}={value} must be a finite number >= 0: the allowed max "
            "|diff| as a fraction of max |logit|, e.g. {field}=1e-3.",
            value=options.tolerance,
        )
    _check_strides(options)
    _check_shortcut(options)
    golden = read_golden(options.golden) if options.golden else None
    _check_readable(options.checkpoint)
    try:
        model, count = build_and_load(
            options.checkpoint,
            functools.partial(build_model, options.preset),
            **options.model_overrides,
        )
    except FileNotFoundError as e:  # a variable's data unreadable
        raise MissingPathError("checkpoint", "{field}: {e}", e=e) from None
    checked = None
    if golden is not None:
        checked = verify(model, options.golden, options.tolerance, golden)
    os.makedirs(os.path.dirname(os.path.abspath(options.output)), exist_ok=True)
    model.save_weights(options.output)
    return model, count, checked


def _check_readable(prefix):
    """The checkpoint's index read before the model is built: an
    unreadable prefix is refused naming its option (before: the same
    message without it)."""
    from assemble_tf.convert.original_checkpoint import read_checkpoint

    try:
        read_checkpoint(prefix)
    except FileNotFoundError as e:
        raise MissingPathError("checkpoint", "{field}: {e}", e=e) from None
    except ValueError as e:  # a checkpoint of ours
        raise OptionError("checkpoint", "{field}: {e}", e=e) from None


def read_golden(path):
    """The `inputs` and `logits` arrays of a golden `.npz`.

    Raises:
        OptionError: (field `golden`) missing, not an .npz, or without
            those arrays.
    """
    import zipfile

    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            missing = {"inputs", "logits"} - set(data.files)
            if missing:
                raise OptionError(
                    "golden",
                    "{field}={path} lacks the arrays {missing}: it needs "
                    "`inputs` (the images) and `logits` (the original "
                    "graph's outputs).",
                    path=path,
                    missing=sorted(missing),
                )
            inputs, logits = data["inputs"], data["logits"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        if isinstance(e, OptionError):
            raise
        reason = first_line(e)
        if "allow_pickle" in reason:
            # numpy's guess at any other file (before: the user was told
            # to pass allow_pickle, which they cannot).
            reason = "neither an .npz archive nor a .npy array"
        raise OptionError(
            "golden",
            "{field}={path} is not a readable .npz ({reason}).",
            path=path,
            reason=reason,
        ) from None
    if not (
        inputs.ndim == 4
        and inputs.shape[-1] == 3
        and logits.ndim == 2
        and len(logits) == len(inputs)
    ):
        # Before: a Keras call dump, or numpy's broadcast error.
        raise OptionError(
            "golden",
            "{field}={path} holds inputs of shape {inputs} and logits of "
            "shape {logits}; it needs inputs [N, H, W, 3] (RGB images) and "
            "logits [N, K] of the same N.",
            path=path,
            inputs=inputs.shape,
            logits=logits.shape,
        )
    return {"inputs": inputs, "logits": logits}


def verify(model, golden, tolerance, data=None):
    """Returns `(max_diff, max_logit)` of `model` on the golden inputs.

    Raises:
        ValueError: max |diff| > `tolerance` x max |logit|, or inputs of
            another size than the model's.
    """
    import numpy as np

    data = data if data is not None else read_golden(golden)
    expected = tuple(model.input.shape[1:3])
    given = tuple(data["inputs"].shape[1:3])
    if None not in expected and expected != given:
        raise ValueError(
            f"{golden} holds {given[0]}x{given[1]} images and the model "
            f"takes {expected[0]}x{expected[1]}: convert with the image "
            "size the golden logits were made at."
        )
    width, classes = data["logits"].shape[1], model.output_shape[-1]
    if width != classes:
        raise ValueError(
            f"{golden} holds {width} logits per image and the model makes "
            f"{classes}: convert with the class count the golden logits "
            "were made with."
        )
    logits = np.asarray(model(data["inputs"], training=False))
    diff = float(np.abs(logits - data["logits"]).max())
    scale = float(np.abs(data["logits"]).max())
    if not diff <= tolerance * scale:  # a NaN logit fails too
        raise ValueError(
            f"Converted model differs from {golden}: max |diff| {diff:.4g} "
            f"> {tolerance} x max |logit| {scale:.4g}."
        )
    return diff, scale
