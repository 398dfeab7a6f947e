"""Builds every preset and tabulates size and cost beside the paper.

    python -m tools.preset_table --output_dir=demo_out

For each preset: parameters, GMACs at the preset's evaluation size (the
convention of Lee et al. 2020, Table 12), and the top-1 / mCE / images-per-
second the paper reports for that row. Writes `presets.json`, `presets.md`,
`presets.csv` and `presets_gmacs_vs_top1.png` to --output_dir.
"""

import csv
import json
import os
import sys

from absl import flags

from official.utils.flags import core as flags_core

flags.DEFINE_string("output_dir", None, "Where to write the table and plot.")
flags.DEFINE_list("presets", None, "Subset of presets (default: all).")
flags.DEFINE_integer(
    "image_size", None, "Override every preset's evaluation size."
)
flags.DEFINE_bool("plot", True, "Write the GMACs-vs-top-1 scatter plot.")
FLAGS = flags.FLAGS

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


def collect(names, image_size=None, progress=True):
    """Returns one row dict per preset (builds each model once)."""
    import keras
    from tqdm import tqdm

    from assemble_tf import presets
    from assemble_tf.models import build_model, count_macs, count_params

    rows = []
    bar = tqdm(
        names,
        desc="building presets",
        unit="model",
        disable=not progress,
        file=sys.stderr,
    )
    for name in bar:
        bar.set_postfix_str(name)
        preset = presets.get(name)
        size = image_size or preset.eval_image_size
        model = build_model(name, image_size=size)
        total, trainable, _ = count_params(model)
        paper = preset.paper
        rows.append(
            {
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
        )
        del model
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


def plot(rows, path):
    """Scatter of GMACs against the paper's top-1, one labelled dot a row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # One dot per distinct (GMACs, top-1); presets sharing it share a label.
    groups = {}
    for r in rows:
        if r["paper_top1"] is not None:
            key = (r["gmacs"], r["paper_top1"])
            groups.setdefault(key, []).append(r["preset"])
    families = {
        "table2": "Table 2 (SK)",
        "table3": "Table 3 (AA)",
        "table6": "Table 6 (tweaks)",
        "table7": "Table 7 (assembled)",
    }
    colors = dict(
        zip(
            list(families) + ["named"],
            ["tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:red"],
            strict=True,
        )
    )
    fig, ax = plt.subplots(figsize=(10, 6.5))
    seen = set()
    for (gmacs, top1), names in sorted(groups.items()):
        family = names[0].split("_")[0]
        family = family if family in families else "named"
        label = families.get(family, "named presets")
        ax.scatter(
            gmacs,
            top1,
            c=colors[family],
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
    ax.legend(loc="lower right", fontsize=8)
    ax.margins(x=0.15, y=0.05)
    ax.set_xlabel("GMACs at the evaluation size (one image)")
    ax.set_ylabel("ImageNet top-1 reported in the paper (%)")
    ax.set_title("Assemble-ResNet presets: cost vs accuracy (Lee et al. 2020)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv):
    del argv
    from assemble_tf import presets

    names = FLAGS.presets or presets.names()
    for name in names:
        presets.get(name)  # fail before building anything
    rows = collect(names, FLAGS.image_size)
    table = format_table(rows)
    print(table)
    if FLAGS.output_dir:
        os.makedirs(FLAGS.output_dir, exist_ok=True)
        out = FLAGS.output_dir
        with open(os.path.join(out, "presets.json"), "w") as f:
            json.dump(rows, f, indent=1)
        with open(os.path.join(out, "presets.md"), "w") as f:
            f.write(table + "\n")
        with open(os.path.join(out, "presets.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        if FLAGS.plot:
            plot(rows, os.path.join(out, "presets_gmacs_vs_top1.png"))
        print(
            f"\nWrote presets.json, presets.md, presets.csv"
            f"{', presets_gmacs_vs_top1.png' if FLAGS.plot else ''} "
            f"to {out}"
        )


if __name__ == "__main__":
    flags_core.run(main)
