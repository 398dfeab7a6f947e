r"""Prints parameter and multiply-add counts of a preset.

    python -m tools.model_summary --preset=assemble_resnet50 --json

Counts follow the convention of Lee et al. 2020, Table 12: GMACs of convs,
blurs, attention 1x1s and the dense head for one image. The work is
`assemble_tf.models.preset_report.summarize`.
"""

import json

from absl import flags

from flags import model_flags
from official.utils.flags import core as flags_core

FLAGS = flags.FLAGS


def define_flags():
    """Defines --preset, the architecture overrides and --json.

    --preset is a plain string here: a typo gets `presets.get`'s close
    matches (one ERROR line, exit 2), not absl's list of every preset.
    """
    model_flags.define_model_flags()
    preset = FLAGS["preset"]
    FLAGS.remove_flag_values(["preset"])
    flags.DEFINE_string("preset", None, preset.help)
    flags.mark_flag_as_required("preset")
    flags.DEFINE_bool(
        "json", False, "Print one JSON object instead of a table."
    )


def main(argv):
    del argv
    from assemble_tf import presets
    from assemble_tf.models import preset_report

    presets.get(FLAGS.preset)  # ValueError with close matches
    summary = preset_report.summarize(
        FLAGS.preset, model_flags.model_overrides(FLAGS)
    )
    if FLAGS.json:
        print(json.dumps(summary))
        return
    print(preset_report.format_summary(summary))


if __name__ == "__main__":
    define_flags()
    flags_core.run(main)
