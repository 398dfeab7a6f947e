r"""Times the 19 ImageNet-C corruptions per image, ours vs `imagecorruptions`.

    python -m tools.benchmark_corruptions
    python -m tools.benchmark_corruptions --compare_imagecorruptions \
        --python=/tmp/icvenv/bin/python

The test image is a real photo (skimage.data.astronaut, 512 px) brought to
224 px with the ImageNet-C preprocessing (shorter side 256, centre crop 224;
`--image_size` and `--resize` change it). For every corruption, each of the
5 severities is timed `--repeats` times (median), and the per-image seconds
are averaged over the severities (the ImageNet-C generator corrupts every
image at all 5). Prints a markdown table and the total for 19 x 5
corruptions of one image. By default every library runs on one thread
(OMP / BLAS / OpenCV) so the figure is per core.

`--compare_imagecorruptions` times bethgelab/imagecorruptions (Michaelis et
al. 2019, `pip install imagecorruptions`; not a project dependency) on the
same image in a subprocess: `--python` names an interpreter that can import
it (default: this one). Its glass blur is a pure-Python loop and takes
seconds per image. Hendrycks & Dietterich (ICLR 2019) define the
corruptions; `assemble_tf.robustness.corruptions` implements them. The work
is `assemble_tf.robustness.benchmark.run_benchmark`.
"""

import json

from absl import flags

from official.utils.flags import core as flags_core
from official.utils.misc import validation

FLAGS = flags.FLAGS


def define_flags():
    """Defines the binary's flags (`CorruptionBenchmarkOptions` fields)."""
    flags.DEFINE_integer("image_size", 224, "Crop side.", lower_bound=32)
    flags.DEFINE_integer(
        "resize", 256, "Shorter side before the centre crop.", lower_bound=32
    )
    flags.DEFINE_integer(
        "repeats", 3, "Timed calls per severity (median).", lower_bound=1
    )
    flags.DEFINE_string(
        "corruptions", None, "Comma-separated subset (default: all 19)."
    )
    flags.DEFINE_bool(
        "single_thread", True, "Limit numpy/BLAS/OpenCV to one thread."
    )
    flags.DEFINE_bool("json", False, "Print one JSON line instead of a table.")
    _define_comparison_flags()


def _define_comparison_flags():
    """The flags of the imagecorruptions comparison."""
    flags.DEFINE_bool(
        "compare_imagecorruptions",
        False,
        "Also time the imagecorruptions package (in a subprocess).",
    )
    flags.DEFINE_string(
        "python",
        None,
        flags_core.help_wrap(
            "Interpreter that can import imagecorruptions, e.g. "
            "/tmp/icvenv/bin/python (default: this interpreter)."
        ),
    )
    flags.DEFINE_integer(
        "compare_repeats",
        1,
        "Timed calls per severity for imagecorruptions.",
        lower_bound=1,
    )


def options_from_flags(flag_values):
    """The `CorruptionBenchmarkOptions` of the parsed flags (a progress
    bar unless --json)."""
    from assemble_tf.robustness import benchmark

    text = flag_values.corruptions
    return benchmark.CorruptionBenchmarkOptions(
        image_size=flag_values.image_size,
        resize=flag_values.resize,
        repeats=flag_values.repeats,
        # Given but empty: refused (before: all 19 timed without a word).
        corruptions=None
        if text is None
        else validation.split_names("corruptions", text),
        single_thread=flag_values.single_thread,
        compare_imagecorruptions=flag_values.compare_imagecorruptions,
        python=flag_values.python,
        compare_repeats=flag_values.compare_repeats,
        progress=not flag_values.json,
    )


def main(argv):
    del argv
    # Imports no numpy: the run limits the threads before numpy starts.
    from assemble_tf.robustness import benchmark

    options = options_from_flags(FLAGS)
    report = benchmark.run_benchmark(options)
    if FLAGS.json:
        print(json.dumps(benchmark.console_line(report)))
        return
    print(benchmark.format_text(report, options))


if __name__ == "__main__":
    define_flags()
    flags_core.run(main)
