"""Robustness plots: CE / FR bar charts and corruption galleries.

Bars follow Hendrycks & Dietterich (ICLR 2019,
https://arxiv.org/abs/1903.12261): corruption errors normalised by AlexNet
(100 = AlexNet), with the paper's figures beside ours where the model is an
Assemble-ResNet preset (Lee et al. 2020, https://arxiv.org/abs/2001.06268).
matplotlib drives the Agg canvas directly (no pyplot state).
"""

import os

import numpy as np


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def error_bars(
    values, path, title, ylabel, reference=100.0, mean=None, mean_label="mean"
):
    """Bar chart of per-corruption CE (or per-perturbation FR).

    Args:
        values: {name: value in percent}, drawn in insertion order.
        path: PNG path.
        title: figure title.
        ylabel: y-axis label.
        reference: a horizontal line (AlexNet = 100); None for none.
        mean: optional mean drawn as a dashed line and in the legend.
        mean_label: its name in the legend (e.g. "mCE over the 15
            standard").
    """
    names = list(values)
    figure = _figure(max(6.0, 0.45 * len(names) + 2), 4.2)
    ax = figure.subplots()
    x = np.arange(len(names))
    ax.bar(x, [values[n] for n in names], color="tab:blue", label="ours")
    if reference is not None:
        ax.axhline(reference, color="gray", lw=1, label="AlexNet")
    if mean is not None:
        ax.axhline(
            mean,
            color="tab:red",
            ls="--",
            lw=1,
            label=f"{mean_label} {mean:.1f}",
        )
    ax.set_xticks(x, [n.replace("_", " ") for n in names], rotation=60)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    # Headroom for the legend: it covered the last bars (spatter, saturate).
    drawn = [values[n] for n in names] + [
        v for v in (reference, mean) if v is not None
    ]
    ax.set_ylim(0, 1.3 * max(max(drawn, default=0.0), 1e-9))
    ax.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def _load(path):
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def corruption_gallery(found, path, max_side=96):
    """One image under every corruption (rows) and severity (columns).

    Args:
        found: `evaluation.find_imagenet_c` output.
        path: PNG path.
        max_side: thumbnails are shown at most this many inches x 100.

    Returns:
        The PNG path, or None when no image exists in every folder.
    """
    corruptions = list(found)
    first = found[corruptions[0]]
    s0 = min(first)
    root_of = {}
    for c in corruptions:
        for s, items in found[c].items():
            root_of[(c, s)] = {
                os.path.join(w, os.path.basename(p)): p for p, w in items
            }
    common = set(root_of[(corruptions[0], s0)])
    for key in root_of.values():
        common &= set(key)
    if not common:
        return None
    pick = sorted(common)[0]
    cell = max_side / 100
    figure = _figure(5 * cell + 1.6, len(corruptions) * cell + 0.5)
    axes = figure.subplots(len(corruptions), 5, squeeze=False)
    for i, c in enumerate(corruptions):
        for s in range(1, 6):
            ax = axes[i, s - 1]
            ax.set_xticks([])
            ax.set_yticks([])
            if (c, s) in root_of:
                ax.imshow(_load(root_of[(c, s)][pick]))
            if i == 0:
                ax.set_title(f"severity {s}", fontsize=8)
            if s == 1:
                ax.set_ylabel(c.replace("_", " "), fontsize=7)
    figure.suptitle(pick, fontsize=8)
    # Fixed margins: tight_layout over 95 axes costs seconds.
    figure.subplots_adjust(
        left=0.12, right=0.99, bottom=0.01, top=0.95, wspace=0.05, hspace=0.1
    )
    figure.savefig(path, dpi=100)
    return path


def perturbation_strip(videos, path, frames=6):
    """Evenly spaced frames (columns) of one video per perturbation (rows).

    Args:
        videos: {perturbation: uint8 frames [n, H, W, 3]}.
        path: PNG path.
        frames: frames shown per row.
    """
    names = list(videos)
    figure = _figure(frames * 1.0 + 1.6, len(names) * 1.0 + 0.4)
    axes = figure.subplots(len(names), frames, squeeze=False)
    for i, name in enumerate(names):
        video = videos[name]
        picks = np.linspace(0, len(video) - 1, frames).round().astype(int)
        for j, f in enumerate(picks):
            ax = axes[i, j]
            ax.imshow(video[f])
            ax.set_xticks([])
            ax.set_yticks([])
            # Every cell its own frame: the rows' videos differ in length
            # (translate 41 frames, the others 31), and the first row's
            # titles over the others named frames they did not show.
            ax.set_title(f"frame {f + 1}", fontsize=6)
            if j == 0:
                ax.set_ylabel(name.replace("_", " "), fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path
