"""ImageNet-C mCE and ImageNet-P mFR of a trained or imported model.

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
ours for paper presets), a bar chart and a gallery PNG, and prints one JSON
line. Per-corruption results are cached in <output_dir>/cache_<kind>, so
rerunning an interrupted command continues where it stopped.
"""

import json
import os
import sys

from absl import flags

from flags import model_source_flags
from official.utils.flags import core as flags_core

flags.DEFINE_enum("kind", None, ["c", "p"], "ImageNet-C or ImageNet-P.")
flags.DEFINE_string(
    "data_dir",
    None,
    "ImageNet-C root (<corruption>/<severity>/<wnid>/<file>) or ImageNet-P "
    "root (<perturbation>/<wnid>/<name>.mp4).",
)
model_source_flags.define_model_source_flags(model_overrides=True)
flags.DEFINE_integer(
    "label_offset",
    None,
    "Subtracted from the stored (ImageNet: sorted wnid index + 1) labels: "
    "0 for 1001-way heads (default), 1 for 1000-way ones.",
)
flags.DEFINE_string(
    "labels_file",
    None,
    "wnid -> label: the training data_dir's labels.txt or a synsets list. "
    "Default: <run's data_dir>/labels.txt when it exists, else the sorted "
    "classes of the set (which must then hold all of them).",
)
flags.DEFINE_list(
    "names", [], "Corruptions / perturbations to evaluate (default: all)."
)
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
    "ImageNet-C: alexnet divides each corruption error by AlexNet's (the "
    "ImageNet-C mCE); none reports the plain mean corruption error, as "
    "the paper's Food-101-C mCE (Table 8) and for any non-ImageNet set.",
)
flags.DEFINE_integer("batch_size", 64, "Images per batch.", lower_bound=1)
flags.DEFINE_string(
    "output_dir",
    None,
    "Results folder (default: <model_dir>/robustness, or next to --weights).",
)
FLAGS = flags.FLAGS


def load(flag_values):
    from assemble_tf.runs import checkpoints, loading, runtime
    from assemble_tf.runs import models as run_models

    model_overrides = model_source_flags.parse_overrides(
        flag_values.model_overrides
    )
    data = {}
    if flag_values.num_classes is not None:
        data["num_classes"] = flag_values.num_classes
    if flag_values.label_offset is not None:
        data["label_offset"] = flag_values.label_offset
    config, checkpoint, weights = loading.resolve(
        **model_source_flags.model_source(flag_values),
        output_dir=flag_values.output_dir,
        data=data,
        model=model_overrides,
        needs_data=False,
    )
    strategy = runtime.setup_runtime(config)
    with strategy.scope():
        model = run_models.build_run_model(config)
    checkpoints.restore(model, checkpoint, weights)
    return config, model, checkpoint or os.path.abspath(weights)


def main(argv):
    del argv
    from tqdm import tqdm

    from assemble_tf import presets
    from assemble_tf.robustness import evaluation, plots, report

    if not FLAGS.kind or not FLAGS.data_dir:
        raise ValueError("Pass --kind=c|p and --data_dir.")
    if FLAGS.clean_error is not None and not 0 <= FLAGS.clean_error <= 1:
        raise ValueError(
            f"--clean_error={FLAGS.clean_error} must be a fraction in [0, 1]."
        )
    kind = FLAGS.kind
    if kind == "c":
        found = evaluation.find_imagenet_c(FLAGS.data_dir, FLAGS.names)
        wnids = {
            w for sev in found.values() for v in sev.values() for _, w in v
        }
        total = sum(len(v) for sev in found.values() for v in sev.values())
    else:
        found = evaluation.find_imagenet_p(
            FLAGS.data_dir, FLAGS.names, FLAGS.difficulty
        )
        wnids = {w for v in found.values() for _, w in v}
        total = sum(len(v) for v in found.values())
    config, model, source = load(FLAGS)
    labels_file = FLAGS.labels_file
    if labels_file is None and config.data.data_dir:
        candidate = os.path.join(config.data.data_dir, "labels.txt")
        labels_file = candidate if os.path.isfile(candidate) else None
    if config.data.source and labels_file is None:
        from assemble_tf.runs import inputs

        info = inputs.open_source_cached(
            config.data.source, config.data.tfds_data_dir, False
        )
        labels = evaluation.source_label_map(
            wnids, info.class_names, config.data.source
        )
    else:
        labels = evaluation.label_map(
            wnids,
            config.data.num_classes,
            config.data.label_offset,
            labels_file,
        )
    classes, imagenet = evaluation.training_classes(config.data)
    notes = []
    if len(wnids) < classes:
        notes.append(
            f"The set covers {len(wnids)} of the model's {classes} classes: "
            "errors are over those classes only, and CE / mCE (normalised "
            "by AlexNet's errors on all of ImageNet) are not comparable "
            "with published figures."
        )
    if not imagenet:
        notes.append(
            f"The model was trained on {classes} classes, not on ImageNet: "
            f"the paper's ImageNet {'mCE' if kind == 'c' else 'mFR'} of "
            f"{config.model.preset} is not shown beside it."
        )
    for note in notes:
        print(f"WARNING: {note}", file=sys.stderr)
    out = FLAGS.output_dir or (
        os.path.join(config.model_dir, "robustness")
        if FLAGS.model_dir
        else os.path.dirname(source)
    )
    os.makedirs(out, exist_ok=True)
    sig = report.signature(source, FLAGS.data_dir, kind, FLAGS.difficulty)
    cache = os.path.join(out, f"cache_{kind}")
    predict = evaluation.make_predict_fn(model)
    unit = "image" if kind == "c" else "video"
    with tqdm(
        total=total, desc=f"ImageNet-{kind.upper()}", unit=unit, file=sys.stderr
    ) as bar:
        if kind == "c":
            results = evaluation.evaluate_c(
                predict, found, labels, cache, sig, FLAGS.batch_size, bar
            )
        else:
            from assemble_tf.robustness.video import read_video

            results = evaluation.evaluate_p(
                predict,
                found,
                labels,
                cache,
                sig,
                read_video,
                FLAGS.difficulty,
                bar,
            )
    preset_name = config.model.preset
    plain = kind == "c" and FLAGS.normalization == "none"
    paper = presets.get(preset_name).paper if imagenet and not plain else None
    note = " ".join(notes) or None
    files = {}
    if kind == "c":
        summary = evaluation.summarize_c(
            results, FLAGS.clean_error, FLAGS.normalization
        )
        table = report.markdown_c(summary, results, paper, preset_name, note)
        files["chart_png"] = plots.error_bars(
            summary["ce"],
            os.path.join(out, "ce_per_corruption.png"),
            f"{preset_name}: error per corruption (not normalised)"
            if plain
            else f"{preset_name}: CE per corruption (AlexNet = 100)",
            "top-1 error (%)" if plain else "CE (%)",
            reference=None if plain else 100.0,
            mean=summary["mce"] or summary["mce_19"],
        )
        files["gallery_png"] = plots.corruption_gallery(
            found, os.path.join(out, "gallery_c.png")
        )
    else:
        from assemble_tf.robustness.video import read_video

        summary = evaluation.summarize_p(results, FLAGS.difficulty)
        table = report.markdown_p(summary, results, paper, preset_name, note)
        if summary["note"]:
            print(f"WARNING: {summary['note']}", file=sys.stderr)
            files["chart_png"] = plots.error_bars(
                {k: 100 * v for k, v in summary["flip_probability"].items()},
                os.path.join(out, "fp_per_perturbation.png"),
                f"{preset_name}: flip probability per perturbation "
                f"(difficulty {FLAGS.difficulty})",
                "flip probability (%)",
                reference=None,
            )
        else:
            files["chart_png"] = plots.error_bars(
                summary["fr"],
                os.path.join(out, "fr_per_perturbation.png"),
                f"{preset_name}: flip rate per perturbation (AlexNet = 100)",
                "FR (%)",
                mean=summary["mfr"],
            )
        files["gallery_png"] = plots.perturbation_strip(
            {p: read_video(items[0][0]) for p, items in found.items()},
            os.path.join(out, "gallery_p.png"),
        )
    files["markdown"] = os.path.join(out, f"robustness_{kind}.md")
    with open(files["markdown"], "w") as f:
        f.write(table)
    report = {
        "kind": kind,
        "preset": preset_name,
        "source": source,
        "data_dir": os.path.abspath(FLAGS.data_dir),
        "summary": summary,
        "results": results,
        "paper": None
        if paper is None
        else {"source": paper.source, "mce": paper.mce, "mfr": paper.mfr},
        "warnings": notes,
        **files,
    }
    files["json"] = os.path.join(out, f"robustness_{kind}.json")
    with open(files["json"], "w") as f:
        json.dump(report, f, indent=1)
    print(table, file=sys.stderr)
    keys = ("mce", "mce_19", "relative_mce", "mfr")
    print(
        json.dumps(
            {
                "kind": kind,
                **{k: summary[k] for k in keys if k in summary},
                **files,
            }
        )
    )


if __name__ == "__main__":
    flags_core.run(main)
