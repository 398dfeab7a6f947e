"""Flags that name the trained model a binary loads.

One definition for tools.evaluate, eval_robustness, eval_retrieval and
export_saved_model: a training run (`--model_dir`, `--checkpoint`) or a
preset with a weights file (`--preset`, `--weights`, `--num_classes`), and
optionally `--model_overrides`. Resolving them is library work
(`assemble_tf.evaluation.loading`); these functions only define, validate
and read the flags.
"""

from absl import flags

from assemble_tf import config as config_lib
from assemble_tf import presets
from official.utils.flags import core as flags_core
from official.utils.misc.validation import OptionError

SOURCE_FLAGS = ("model_dir", "checkpoint", "preset", "weights")


def _as_flag(error):
    """A library error as a binary prints it (options as their flags)."""
    return error.as_flag() if isinstance(error, OptionError) else str(error)


def check_preset(name):
    """absl validator of --preset: the unknown name and its close matches
    (`presets.get`'s message)."""
    if name is None:
        return True
    try:
        presets.get(name)
    except ValueError as e:
        raise flags.ValidationError(_as_flag(e)) from None
    return True


# `--model_overrides` JSON as a dict (lists as tuples); {} if unset.
parse_overrides = config_lib.parse_model_overrides


def _check_overrides(text):
    try:
        parse_overrides(text)
    except ValueError as e:
        raise flags.ValidationError(_as_flag(e)) from None
    return True


def define_model_source_flags(model_overrides=False, flag_values=None):
    """Defines --model_dir, --checkpoint, --preset, --weights, --num_classes.

    Args:
        model_overrides: also define `--model_overrides` (build_model
            arguments as a JSON object, validated at parse time).
        flag_values: where to define them (default: absl's global FLAGS).
    """
    hw = flags_core.help_wrap
    # An empty FlagValues is falsy: test for None.
    fv = {"flag_values": flags.FLAGS if flag_values is None else flag_values}
    flags.DEFINE_string(
        "model_dir",
        None,
        hw("A training run: holds config.json and checkpoints/."),
        **fv,
    )
    flags.DEFINE_string(
        "checkpoint",
        None,
        hw(
            "With --model_dir: 'latest' (default), 'best' or a checkpoint "
            "prefix."
        ),
        **fv,
    )
    flags.DEFINE_string(
        "preset",
        None,
        hw("Without --model_dir: the preset --weights belong to."),
        **fv,
    )
    flags.DEFINE_string(
        "weights",
        None,
        hw(
            "A .weights.h5 file (ours, or imported with "
            "tools.convert_original_checkpoint). With --model_dir it "
            "replaces the run's checkpoint."
        ),
        **fv,
    )
    flags.DEFINE_integer(
        "num_classes",
        None,
        hw(
            "Logits of --preset's model (default: from the data's classes "
            "where the binary reads them, else the preset's 1001)."
        ),
        lower_bound=1,
        **fv,
    )
    flags.register_validator("preset", check_preset, **fv)
    if model_overrides:
        flags.DEFINE_string(
            "model_overrides",
            None,
            hw(
                "Model options of the run config as a JSON object (base_width, "
                "block_sizes, bn_momentum, dropblock, add_dropblock, pooling, "
                "embedding_size, classifier, cosine_temperature), e.g. "
                "'{\"base_width\": 16}' or "
                '\'{"embedding_size": 512, "pooling": "gem"}\'.'
            ),
            **fv,
        )
        flags.register_validator("model_overrides", _check_overrides, **fv)


def model_source(flag_values):
    """`{model_dir, checkpoint, preset, weights}` as set on the command line."""
    return {name: flag_values[name].value for name in SOURCE_FLAGS}
