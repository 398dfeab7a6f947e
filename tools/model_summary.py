"""Prints parameter and multiply-add counts of a preset.

    python -m tools.model_summary --preset=assemble_resnet50 --json

Counts follow the convention of Lee et al. 2020, Table 12: GMACs of convs,
blurs, attention 1x1s and the dense head for one image.
"""

import json

from absl import flags

from flags import model_flags
from official.utils.flags import core as flags_core

flags.DEFINE_bool("json", False, "Print one JSON object instead of a table.")
FLAGS = flags.FLAGS


def summarize(preset, overrides):
    """Returns the summary dict of `preset` with `overrides` applied."""
    from assemble_tf import presets
    from assemble_tf.models import build_model, count_macs, count_params

    overrides = dict(overrides)
    overrides.setdefault("image_size", presets.get(preset).eval_image_size)
    model = build_model(preset, **overrides)
    total, trainable, non_trainable = count_params(model)
    return {
        "preset": preset,
        "image_size": overrides["image_size"],
        "total_params": int(total),
        "trainable_params": int(trainable),
        "non_trainable_params": int(non_trainable),
        "gmacs": round(count_macs(model) / 1e9, 4),
    }


def main(argv):
    del argv
    summary = summarize(FLAGS.preset, model_flags.model_overrides(FLAGS))
    if FLAGS.json:
        print(json.dumps(summary))
        return
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        text = f"{value:,}" if isinstance(value, int) else str(value)
        print(f"{key:<{width}}  {text}")


if __name__ == "__main__":
    model_flags.define_model_flags()
    flags_core.run(main)
