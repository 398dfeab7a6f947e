r"""ImageNet-C mCE and ImageNet-P mFR of a trained or imported model.

    # official ImageNet-C (224 px) with a training run
    python -m tools.eval_robustness --kind=c --data_dir=/data/ImageNet-C \
        --model_dir=/runs/r50 --clean_error=0.2313
    # a set regenerated at 292 -> 256 for the 256-px Assemble-ResNet-50
    python -m tools.eval_robustness --kind=c --data_dir=/data/imagenet_c_256 \
        --preset=assemble_resnet50 --weights=assemble_r50.weights.h5
    # ImageNet-P (mp4 videos)
    python -m tools.eval_robustness --kind=p --data_dir=/data/ImageNet-P \
        --model_dir=/runs/r50

Hendrycks & Dietterich, ICLR 2019 (https://arxiv.org/abs/1903.12261);
protocol of Assemble-ResNet (Lee et al. 2020, clovaai/assembled-cnn
`mce/eval_robustness.py`): images are fed at their stored size, decoded with
INTEGER_ACCURATE and mean-subtracted. Reports per corruption and severity
top-1 / top-5 error, CE, mCE over the 15 standard corruptions and over all
19 (the original's number), relative mCE (with --clean_error); for
ImageNet-P flip probabilities, FR, mFR and top-5 distances. Writes
robustness_<kind>.json, robustness_<kind>.md (the paper's figures beside
ours for paper presets; robustness_<kind>_unnormalized.* with
--normalization=none), a bar chart and a gallery PNG, and prints one JSON
line. Per-corruption results are cached in <output_dir>/cache_<kind>, so
rerunning an interrupted command continues where it stopped. The work is
`assemble_tf.robustness.run`.
"""

import dataclasses
import json

from absl import flags

from flags import model_source_flags
from official.utils.flags import core as flags_core
from official.utils.misc import validation

FLAGS = flags.FLAGS


def define_flags():
    """Defines the binary's flags (names match `RobustnessOptions` fields)."""
    flags.DEFINE_enum("kind", None, ["c", "p"], "ImageNet-C or ImageNet-P.")
    flags.DEFINE_string(
        "data_dir",
        None,
        "ImageNet-C root (<corruption>/<severity>/<wnid>/<file>) or "
        "ImageNet-P root (<perturbation>/<wnid>/<name>.mp4).",
    )
    flags.DEFINE_list(
        "names", [], "Corruptions / perturbations to evaluate (default: all)."
    )
    flags.DEFINE_integer("batch_size", 64, "Images per batch.", lower_bound=1)
    model_source_flags.define_model_source_flags(model_overrides=True)
    _define_label_flags()
    _define_evaluation_flags()


def _define_label_flags():
    """How the set's class folders map to the model's labels."""
    flags.DEFINE_integer(
        "label_offset",
        None,
        "Subtracted from the stored (ImageNet: sorted wnid index + 1) "
        "labels: 0 for 1001-way heads (default), 1 for 1000-way ones.",
    )
    flags.DEFINE_string(
        "labels_file",
        None,
        "wnid -> label: the training data_dir's labels.txt or a synsets "
        "list. Default: <run's data_dir>/labels.txt when it exists, else "
        "the sorted classes of the set (which must then hold all of them).",
    )


_NORMALIZATION_HELP = (
    "ImageNet-C: alexnet divides each corruption error by AlexNet's (the "
    "ImageNet-C mCE); none reports the plain mean corruption error, as the "
    "paper's Food-101-C mCE (Table 8) and for any non-ImageNet set."
)
_OUTPUT_DIR_HELP = (
    "Results folder (default: <model_dir>/robustness; with --weights, also "
    "beside --model_dir, <--weights folder>/robustness/<weights name>)."
)


def _define_evaluation_flags():
    """How to evaluate and where the results go."""
    flags.DEFINE_integer(
        "difficulty", 1, "ImageNet-P difficulty (frame step).", lower_bound=1
    )
    flags.DEFINE_float(
        "clean_error",
        None,
        "Clean top-1 error (fraction) for relative mCE, e.g. from "
        "tools.evaluate's eval.json (1 - top1).",
    )
    flags.DEFINE_enum(
        "normalization",
        "alexnet",
        ["alexnet", "none"],
        _NORMALIZATION_HELP,
    )
    flags.DEFINE_string("output_dir", None, _OUTPUT_DIR_HELP)
    flags.DEFINE_bool("progress", True, "Show a progress bar (on stderr).")


def options_from_flags(flag_values):
    """The `RobustnessOptions` of the parsed flags.

    Raises:
        ValueError: naming the flag (--kind, --data_dir, --clean_error).
    """
    from assemble_tf.robustness import run

    if not flag_values.kind or not flag_values.data_dir:
        raise ValueError("Pass --kind=c|p and --data_dir.")
    values = {
        f.name: flag_values[f.name].value
        for f in dataclasses.fields(run.RobustnessOptions)
        if f.name in flag_values
    }
    values["names"] = validation.split_names("names", values["names"])
    values["model_overrides"] = model_source_flags.parse_overrides(
        values["model_overrides"]
    )
    options = run.RobustnessOptions(**values)
    options.validate()  # an OptionError: clean_errors prints its flag
    return options


def main(argv):
    del argv
    from assemble_tf.robustness import run

    options = options_from_flags(FLAGS)
    found = run.find_set(options)  # a bad --data_dir fails before loading
    config, model, source = run.load_model(options)
    result = run.evaluate_robustness(options, model, config, source, found)
    print(json.dumps(run.console_line(result)))


if __name__ == "__main__":
    define_flags()
    flags_core.run(main, tensorflow_only=True)
