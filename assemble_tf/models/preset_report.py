"""Size and cost of the presets, beside the figures of the paper.

The work of `tools.model_summary` (`summarize`: one preset, with
overrides) and `tools.preset_table` (`preset_table`: every preset, or a
subset). Counts follow the convention of Lee et al. 2020
(https://arxiv.org/abs/2001.06268), Table 12: GMACs of convs, blurs,
attention 1x1s and the dense head for one image at the preset's
evaluation size. For each preset the table has parameters, GMACs and the
top-1 / mCE / images-per-second the paper reports for that row; with an
output folder it writes `presets.json`, `presets.md`, `presets.csv` and
`presets_gmacs_vs_top1.png`.

    summary = preset_report.summarize("assemble_resnet50", {})
    report = preset_report.preset_table(
        preset_report.PresetTableOptions(output_dir="demo_out/presets"))
"""

import csv
import dataclasses
import json
import os

from official.utils.misc import progress as progress_lib

COLUMNS = [
    ("preset", "preset"),
    ("image_size", "eval size"),
    ("total_params_m", "params (M)"),
    ("gmacs", "GMACs"),
    ("paper_top1", "paper top-1"),
    ("paper_mce", "paper mCE"),
    ("paper_throughput", "paper img/s"),
    ("paper_source", "paper row"),
]
# The scatter plot's legend: preset name prefix -> paper table.
FAMILIES = {
    "table2": "Table 2 (SK)",
    "table3": "Table 3 (AA)",
    "table6": "Table 6 (tweaks)",
    "table7": "Table 7 (assembled)",
}
_COLORS = dict(
    zip(
        list(FAMILIES) + ["named"],
        ["tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:red"],
        strict=True,
    )
)
TABLE_FILES = ("presets.json", "presets.md", "presets.csv")
PLOT_FILE = "presets_gmacs_vs_top1.png"


@dataclasses.dataclass(frozen=True)
class PresetTableOptions:
    """Which presets to tabulate; field names are `tools.preset_table`'s
    flags.

    Attributes:
        presets: the presets (empty: all of them).
        image_size: evaluation size of every preset (None: each preset's).
        output_dir: where the table files and the plot go (None: none).
        plot: also write the GMACs-vs-top-1 scatter plot.
        progress: show a progress bar (on stderr).
    """

    presets: tuple[str, ...] = ()
    image_size: int | None = None
    output_dir: str | None = None
    plot: bool = True
    progress: bool = True


def summarize(preset, overrides):
    """Parameter and multiply-add counts of `preset`.

    Args:
        preset: a preset name.
        overrides: `build_model` arguments; `image_size` defaults to the
            preset's evaluation size.

    Returns:
        {preset, image_size, total_params, trainable_params,
        non_trainable_params, gmacs (4 significant digits)}.

    Raises:
        OptionError: an image size below 32, or one the preset's layers
            cannot take (names `image_size`).
    """
    from assemble_tf import presets
    from assemble_tf.models import (
        build_model_to_count,
        count_macs,
        count_params,
    )
    from official.utils.misc.validation import OptionError

    overrides = dict(overrides)
    overrides.setdefault("image_size", presets.get(preset).eval_image_size)
    if overrides["image_size"] < 32:  # before: any size, e.g. 1 px counted
        raise OptionError(
            "image_size",
            "{field}={value} must be at least 32 (the network's output "
            "stride; the benchmarks' lowest size too).",
            value=overrides["image_size"],
        )
    try:
        model = build_model_to_count(preset, **overrides)
    except ValueError as e:
        if "image size" not in str(e) and "input side" not in str(e):
            raise
        # Named as the option to change (before: the layer's message
        # alone, after "must be at least 32" had passed).
        raise OptionError(
            "image_size",
            "{field}={value} does not fit {preset}: {reason}",
            value=overrides["image_size"],
            preset=preset,
            reason=e,
        ) from None
    total, trainable, non_trainable = count_params(model)
    return {
        "preset": preset,
        "image_size": overrides["image_size"],
        "total_params": int(total),
        "trainable_params": int(trainable),
        "non_trainable_params": int(non_trainable),
        # Four significant digits (before: four decimals, 0.0007 for a
        # tiny model).
        "gmacs": float(f"{count_macs(model) / 1e9:.4g}"),
    }


def format_summary(summary):
    """`summarize`'s dict as aligned "key  value" lines (ints with
    thousands separators)."""
    width = max(len(k) for k in summary)
    lines = []
    for key, value in summary.items():
        text = f"{value:,}" if isinstance(value, int) else str(value)
        lines.append(f"{key:<{width}}  {text}")
    return "\n".join(lines)


def preset_row(name, image_size=None):
    """The table row of preset `name` (builds its model)."""
    from assemble_tf import presets
    from assemble_tf.models import (
        build_model_to_count,
        count_macs,
        count_params,
    )

    preset = presets.get(name)
    size = image_size or preset.eval_image_size
    model = build_model_to_count(name, image_size=size)
    total, trainable, _ = count_params(model)
    paper = preset.paper
    return {
        "preset": name,
        "description": preset.description,
        "image_size": size,
        "total_params": int(total),
        "trainable_params": int(trainable),
        "total_params_m": round(total / 1e6, 2),
        "gmacs": round(count_macs(model) / 1e9, 2),
        "paper_top1": paper.top1 if paper else None,
        "paper_mce": paper.mce if paper else None,
        "paper_throughput": paper.throughput if paper else None,
        "paper_source": paper.source if paper else "",
    }


def collect(names, image_size=None, progress=True):
    """Returns one row dict per preset (builds each model once)."""
    import keras

    from official.utils.misc.validation import OptionError

    rows = []
    bar = progress_lib.bar(
        names, desc="building presets", unit="model", progress=progress
    )
    for name in bar:
        bar.set_postfix_str(name)
        try:
            rows.append(preset_row(name, image_size))
        except OptionError as e:  # the option stays named (a flag)
            raise OptionError(
                e.field, f"Preset {name}: {e.template}", e.others, **e.values
            ) from None
        except ValueError as e:
            # Before: the builder's message alone, naming no preset.
            raise ValueError(f"Preset {name}: {e}") from None
        keras.backend.clear_session()
    return rows


def format_table(rows):
    """Markdown table of `rows`."""

    def cell(v):
        return "-" if v is None or v == "" else str(v)

    header = "| " + " | ".join(t for _, t in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = [
        "| " + " | ".join(cell(r[k]) for k, _ in COLUMNS) + " |" for r in rows
    ]
    return "\n".join([header, rule, *body])


def _paper_points(rows):
    """{(GMACs, paper top-1): [preset names]} of the rows with a top-1;
    presets sharing a point share its dot and label."""
    groups = {}
    for r in rows:
        if r["paper_top1"] is not None:
            key = (r["gmacs"], r["paper_top1"])
            groups.setdefault(key, []).append(r["preset"])
    return groups


def _draw_points(ax, groups):
    """One dot per point, coloured by paper table, labelled with its
    presets (without the "table" prefix)."""
    seen = set()
    for (gmacs, top1), names in sorted(groups.items()):
        family = names[0].split("_")[0]
        family = family if family in FAMILIES else "named"
        label = FAMILIES.get(family, "named presets")
        ax.scatter(
            gmacs,
            top1,
            c=_COLORS[family],
            s=30,
            label=None if family in seen else label,
        )
        seen.add(family)
        text = ", ".join(n.replace("table", "") for n in names)
        ax.annotate(
            text,
            (gmacs, top1),
            fontsize=6.5,
            xytext=(4, -3),
            textcoords="offset points",
        )


def plot(rows, path):
    """Scatter of GMACs against the paper's top-1, one labelled dot a row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6.5))
    _draw_points(ax, _paper_points(rows))
    ax.legend(loc="lower right", fontsize=8)
    ax.margins(x=0.15, y=0.05)
    ax.set_xlabel("GMACs at the evaluation size (one image)")
    ax.set_ylabel("ImageNet top-1 reported in the paper (%)")
    ax.set_title("Assemble-ResNet presets: cost vs accuracy (Lee et al. 2020)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(rows, table, out, with_plot=True):
    """Writes presets.json, .md, .csv (and the plot) to `out`; returns
    the names of the files written."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "presets.json"), "w") as f:
        json.dump(rows, f, indent=1)
    with open(os.path.join(out, "presets.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(out, "presets.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    files = list(TABLE_FILES)
    if with_plot:
        plot(rows, os.path.join(out, PLOT_FILE))
        files.append(PLOT_FILE)
    elif os.path.exists(os.path.join(out, PLOT_FILE)):
        # An earlier table's plot, of other presets (before: left beside
        # this table as if it were its own).
        os.remove(os.path.join(out, PLOT_FILE))
    return files


def preset_table(options, show=None):
    """Builds the presets of `options` and tabulates them.

    Args:
        options: a `PresetTableOptions`.
        show: called with the markdown table before any file is written
            (a binary prints it), or None.

    Returns:
        {"rows": one dict per preset, "table": the markdown table,
        "output_dir": `options.output_dir`, "files": the names of the
        files written there (empty without an output folder)}.

    Raises:
        ValueError: an unknown or repeated preset, or an `output_dir` that
            is a file (before anything is built).
    """
    from assemble_tf import presets
    from official.utils.misc.validation import (
        OptionError,
        check_at_least,
        check_creatable_path,
        check_distinct,
    )

    names = list(options.presets) or presets.names()
    for name in names:
        try:
            presets.get(name)  # fail before building anything
        except OptionError as e:  # named as this job's option, `presets`
            raise e.renamed({"preset": "presets"}) from None
    check_distinct(options, ("presets",))
    if options.image_size is not None:  # 0 was taken as "each preset's"
        # The smallest size every preset builds at (BlurPool's 5-tap
        # filters need 3-pixel maps; BigLittleNet multiples of 32).
        check_at_least(options, {"image_size": 64})
        big_little = [
            n for n in names if presets.get(n).model_kwargs().get("big_little")
        ]
        if big_little and options.image_size % 32:
            # Before: refused by the first BigLittleNet model built, after
            # the presets before it.
            raise OptionError(
                "image_size",
                "{field}={size} does not fit {which}: BigLittleNet takes "
                "sides that are multiples of 32, e.g. {field}={fit}.",
                size=options.image_size,
                which=", ".join(big_little[:3])
                + (", ..." if len(big_little) > 3 else ""),
                fit=options.image_size // 32 * 32 or 64,
            )
    if options.output_dir and os.path.isfile(options.output_dir):
        raise OptionError(
            "output_dir",
            "{field}={path} is a file; pass a folder (made if missing).",
            path=options.output_dir,
        )
    # A file or an unwritable folder on the way, before the table (before:
    # a NotADirectoryError traceback after it).
    check_creatable_path("output_dir", options.output_dir)
    rows = collect(names, options.image_size, options.progress)
    table = format_table(rows)
    if show is not None:
        show(table)
    files = []
    if options.output_dir:
        files = write_outputs(rows, table, options.output_dir, options.plot)
    return {
        "rows": rows,
        "table": table,
        "output_dir": options.output_dir,
        "files": files,
    }
