"""Flags that pick a preset and override its architecture."""

from absl import flags

from assemble_tf import presets
from official.utils.flags import core as flags_core

# Flags whose value passes straight to build_model when set explicitly.
_SCALAR_OVERRIDES = (
    "image_size",
    "num_classes",
    "base_width",
    "bn_momentum",
    "pooling",
    "shortcut",
    "embedding_size",
    "classifier",
    "cosine_temperature",
)
_LIST_OVERRIDES = ("block_sizes", "stage_strides")


def define_model_flags(preset_default=None, preset_required=True):
    """Defines --preset and the architecture overrides of build_model."""
    flags.DEFINE_enum(
        "preset",
        preset_default,
        presets.names(),
        flags_core.help_wrap(
            "Named model (docs/models.md 'Presets'), e.g. assemble_resnet50."
        ),
    )
    if preset_required and preset_default is None:
        flags.mark_flag_as_required("preset")
    flags.DEFINE_integer(
        "image_size",
        None,
        "Square input side. Default: the preset's evaluation size for "
        "summaries, any size (fully convolutional) otherwise.",
        lower_bound=1,
    )
    flags.DEFINE_integer(
        "num_classes",
        None,
        "Number of logits (the original ImageNet models use 1001).",
        lower_bound=1,
    )
    flags.DEFINE_integer(
        "base_width",
        None,
        "Stem / S1 width (64); 16 builds a tiny model.",
        lower_bound=1,
    )
    flags.DEFINE_string(
        "block_sizes",
        None,
        "Blocks per stage, 4 comma-separated ints (BigLittleNet: nominal "
        "counts), e.g. 2,2,2,1.",
    )
    flags.DEFINE_string(
        "stage_strides", None, "4 comma-separated strides of 1 or 2."
    )
    for name in _LIST_OVERRIDES:
        flags_core.register_int_list_validator(name, 4)
    flags.DEFINE_float("bn_momentum", None, "BatchNorm momentum (0.997).")
    flags.DEFINE_enum("pooling", None, ["avg", "gem"], "Global pooling.")
    flags.DEFINE_enum(
        "shortcut",
        None,
        list(presets.SHORTCUTS),
        "Downsampling shortcut: conv, avg2 (ResNet-D), avg3 (BigLittleNet) "
        "or avg2_tf1 (the original code's ResNet-D shortcut, which its "
        "ResNet-D checkpoints need).",
    )
    flags.DEFINE_integer(
        "embedding_size",
        None,
        "Add an embedding layer of this size.",
        lower_bound=1,
    )
    flags.DEFINE_enum(
        "classifier",
        None,
        ["dense", "cosine"],
        "Classifier: dense (default) or cosine (NormSoftmax, retrieval).",
    )
    flags.DEFINE_float(
        "cosine_temperature", None, "Temperature of the cosine classifier."
    )


def model_overrides(flag_values):
    """Returns the build_model overrides the user set explicitly."""
    overrides = flags_core.explicitly_set(flag_values, _SCALAR_OVERRIDES)
    for name in _LIST_OVERRIDES:
        if name in flag_values and flag_values[name].present:
            overrides[name] = flags_core.parse_int_list(
                name, flag_values[name].value, length=4
            )
    return overrides
