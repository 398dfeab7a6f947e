"""Flags generated from the config dataclasses, and flags -> config.

Every field of `assemble_tf.config` groups becomes a flag of the same name
with the field's help text. `--preset` picks the recipe; only flags the user
set explicitly override it (stricter than "non-None": a flag left at its
default never hides a preset value).
"""

import dataclasses
import re
import types
import typing

from absl import flags

from assemble_tf import config as config_lib
from flags import model_source_flags

# Fields whose flag differs from the field (none yet) or that are not flags.
_SKIP = {("model", "preset")}


def _base_type(tp):
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def _takes_none(tp):
    return type(None) in typing.get_args(tp)


def flag_help(text, names):
    """Field help as flag help: a field named in backticks (`source`) reads
    as its flag (--source); other backticked text is left as it is."""

    def as_flag(match):
        name = match.group(1)
        return f"--{name}" if name in names else match.group(0)

    return re.sub(r"`([a-z][a-z0-9_]*)`", as_flag, text)


def _flag_names(groups):
    names = {"model_dir", "preset"}
    for group in groups:
        names.update(
            f.name for f in dataclasses.fields(config_lib.GROUPS[group])
        )
    return names


def define_config_flags(
    groups=tuple(config_lib.GROUPS), flag_values=flags.FLAGS
):
    """Defines --model_dir, --preset and one flag per config field."""
    fv = {"flag_values": flag_values}
    flags.DEFINE_string(
        "model_dir", None, "Run folder: config.json, checkpoints, logs.", **fv
    )
    flags.DEFINE_string(
        "preset",
        "assemble_resnet50",
        "Named model and its training recipe (docs/models.md 'Presets'; "
        "`python -m tools.preset_table` lists them).",
        **fv,
    )
    flags.register_validator("preset", model_source_flags.check_preset, **fv)
    names = _flag_names(config_lib.GROUPS)
    for group in groups:
        cls = config_lib.GROUPS[group]
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if (group, field.name) in _SKIP:
                continue
            tp = _base_type(hints[field.name])
            # No flag default: a flag left out takes the preset's recipe
            # (or the fine-tuning recipe), else the field's default, which
            # the help says; absl's "(default: ...)" would claim more.
            default = field.default
            shown = "none" if default is None else default
            if isinstance(default, tuple):
                shown = ",".join(map(str, default))
            help_text = (
                f"[{group}] "
                f"{flag_help(field.metadata.get('help', ''), names)} "
                f"(default: the recipe's, else {shown})"
            )
            if tp is bool:
                flags.DEFINE_bool(field.name, None, help_text, **fv)
            elif tp is int:
                flags.DEFINE_integer(field.name, None, help_text, **fv)
            elif tp is float:
                flags.DEFINE_float(field.name, None, help_text, **fv)
            else:
                flags.DEFINE_string(field.name, None, help_text, **fv)


def explicit_overrides(flag_values, groups=tuple(config_lib.GROUPS)):
    """{group: {field: value}} of the config flags set on the command line."""
    overrides = {}
    for group in groups:
        cls = config_lib.GROUPS[group]
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if (group, field.name) in _SKIP:
                continue
            if flag_values[field.name].present:
                value = flag_values[field.name].value
                # "none" is None where the field takes None; elsewhere it
                # stays text, refused with the values the field takes
                # (before: "--eval_preprocessing=None is invalid: must be
                # text").
                if (
                    isinstance(value, str)
                    and value.lower() == "none"
                    and _takes_none(hints[field.name])
                ):
                    value = None
                overrides.setdefault(group, {})[field.name] = value
    return overrides


def flags_to_config(flag_values, groups=tuple(config_lib.GROUPS)):
    """Preset recipe, then the explicitly set flags, then validation."""
    overrides = explicit_overrides(flag_values, groups)
    if not flag_values["model_dir"].value:
        raise ValueError("--model_dir is required (the run folder).")
    return config_lib.make_config(
        flag_values["model_dir"].value, flag_values["preset"].value, overrides
    )
