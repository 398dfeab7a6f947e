r"""Builds every preset and tabulates size and cost beside the paper.

    python -m tools.preset_table --output_dir=demo_out

For each preset: parameters, GMACs at the preset's evaluation size (the
convention of Lee et al. 2020, Table 12), and the top-1 / mCE / images-per-
second the paper reports for that row. Writes `presets.json`, `presets.md`,
`presets.csv` and `presets_gmacs_vs_top1.png` to --output_dir. The work is
`assemble_tf.models.preset_report.preset_table`.
"""

from absl import flags

from official.utils.flags import core as flags_core

FLAGS = flags.FLAGS


def define_flags():
    """Defines the binary's flags (names match `PresetTableOptions`)."""
    flags.DEFINE_string(
        "output_dir", None, "Where to write the table and plot."
    )
    flags.DEFINE_list("presets", None, "Subset of presets (default: all).")
    flags.DEFINE_integer(
        "image_size",
        None,
        "Override every preset's evaluation size (at least 64, the smallest "
        "side every preset builds at).",
    )
    flags.DEFINE_bool("plot", True, "Write the GMACs-vs-top-1 scatter plot.")


def options_from_flags(flag_values):
    """The `PresetTableOptions` of the parsed flags."""
    from assemble_tf.models import preset_report

    return preset_report.PresetTableOptions(
        presets=tuple(flag_values.presets or ()),
        image_size=flag_values.image_size,
        output_dir=flag_values.output_dir,
        plot=flag_values.plot,
    )


def main(argv):
    del argv
    from assemble_tf.models import preset_report

    report = preset_report.preset_table(options_from_flags(FLAGS), print)
    if report["output_dir"]:
        print(f"\nWrote {', '.join(report['files'])} to {report['output_dir']}")


if __name__ == "__main__":
    define_flags()
    flags_core.run(main)
