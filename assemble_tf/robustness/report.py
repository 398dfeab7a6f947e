"""Reports of `tools.eval_robustness`: markdown tables and the cache key.

The tables put our mCE (Hendrycks & Dietterich, ICLR 2019) and mFR beside
the figures Assemble-ResNet (Lee et al., arXiv 2001.06268) publishes for
the same preset.
"""

import hashlib
import json
import os


def signature(source, data_dir, kind, difficulty, labels=None, model=None):
    """Identifies model + data for the per-corruption cache: the weights
    file (path, size, time), the set, its kind and difficulty, the class
    -> label map its errors were counted with (`labels`: another labels
    file or --label_offset gives other errors) and the model's build
    options (`model`: a dict)."""
    stat = []
    for suffix in ("", ".index", ".data-00000-of-00001"):
        if os.path.exists(source + suffix):
            st = os.stat(source + suffix)
            stat.append([suffix, st.st_size, int(st.st_mtime)])
    blob = json.dumps(
        [
            source,
            stat,
            os.path.abspath(data_dir),
            kind,
            difficulty,
            sorted((labels or {}).items()),
            model,
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha1(blob.encode()).hexdigest()


def _fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def markdown_c(summary, results, paper, preset, note=None):
    """The ImageNet-C table: errors per severity, CE, and mCE beside the
    paper's figure (`paper`: a preset's `PaperFigures` or None)."""
    lines = [
        "| corruption | top-1 error % (sev. 1-5) | mean | "
        + ("error %" if summary.get("normalization") == "none" else "CE")
        + " |",
        "|---|---|---|---|",
    ]
    for name, r in results.items():
        per = " / ".join(
            "-" if e is None else f"{100 * e:.1f}" for e in r["top1_error"]
        )
        lines.append(
            f"| {name} | {per} | {100 * summary['top1_error'][name]:.2f} | "
            f"{_fmt(summary['ce'].get(name))} |"
        )

    def fmt(v):
        return "-" if v is None else f"{v:.2f}"

    plain = summary.get("normalization") == "none"
    kind = "not normalised" if plain else "AlexNet-normalised"
    lines += [
        "",
        "| metric | ours | paper |",
        "|---|---|---|",
        f"| mCE (15 standard) | {fmt(summary['mce'])} | - |",
        f"| mCE (19, the original's protocol) | {fmt(summary['mce_19'])} | "
        f"{fmt(paper.mce if paper else None)} |",
        f"| relative mCE | {fmt(summary['relative_mce'])} | - |",
        f"| mean top-1 error % | {100 * summary['mean_error_all']:.2f} | - |",
    ]
    lines.append(f"\nmCE here is {kind}.")
    if paper:
        lines.append(f"\nPaper: {preset}, {paper.source}.")
    for text in (summary.get("note"), note):
        if text:
            lines.append(f"\n{text}")
    return "\n".join(lines) + "\n"


def markdown_p(summary, results, paper, preset, note=None):
    """The ImageNet-P table: flip probability, FR, top-5 distance, and mFR
    beside the paper's figure (the summary's note when FR is undefined)."""
    lines = [
        "| perturbation | flip prob. | FR | top-5 dist. | top-1 error % |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        fr = summary["fr"].get(name)
        lines.append(
            f"| {name} | {r['flip_probability']:.5f} | "
            f"{'-' if fr is None else f'{fr:.2f}'} | "
            f"{_fmt(r['top5_distance'], 4)} | "
            f"{100 * r['top1_error']:.2f} |"
        )
    mfr = summary["mfr"]
    paper_mfr = paper.mfr if paper else None
    lines += [
        "",
        "| metric | ours | paper |",
        "|---|---|---|",
        f"| mFR | {'-' if mfr is None else f'{mfr:.2f}'} | "
        f"{'-' if paper_mfr is None else paper_mfr} |",
    ]
    for text in (summary.get("note"), note):
        if text:
            lines.append(f"\n{text}")
    return "\n".join(lines) + "\n"
