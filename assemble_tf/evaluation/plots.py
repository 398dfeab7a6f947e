"""PNG plots: reliability diagrams and training curves.

The reliability diagram follows Guo et al. 2017, "On Calibration of Modern
Neural Networks" (https://arxiv.org/abs/1706.04599): per confidence bin the
accuracy is drawn against the diagonal of perfect calibration, with the
expected calibration error in the title, as reported for Assemble-ResNet
(Lee et al. 2020, https://arxiv.org/abs/2001.06268; original code
https://github.com/clovaai/assembled-cnn).

matplotlib is imported inside the functions and drives the Agg canvas
directly (no pyplot, no global backend switch), so importing this module is
cheap and plotting works headless and from several threads.
"""

import math
import numbers
import os

import numpy as np

from assemble_tf.evaluation.metrics import calibration_error_from_bins

# Series of `training_curves`, by panel; other numeric keys are ignored.
_ACCURACY_SUFFIXES = ("top1", "top5", "accuracy", "acc")


def _new_figure(nrows, height, height_ratios=None):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, height))
    FigureCanvasAgg(figure)
    axes = figure.subplots(
        nrows,
        1,
        sharex=True,
        squeeze=False,
        gridspec_kw={"height_ratios": height_ratios},
    )[:, 0]
    return figure, axes


def _check_path(path):
    path = os.fspath(path)
    if not path.lower().endswith(".png"):
        raise ValueError(f"path must end with .png, got {path!r}.")
    return path


def _save(figure, path):
    path = _check_path(path)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    return path


def reliability_diagram(bins, path, title="Reliability diagram"):
    """Writes a reliability diagram as a PNG.

    Top panel: accuracy per confidence bin as bars, the gap to the bin's
    mean confidence as a hatched outline, and the diagonal. Bottom panel:
    the number of examples per bin. The ECE is appended to the title.

    Args:
        bins: (count, confidence, accuracy) arrays of one length, as from
            `ClassificationMetrics.bins()` or `metrics.calibration_bins`.
        path: output file ending in ".png"; parent folders are created.
        title: figure title.

    Returns:
        The path written.
    """
    _check_path(path)
    try:
        count, confidence, accuracy = (np.asarray(b, np.float64) for b in bins)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"bins must be (count, confidence, accuracy) arrays, got {bins!r}."
        ) from error
    ece = calibration_error_from_bins(count, confidence, accuracy)
    num_bins = count.shape[0]
    if num_bins == 0:
        raise ValueError(f"bins must not be empty, got {bins!r}.")
    width = 1.0 / num_bins
    centers = (np.arange(num_bins) + 0.5) * width
    filled = count > 0

    figure, (top, bottom) = _new_figure(2, 6.4, height_ratios=[3, 1])
    top.bar(
        centers[filled],
        accuracy[filled],
        width=width,
        edgecolor="black",
        color="tab:blue",
        label="accuracy",
    )
    top.bar(
        centers[filled],
        confidence[filled] - accuracy[filled],
        bottom=accuracy[filled],
        width=width,
        edgecolor="tab:red",
        color="none",
        hatch="//",
        label="gap to confidence",
    )
    top.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.legend(loc="upper left")
    ece_text = "n/a" if math.isnan(ece) else f"{100.0 * ece:.2f}%"
    top.set_title(f"{title} (ECE = {ece_text})")
    bottom.bar(centers, count, width=width, edgecolor="black", color="gray")
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("examples")
    return _save(figure, path)


def _is_number(value):
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _series(history, x_key, key):
    points = [
        (float(r[x_key]), float(r[key]))
        for r in history
        if _is_number(r.get(x_key)) and _is_number(r.get(key))
    ]
    points.sort()
    return [p[0] for p in points], [p[1] for p in points]


def training_curves(history, path, title="Training curves"):
    """Writes loss / accuracy / learning-rate curves as a PNG.

    The x axis is "epoch" when any record has it, else "step", else the
    record index. Keys ending in "loss" go to the loss panel; keys ending
    in "top1", "top5", "accuracy" or "acc" to the accuracy panel; a
    "learning_rate" key, when present, gets a third panel. Records may miss
    any key; non-numeric, boolean and non-finite values are skipped.

    Args:
        history: list of dicts, e.g. {"step": 100, "epoch": 1.0,
            "train_loss": 2.3, "learning_rate": 0.1, "val_top1": 0.4}.
        path: output file ending in ".png"; parent folders are created.
        title: figure title.

    Returns:
        The path written.
    """
    _check_path(path)
    if isinstance(history, dict) or not isinstance(history, (list, tuple)):
        raise TypeError(
            f"history must be a list of dicts, got {type(history).__name__}."
        )
    if not history:
        raise ValueError("history is empty: nothing to plot.")
    for index, record in enumerate(history):
        if not isinstance(record, dict):
            raise TypeError(f"history[{index}] must be a dict, got {record!r}.")
    if any(_is_number(r.get("epoch")) for r in history):
        x_key = "epoch"
    elif any(_is_number(r.get("step")) for r in history):
        x_key = "step"
    else:
        x_key = None
        history = [dict(r, _index=i) for i, r in enumerate(history)]
    x_name = x_key or "_index"

    keys = sorted({k for r in history for k in r if isinstance(k, str)})
    loss_keys = [k for k in keys if k.endswith("loss")]
    accuracy_keys = [k for k in keys if k.endswith(_ACCURACY_SUFFIXES)]
    panels = [("loss", loss_keys), ("accuracy", accuracy_keys)]
    if "learning_rate" in keys:
        panels.append(("learning rate", ["learning_rate"]))

    figure, axes = _new_figure(len(panels), 2.6 * len(panels) + 0.6)
    for axis, (label, panel_keys) in zip(axes, panels, strict=True):
        drawn = 0
        for key in panel_keys:
            xs, ys = _series(history, x_name, key)
            if xs:
                marker = "o" if len(xs) < 30 else None
                axis.plot(xs, ys, marker=marker, markersize=3, label=key)
                drawn += 1
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
        if drawn:
            axis.legend(loc="best", fontsize="small")
        else:
            axis.text(
                0.5,
                0.5,
                "no data",
                ha="center",
                va="center",
                transform=axis.transAxes,
            )
    axes[-1].set_xlabel(x_key or "record")
    axes[0].set_title(title)
    return _save(figure, path)
