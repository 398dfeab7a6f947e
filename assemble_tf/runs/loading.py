"""Where a trained model comes from: a run's model_dir or preset + weights.

Shared by the evaluation binaries (`tools.evaluate`, `tools.eval_robustness`,
`tools.eval_retrieval`, `tools.export_saved_model`): a training run is its
`config.json` plus a checkpoint (latest, best or an explicit prefix); an
imported original checkpoint is a preset plus a `.weights.h5` file.
"""

import os

from assemble_tf import config as config_lib
from assemble_tf.option_errors import OptionsError
from assemble_tf.runs import checkpoints


def resolve(
    *,
    model_dir=None,
    checkpoint=None,
    preset=None,
    weights=None,
    output_dir=None,
    data=None,
    model=None,
    train=None,
    needs_data=True,
):
    """The experiment config and the weights source of a model.

    Args:
        model_dir: a training run (holds `config.json` and `checkpoints/`).
        checkpoint: with `model_dir`: "latest" (default), "best" or a
            checkpoint prefix.
        preset: a preset name, when there is no `model_dir`; needs `weights`.
        weights: a `.weights.h5` file (e.g. from the checkpoint importer).
            With `model_dir` it replaces the run's checkpoint.
        output_dir: the config's model_dir when built from a preset (default:
            the folder of `weights`).
        data, model, train: config overrides (dicts of field -> value).
        needs_data: False for tools that read their own data (robustness,
            retrieval): a preset config then needs no TFRecord data_dir.

    Returns:
        (config, checkpoint_prefix or None, weights or None).

    Raises:
        OptionError: neither source given, or a preset without weights
            (named: "`preset` needs `weights` ...").
        FileNotFoundError: no config.json or no such checkpoint.
    """
    overrides = {"data": dict(data or {}), "model": model or {}}
    if not needs_data and not model_dir:
        overrides["data"].setdefault("synthetic", True)
    if train:
        overrides["train"] = train
    if model_dir:
        path = os.path.join(model_dir, "config.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"--model_dir={model_dir} has no config.json; pass a training "
                "run's model_dir, or --preset with --weights."
            )
        base = config_lib.ExperimentConfig.from_json(path).to_dict()
        for group, values in overrides.items():
            base[group].update(values)
        config = config_lib.ExperimentConfig.from_dict(base)
        config_lib.validate(config)
    elif preset:
        if not weights:
            raise OptionsError(
                "preset",
                "{field} needs {weights} (or use {model_dir}).",
                ["weights", "model_dir"],
            )
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"--weights={weights}: no such file.")
        out = output_dir or os.path.dirname(os.path.abspath(weights))
        config = config_lib.make_config(out, preset, overrides)
    else:
        raise OptionsError(
            "model_dir",
            "Pass {field}, or {preset} with {weights}.",
            ["preset", "weights"],
        )
    prefix = None
    if not weights:
        prefix = checkpoints.find_checkpoint(
            config.model_dir, checkpoint or "latest"
        )
    return config, prefix, weights
