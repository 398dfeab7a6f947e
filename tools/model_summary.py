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
    """Defines --preset, the architecture overrides and --json."""
    model_flags.define_model_flags()
    flags.DEFINE_bool(
        "json", False, "Print one JSON object instead of a table."
    )


def main(argv):
    del argv
    from assemble_tf.models import preset_report

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
