"""ImageNet-C mCE and ImageNet-P mFR of a model (`tools.eval_robustness`).

Hendrycks & Dietterich, ICLR 2019 (https://arxiv.org/abs/1903.12261);
protocol of Assemble-ResNet (Lee et al. 2020, clovaai/assembled-cnn
`mce/eval_robustness.py`): images are fed at their stored size, decoded with
INTEGER_ACCURATE and mean-subtracted (`evaluation`). The report has per
corruption and severity top-1 / top-5 error, CE, mCE over the 15 standard
corruptions and over all 19 (the original's number), relative mCE (with a
clean error); for ImageNet-P flip probabilities, FR, mFR and top-5
distances. `evaluate_robustness` writes robustness_<kind>.json,
robustness_<kind>.md (the paper's figures beside ours for paper presets),
a bar chart and a gallery PNG. Per-corruption results are cached in
<output_dir>/cache_<kind>, so rerunning an interrupted evaluation continues
where it stopped.

    options = run.RobustnessOptions(kind="c", data_dir="/data/ImageNet-C",
                                    model_dir="/runs/r50", clean_error=0.23)
    found = run.find_set(options)       # a bad data_dir fails before loading
    config, model, source = run.load_model(options)
    report = run.evaluate_robustness(options, model, config, source, found)
"""

import contextlib
import dataclasses
import functools
import json
import os
import sys

from assemble_tf.robustness import evaluation, metrics, perturbations
from assemble_tf.robustness.inputs import IMAGE_EXTENSIONS
from assemble_tf.runs import loading
from official.utils.misc import file_utils, interrupts
from official.utils.misc import progress as progress_lib
from official.utils.misc.validation import OptionError, check_writable_folder

KINDS = ("c", "p")
NORMALIZATIONS = ("alexnet", "none")
# Summary figures of the one-line console report, when the kind has them.
LINE_KEYS = ("mce", "mce_19", "relative_mce", "mfr")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RobustnessOptions(loading.ModelSource):
    """What to evaluate, and on which model (the binary's flag names).

    Attributes (besides the `loading.ModelSource` fields):
        kind: "c" (ImageNet-C folders) or "p" (ImageNet-P videos).
        data_dir: the set's root: <corruption>/<severity>/<wnid>/<file> or
            <perturbation>/<wnid>/<name>.mp4.
        names: corruptions / perturbations to evaluate (empty: all).
        difficulty: ImageNet-P difficulty (frame step).
        clean_error: clean top-1 error (fraction) for relative mCE.
        normalization: ImageNet-C "alexnet" (CE divided by AlexNet's) or
            "none" (plain mean corruption error, for non-ImageNet sets).
        batch_size: images per forward pass.
        output_dir: results folder (default: <model_dir>/robustness, or
            <weights folder>/robustness/<weights name>).
        labels_file: wnid -> label (labels.txt or a synsets list); default
            the run's <data_dir>/labels.txt when it exists.
        label_offset: subtracted from the stored labels (None: the
            config's; 0 for 1001-way heads, 1 for 1000-way ones).
        progress: show a progress bar (on stderr).
    """

    kind: str
    data_dir: str
    names: tuple = ()
    difficulty: int = 1
    clean_error: float | None = None
    normalization: str = "alexnet"
    batch_size: int = 64
    output_dir: str | None = None
    labels_file: str | None = None
    label_offset: int | None = None
    progress: bool = True

    def validate(self):
        """Raises `OptionError` naming the field of a bad value."""
        checks = (
            ("kind", self.kind in KINDS, f"must be one of {', '.join(KINDS)}"),
            ("data_dir", bool(self.data_dir), "must name the set's folder"),
            ("difficulty", self.difficulty >= 1, "must be at least 1"),
            (
                "clean_error",
                self.clean_error is None or 0 <= self.clean_error <= 1,
                "must be a fraction in [0, 1]",
            ),
            (
                "normalization",
                self.normalization in NORMALIZATIONS,
                f"must be one of {', '.join(NORMALIZATIONS)}",
            ),
            ("batch_size", self.batch_size >= 1, "must be at least 1"),
        )
        for name, ok, rule in checks:
            if not ok:
                raise OptionError(
                    name,
                    "{field}={value} " + rule + ".",
                    value=getattr(self, name),
                )
        counts = perturbations.FRAME_COUNTS
        frames = min(counts.get(n, 31) for n in self.names or counts)
        if self.kind == "p" and self.difficulty >= frames:
            # The frame step: a flip compares frames `difficulty` apart.
            raise OptionError(
                "difficulty",
                "{field}={value} is the frame step of ImageNet-P's flip "
                "rates and must be below {frames}, the frames of the "
                "sequences asked for; e.g. {field}=1 as in the benchmark.",
                value=self.difficulty,
                frames=frames,
            )
        if self.clean_error is not None and (
            self.kind != "c" or self.normalization != "alexnet"
        ):
            # Before: ignored without a word.
            raise OptionError(
                "clean_error",
                "{field}={value} gives the relative mCE, which divides by "
                "AlexNet's errors on ImageNet-C: it applies with {kind}=c "
                "and {normalization}=alexnet only. Leave {field} out.",
                others=["kind", "normalization"],
                value=self.clean_error,
            )
        if self.kind == "c" and self.difficulty != 1:
            # Before: ignored without a word (and a new cache key: the
            # set was evaluated again).
            raise OptionError(
                "difficulty",
                "{field}={value} is ImageNet-P's frame step and applies to "
                "{kind}=p only; leave it out with {kind}=c.",
                others=["kind"],
                value=self.difficulty,
            )
        if self.kind == "p" and self.normalization != "alexnet":
            # ImageNet-P's FR is defined relative to AlexNet's flip rates;
            # a plain mean would be silently the same report.
            raise OptionError(
                "normalization",
                "{field}={value} applies to ImageNet-C ({kind}=c) only: "
                "ImageNet-P's FR is always relative to AlexNet's.",
                others=["kind"],
                value=self.normalization,
            )


def find_set(options, log=None):
    """The set's files: `evaluation.find_imagenet_c` or `find_imagenet_p`
    output for `options.kind`. What the set's folders hold besides (a
    sub-folder in a class folder, a .webp image) is not evaluated: `log`
    (default: stderr) gets a warning naming it.

    Raises:
        FileNotFoundError, ValueError: no such set, or unknown names.
    """
    skipped = []
    if options.kind == "c":
        found = evaluation.find_imagenet_c(
            options.data_dir, options.names, skipped
        )
    else:
        found = evaluation.find_imagenet_p(
            options.data_dir, options.names, options.difficulty, skipped
        )
    if skipped:
        (log or _log_to_stderr)(skipped_warning(options, skipped))
    return found


def skipped_warning(options, skipped):
    """The warning line for the entries `find_set` did not read."""
    if options.kind == "c":
        layout = "<corruption>/<severity>/<wnid>/<image>"
        wanted = ", ".join(IMAGE_EXTENSIONS) + " images"
    else:
        layout, wanted = "<perturbation>/<wnid>/<video>", ".mp4 videos"
    shown = [os.path.relpath(p, options.data_dir) for p in skipped[:3]]
    more = ", ..." if len(skipped) > 3 else ""
    count = "1 entry" if len(skipped) == 1 else f"{len(skipped)} entries"
    verb = "is" if len(skipped) == 1 else "are"
    return (
        f"WARNING: {count} of {options.data_dir} {verb} not evaluated "
        f"({', '.join(shown)}{more}): the set is read as "
        f"{layout}, {wanted} only."
    )


def unknown_folders(kind, data_dir):
    """The folders of a set that name no corruption (kind "c") or
    perturbation ("p"; the release's `<noise>_<difficulty>` folders, e.g.
    gaussian_noise_2, are perturbations): not evaluated, so the user is
    told."""
    known = set(
        metrics.ALL_CORRUPTIONS if kind == "c" else metrics.ALL_PERTURBATIONS
    )

    def named(name):
        base, _, level = name.rpartition("_")
        noise = kind == "p" and base in metrics.NOISE_PERTURBATIONS
        return name in known or (noise and level.isdigit())

    return sorted(
        name
        for name in os.listdir(data_dir)
        if not named(name)
        and not name.startswith(".")
        and os.path.isdir(os.path.join(data_dir, name))
    )


def missing_noise_folders(data_dir, difficulty, names=()):
    """ImageNet-P noise perturbations left out at `difficulty` > 1: their
    `<noise>` folder is there, their `<noise>_<difficulty>` one (from which
    that difficulty is read, as in the release) is not. With `names`, only
    those perturbations asked for."""
    if difficulty <= 1:
        return []
    return [
        f"{p}_{difficulty}"
        for p in metrics.NOISE_PERTURBATIONS
        if not names or p in names
        if os.path.isdir(os.path.join(data_dir, p))
        and not os.path.isdir(os.path.join(data_dir, f"{p}_{difficulty}"))
    ]


def _items(kind, found):
    """[(path, wnid)] of every image (ImageNet-C) or video (ImageNet-P)."""
    if kind == "c":
        return [i for sev in found.values() for v in sev.values() for i in v]
    return [i for v in found.values() for i in v]


def load_model(options):
    """Builds the model of `options`' source and restores its weights.

    Returns:
        (config, model, source): the experiment config, the Keras model and
        the checkpoint prefix or weights file it was restored from.
    """
    from assemble_tf.runs import checkpoints, runtime
    from assemble_tf.runs import models as run_models

    data = {
        name: getattr(options, name)
        for name in ("num_classes", "label_offset")
        if getattr(options, name) is not None
    }
    config, checkpoint, weights = options.resolve_source(
        output_dir=options.output_dir, data=data, needs_data=False
    )
    with runtime.kept_dtype_policy():
        strategy = runtime.setup_runtime(config)
        with strategy.scope():
            model = run_models.build_run_model(config)
    checkpoints.restore(model, checkpoint, weights)
    return config, model, checkpoint or os.path.abspath(weights)


def _labels_file(options, config):
    """`options.labels_file`, else the run's labels.txt if there, or None."""
    if options.labels_file is None and config.data.data_dir:
        candidate = os.path.join(config.data.data_dir, "labels.txt")
        return candidate if os.path.isfile(candidate) else None
    return options.labels_file


def label_map(options, config, wnids):
    """{class folder: model label} of the set's classes: by the labels
    file (`options.labels_file`, else the run's labels.txt), by the class
    names of the run's tfds / folder source, else by sorted wnids."""
    labels_file = _labels_file(options, config)
    if config.data.source and labels_file is None:
        from assemble_tf.runs import inputs

        info = inputs.open_source_cached(
            config.data.source, config.data.tfds_data_dir, False
        )
        return evaluation.source_label_map(
            wnids, info.class_names, config.data.source
        )
    return evaluation.label_map(
        wnids, config.data.num_classes, config.data.label_offset, labels_file
    )


def comparability_notes(
    kind, config, wnids, normalization="alexnet", labels=None
):
    """(warnings, whether the model is an ImageNet one): a set with fewer
    classes than the model, or a model not trained on ImageNet (no paper
    figure beside it). `labels`: the set's {class folder: model label}."""
    classes, imagenet = evaluation.training_classes(config.data, labels)
    notes = []
    if len(wnids) < classes:
        if kind == "p":
            which = "FR / mFR (relative to AlexNet's flip rates on all of "
            which += "ImageNet-P) are"
        elif normalization == "none":
            which = "the mean corruption error is"
        else:
            which = "CE / mCE (normalised by AlexNet's errors on all of "
            which += "ImageNet) are"
        notes.append(
            f"The set covers {len(wnids)} of the model's {classes} classes: "
            f"errors are over those classes only, and {which} not "
            "comparable with published figures."
        )
    if not imagenet:
        note = (
            f"The model was trained on {classes} classes, not on ImageNet: "
            f"the paper's ImageNet {'mCE' if kind == 'c' else 'mFR'} of "
            f"{config.model.preset} is not shown beside it."
        )
        if kind == "c" and normalization != "none":
            # Before: an "mCE" of 86 on a 3-class set, without a word.
            # The option as the binary's flag (before: "normalization
            # none", which the user could not paste).
            note += " " + str(
                OptionError(
                    "normalization",
                    "Its CE and mCE divide by AlexNet's errors on "
                    "ImageNet-C, which mean nothing for another dataset's "
                    "images: {field}=none gives the plain mean corruption "
                    "error (the paper's Food-101-C figures, Table 8).",
                )
            )
        notes.append(note)
    return notes, imagenet


def uneven_severities(found):
    """ImageNet-C corruptions whose severity folders hold different numbers
    of images (a set cut short or added to), as "fog (1: 11, 5: 4)"."""
    uneven = []
    for name, severities in found.items():
        counts = {s: len(items) for s, items in sorted(severities.items())}
        if len(set(counts.values())) > 1:
            each = ", ".join(f"{s}: {n}" for s, n in counts.items())
            uneven.append(f"{name} ({each})")
    return uneven


def output_dir(options, config, source):
    """`options.output_dir`, else for a weights file (with a preset, or
    replacing a run's checkpoint) <weights folder>/robustness/<weights
    name>, else <model_dir>/robustness. Before: the weights' folder itself,
    where a second weights file's report replaced the first's; and with a
    run, the run's folder, where the weights' report replaced the
    checkpoint's."""
    if options.output_dir:
        return options.output_dir
    return loading.default_results_dir(
        options.weights and source,
        config and os.path.join(config.model_dir, "robustness"),
        "robustness",
    )


def _log_to_stderr(text):
    print(text, file=sys.stderr)


@dataclasses.dataclass(frozen=True)
class _Evaluation:
    """What the steps of `evaluate_robustness` share."""

    options: RobustnessOptions
    config: object  # assemble_tf.config.ExperimentConfig
    source: str
    found: dict
    out: str  # the output folder
    notes: list  # comparability warnings
    imagenet: bool  # an ImageNet model: the paper's figures apply
    log: object  # callable(str)


def _predict_set(ev, model, labels):
    """Per-corruption / perturbation results (cached under `ev.out`)."""
    from assemble_tf.robustness import report

    o = ev.options
    sig = report.signature(
        ev.source,
        o.data_dir,
        o.kind,
        o.difficulty,
        labels=labels,
        model=dataclasses.asdict(ev.config.model),
    )
    cache = os.path.join(ev.out, f"cache_{o.kind}")
    # Flip rates rank the real classes, as the release's 1000-way models
    # (caches of the earlier all-outputs ranking are not reused).
    background = None
    if o.kind == "p":
        background = evaluation.background_class(
            ev.config.data, _labels_file(o, ev.config), labels
        )
        sig = {"signature": sig, "ranking": "real classes"}
        if background is None:  # not the caches that ranked without 0
            sig["background"] = "none"
    predict = evaluation.make_predict_fn(model, background=background)
    with progress_lib.bar(
        total=len(_items(o.kind, ev.found)),
        desc=f"ImageNet-{o.kind.upper()}",
        unit="image" if o.kind == "c" else "video",
        progress=o.progress,
    ) as bar:
        kind = "corruptions" if o.kind == "c" else "perturbations"
        resume = (
            "Rerun the same command to resume: the results of the finished "
            f"{kind} are kept in {cache}."
        )
        try:
            # SIGTERM says it too (before: "Terminated." alone).
            with interrupts.sigterm_raises(resume):
                if o.kind == "c":
                    return evaluation.evaluate_c(
                        predict, ev.found, labels, cache, sig, o.batch_size,
                        bar,
                    )  # fmt: skip
                from assemble_tf.robustness.video import read_video

                return evaluation.evaluate_p(
                    predict, ev.found, labels, cache, sig, read_video,
                    o.difficulty, bar,
                )  # fmt: skip
        except KeyboardInterrupt as e:
            if str(e):
                raise
            # Said after "Interrupted." (before: that word alone).
            raise KeyboardInterrupt(resume) from None


def _report_c(ev, results, paper):
    """(summary, markdown table, {chart_png, gallery_png}) of ImageNet-C."""
    from assemble_tf.robustness import plots, report

    o, preset = ev.options, ev.config.model.preset
    plain = o.normalization == "none"
    summary = evaluation.summarize_c(
        results,
        o.clean_error,
        o.normalization,
        functools.partial(
            evaluation.regenerate_command,
            o.data_dir,
            "tools.make_imagenet_c",
            "corruptions",
        ),
        selected=o.names,
    )
    note = " ".join(ev.notes) or None
    table = report.markdown_c(summary, results, paper, preset, note)
    if summary["note"]:
        ev.log(f"WARNING: {summary['note']}")
    # The dashed line: the 15-corruption mCE, else the 19-corruption one.
    mean, over = summary["mce"], "15 standard"
    if mean is None:
        mean, over = summary["mce_19"], "19"
    title = (
        f"{preset}: error per corruption (not normalised)"
        if plain
        else f"{preset}: CE per corruption (AlexNet = 100)"
    ) + _partial_title(summary)
    files = {}
    files["chart_png"] = plots.error_bars(
        summary["ce"],
        os.path.join(
            ev.out,
            "error_per_corruption.png" if plain else "ce_per_corruption.png",
        ),
        title,
        "top-1 error (%)" if plain else "CE (%)",
        reference=None if plain else 100.0,
        mean=mean,
        mean_label=f"mCE ({over})",
    )
    files["gallery_png"] = plots.corruption_gallery(
        ev.found, os.path.join(ev.out, "gallery_c.png")
    )
    return summary, table, files


def _partial_title(summary):
    """A second title line for a set evaluated at some severities only,
    naming the corruptions the chart leaves out (no CE), or ""."""
    if not summary["severities_partial"]:
        return ""
    left_out = sorted(set(summary["top1_error"]) - set(summary["ce"]))
    return "\nsome severities only" + (
        f"; no CE: {', '.join(left_out)}" if left_out else ""
    )


def _report_p(ev, results, paper):
    """(summary, markdown table, {chart_png, gallery_png}) of ImageNet-P;
    logs the summary's note (no FR above difficulty 1)."""
    from assemble_tf.robustness import plots, report
    from assemble_tf.robustness.video import read_video

    preset, difficulty = ev.config.model.preset, ev.options.difficulty
    summary = evaluation.summarize_p(
        results,
        difficulty,
        functools.partial(
            evaluation.regenerate_command,
            ev.options.data_dir,
            "tools.make_imagenet_p",
            "perturbations",
        ),
        selected=ev.options.names,
    )
    note = " ".join(ev.notes) or None
    table = report.markdown_p(summary, results, paper, preset, note)
    files = {}
    if summary["note"]:
        ev.log(f"WARNING: {summary['note']}")
    # Flip probabilities where there is no mFR (before: also beside an
    # mFR, where the note was only of uneven video counts).
    if summary["mfr"] is None:
        files["chart_png"] = plots.error_bars(
            {k: 100 * v for k, v in summary["flip_probability"].items()},
            os.path.join(ev.out, "fp_per_perturbation.png"),
            f"{preset}: flip probability per perturbation "
            f"(difficulty {difficulty})",
            "flip probability (%)",
            reference=None,
        )
    else:
        files["chart_png"] = plots.error_bars(
            summary["fr"],
            os.path.join(ev.out, "fr_per_perturbation.png"),
            f"{preset}: flip rate per perturbation (AlexNet = 100)",
            "FR (%)",
            mean=summary["mfr"],
        )
    files["gallery_png"] = plots.perturbation_strip(
        {p: read_video(items[0][0]) for p, items in ev.found.items()},
        os.path.join(ev.out, "gallery_p.png"),
    )
    return summary, table, files


def _summarize(ev, results):
    """(report without the markdown and json paths, markdown table)."""
    from assemble_tf import presets

    o, preset = ev.options, ev.config.model.preset
    plain = o.kind == "c" and o.normalization == "none"
    paper = presets.get(preset).paper if ev.imagenet and not plain else None
    make = _report_c if o.kind == "c" else _report_p
    summary, table, files = make(ev, results, paper)
    report = {
        "kind": o.kind,
        "normalization": o.normalization if o.kind == "c" else None,
        "preset": preset,
        "source": ev.source,
        "data_dir": os.path.abspath(o.data_dir),
        "summary": summary,
        "results": results,
        "paper": None
        if paper is None
        else {"source": paper.source, "mce": paper.mce, "mfr": paper.mfr},
        "warnings": ev.notes,
        **files,
    }
    return report, table


def evaluate_robustness(
    options, model, config, source, found=None, log=_log_to_stderr
):
    """Evaluates `model` on the set of `options` and writes the report.

    Args:
        options: a `RobustnessOptions`.
        model: the Keras classifier (e.g. from `load_model`).
        config: its experiment config (labels, classes, preset).
        source: the checkpoint prefix or weights file it was restored from
            (part of the cache key; its folder is the default output).
        found: `find_set(options)`, when already listed.
        log: called with each warning line and, at the end, the table.

    Returns:
        The report written to robustness_<kind>.json (kind, preset, source,
        data_dir, summary, results, paper, warnings, chart_png,
        gallery_png, markdown), plus that file's path under "json".

    Raises:
        ValueError, FileNotFoundError: bad options, set or labels.
    """
    options.validate()
    found = find_set(options, log) if found is None else found
    wnids = {wnid for _, wnid in _items(options.kind, found)}
    labels = label_map(options, config, wnids)
    notes, imagenet = _logged_notes(options, config, found, wnids, labels, log)
    out = output_dir(options, config, source)
    check_writable_folder("output_dir", out, bool(options.output_dir))
    # One evaluation per report at a time (before: two runs into one folder
    # both exited 0, and the report held the later one's set only).
    report_file = report_name(options.kind, options.normalization)
    lock = (
        contextlib.nullcontext()
        if file_utils.is_url(out)
        else file_utils.folder_lock(
            out,
            "output_dir",
            f"tools.eval_robustness ({report_file})",
            f".{report_file}.lock",
        )
    )
    with lock:
        os.makedirs(out, exist_ok=True)
        ev = _Evaluation(
            options, config, source, found, out, notes, imagenet, log
        )
        results = _predict_set(ev, model, labels)
        cached = [name for name, r in results.items() if r["cached"]]
        if cached:
            log(
                f"Reused the cached results of {len(cached)} of "
                f"{len(results)} ({', '.join(cached[:3])}"
                f"{', ...' if len(cached) > 3 else ''}): same model and the "
                "same files. Delete "
                f"{os.path.join(out, 'cache_' + options.kind)} to recompute."
            )
        report, table = _summarize(ev, results)
        report = _write_report(report, table, out)
    # The notes were logged as warnings; the file's table ends with them,
    # the console's does not repeat them.
    logged = {" ".join(notes), report["summary"].get("note")}
    log("\n".join(x for x in table.split("\n") if x not in logged).rstrip())
    return report


def _logged_notes(options, config, found, wnids, labels, log):
    """Logs what makes the set's figures differ from the paper's (and
    folders left out); returns `(notes, imagenet)` of
    `comparability_notes` plus uneven severities."""
    notes, imagenet = comparability_notes(
        options.kind, config, wnids, options.normalization, labels
    )
    uneven = uneven_severities(found) if options.kind == "c" else []
    if uneven:
        notes.append(
            "Images per severity differ in "
            + "; ".join(uneven)
            + ": each severity's error is over other images, and the CE "
            "mixes them."
        )
    for note in notes:
        log(f"WARNING: {note}")
    unknown = unknown_folders(options.kind, options.data_dir)
    if unknown:
        log(
            f"WARNING: {options.data_dir}: not evaluated, no ImageNet-"
            f"{options.kind.upper()} name: {', '.join(unknown)}."
        )
    missing = []
    if options.kind == "p":
        missing = missing_noise_folders(
            options.data_dir, options.difficulty, options.names
        )
    if missing:
        log(
            f"WARNING: {options.data_dir} has no {', '.join(missing)}: "
            "noise sequences at difficulty "
            f"{options.difficulty} are read from <noise>_"
            f"{options.difficulty} folders (as the release holds them), so "
            f"{', '.join(m.rsplit('_', 1)[0] for m in missing)} "
            "are left out."
        )
    return notes, imagenet


def report_name(kind, normalization="alexnet"):
    """The report files' name: robustness_<kind>, and for ImageNet-C
    without AlexNet's normalisation robustness_c_unnormalized, so that the
    two reports of one set sit side by side (before: the second replaced
    the first)."""
    if kind == "c" and normalization == "none":
        return "robustness_c_unnormalized"
    return f"robustness_{kind}"


def _write_report(report, table, out):
    """Writes <report_name>.md (`table`) and .json (`report` with the
    markdown's path); returns the report with the json path added."""
    name = report_name(report["kind"], report["normalization"])
    report = dict(report, markdown=os.path.join(out, f"{name}.md"))
    with open(report["markdown"], "w") as f:
        f.write(table)
    path = os.path.join(out, f"{name}.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    return dict(report, json=path)


def console_line(report):
    """The one-line summary a binary prints: kind, mCE / mFR figures and
    the paths of the files written."""
    summary = report["summary"]
    files = ("chart_png", "gallery_png", "markdown", "json")
    return {
        "kind": report["kind"],
        **{k: summary[k] for k in LINE_KEYS if k in summary},
        **{k: report[k] for k in files},
    }
