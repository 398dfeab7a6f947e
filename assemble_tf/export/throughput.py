"""Inference throughput as ratios measured in one run.

Lee et al. 2020 (https://arxiv.org/abs/2001.06268) report images/s on one
Tesla P40, FP32, batch 64. Absolute numbers depend on the machine, so
`tools.benchmark_throughput` times models side by side in one process and
reports ratios: against Keras' `ResNet50(weights=None)` and against our R50
beside the paper's ratio (Assemble-R50 312/536 = 0.58). These are its
pieces: compiled forward passes (TensorFlow `tf.function`, optionally XLA;
or `jax.jit` of Keras' stateless call under `KERAS_BACKEND=jax`, where no
TensorFlow is needed), interleaved timing, a matmul peak, and the outputs
(JSON lines, a markdown table, a bar chart).

Modes are serving paths: `plain`, `xla`, `fold_bn` (BatchNorm folded),
`fold_bn_xla`, and `bf16` / `fold_bn_bf16`: the model computing in bfloat16
from float32 inputs to float32 logits, as `tools.export_saved_model` with
precision bfloat16 serves it (`precision.bfloat16_copy`).
"""

import functools
import json
import os
import statistics
import time

import keras
import numpy as np

from assemble_tf.export import precision
from assemble_tf.export.optimize import fold_bn_graph, folded_copy
from assemble_tf.models import build_model, count_macs
from official.utils.logs import logger

MODES = ("plain", "xla", "fold_bn", "fold_bn_xla", "bf16", "fold_bn_bf16")
PAPER_R50_IMAGES_PER_SEC = 536  # Table 7 E0 on one P40

# Distinct architectures of Table 7 (rows sharing one are timed once).
PAPER_ROWS = [
    "table7_e0",
    "table7_e1",
    "table7_e4",
    "table7_e6",
    "table7_e9",
    "table7_e11",
    "table7_e12",
]


# Keras' ResNet50's blocks per stage, and one block per stage for `smoke`
# runs (tests, CI): Keras' own blocks without building and compiling all
# 16 of them.
KERAS_RESNET50_BLOCKS = (3, 4, 6, 3)
SMOKE_KERAS_BLOCKS = (1, 1, 1, 1)


def keras_resnet50(input_shape, blocks=None, **kwargs):
    """Keras' `ResNet50(weights=None)`, the reference of both benchmarks.

    Args:
        input_shape: (height, width, 3).
        blocks: None for the real ResNet-50 (`KERAS_RESNET50_BLOCKS`);
            else blocks per stage of the same network (Keras' own residual
            blocks and stem), e.g. `SMOKE_KERAS_BLOCKS` for tiny runs.
        **kwargs: more `keras.applications.ResNet50` arguments (`classes`,
            `classifier_activation`).
    """
    if blocks is None:
        return keras.applications.ResNet50(
            weights=None, input_shape=input_shape, **kwargs
        )
    from keras.src.applications import resnet

    def stack_fn(x):
        for stage, (filters, count) in enumerate(
            zip((64, 128, 256, 512), blocks, strict=True)
        ):
            x = resnet.stack_residual_blocks_v1(
                x,
                filters,
                count,
                stride1=1 if stage == 0 else 2,
                name=f"conv{stage + 2}",
            )
        return x

    return resnet.ResNet(
        stack_fn,
        preact=False,
        use_bias=True,
        weights_name=None,
        name="resnet50_" + "".join(map(str, blocks)),
        weights=None,
        input_shape=input_shape,
        **kwargs,
    )


def backend():
    return keras.backend.backend()


def device_name():
    if backend() == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform == "cpu":
            return f"CPU ({os.cpu_count()} cores, JAX)"
        return f"{device.device_kind} (JAX)"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return details.get("device_name", "GPU")
    return f"CPU ({os.cpu_count()} cores)"


def wait(out):
    """Blocks until `out` is computed, without copying it to the host."""
    if hasattr(out, "block_until_ready"):  # a JAX array
        out.block_until_ready()
    else:  # a tf.Tensor: one fetched element waits for all of it
        import tensorflow as tf

        tf.reshape(out, [-1])[0].numpy()


# Why a row can measure above the matmul peak of its run; said by both
# benchmarks beside such a row.
ABOVE_PEAK = (
    "its convolutions do fewer multiplications than their nominal MACs "
    "(e.g. Winograd), or the peak was measured low (a busy machine); its "
    "peak fraction is no measure of efficiency."
)


def time_interleaved_runs(
    entries, warmup, runs, steps, batch_size, tick=lambda: None
):
    """Images/s of each entry's `fn(images)` per run, runs interleaved;
    `tick()` after each warm-up and timed run of an entry (a progress bar).

    Run r of every entry is timed before run r + 1 of any, so slow drifts of
    a shared machine (other jobs, frequency scaling) hit all entries alike
    and per-run ratios stay meaningful. The order alternates (forward in
    even runs, backward in odd ones), so no entry always follows the same
    one or always comes first.

    Returns:
        One list of `runs` images/s per entry, in `entries` order.
    """
    for e in entries:
        for _ in range(warmup):
            wait(e["fn"](e["images"]))
            tick()
    rates = [[] for _ in entries]
    for run in range(runs):
        order = range(len(entries))
        for i in order if run % 2 == 0 else reversed(order):
            e = entries[i]
            start = time.perf_counter()
            for _ in range(steps):
                out = e["fn"](e["images"])
            wait(out)
            rates[i].append(steps * batch_size / (time.perf_counter() - start))
            tick()
    return rates


def matmul_peak_gflops(dtype, size=2048, repeats=3, trials=5):
    """Best float32 (or dtype) matmul GFLOP/s of several trials.

    The best of `trials` (after a warm-up call) so that a machine still
    ramping up or briefly disturbed does not understate the peak.
    """
    a = np.random.default_rng(0).random((size, size), np.float32)
    if backend() == "jax":
        import jax
        import jax.numpy as jnp

        a = jnp.asarray(a, dtype)
        fn = jax.jit(lambda x: x @ x)
    else:
        import tensorflow as tf

        a = tf.cast(a, dtype)
        fn = tf.function(lambda x: tf.matmul(x, x))
    wait(fn(a))
    best = 0.0
    for _ in range(trials):
        start = time.perf_counter()
        for _ in range(repeats):
            out = fn(a)
        wait(out)
        elapsed = time.perf_counter() - start
        best = max(best, 2 * size**3 * repeats / elapsed / 1e9)
    return best


def build(preset, image_size, fold_bn, bfloat16=False, **overrides):
    """The preset's model (BN folded, computing in bfloat16 if asked) and
    its MACs."""
    kwargs = {"image_size": image_size, **overrides}
    model = build_model(preset, **kwargs)
    macs = count_macs(model)
    if fold_bn:
        model, _ = folded_copy(model)

    def rebuild():
        fresh = build_model(preset, **kwargs)
        return fold_bn_graph(fresh) if fold_bn else fresh

    if bfloat16:
        model = precision.bfloat16_copy(model, rebuild)
    return model, macs


def entry(label, model, macs, size, mode, settings, **meta):
    """A timed callable: the compiled forward pass.

    TensorFlow: `tf.function`, XLA when the mode says so. JAX: `jax.jit` of
    the model's stateless call on its current variables. The images are in
    the model's compute dtype, except in the bf16 modes: float32, as served.
    """
    rng = np.random.default_rng(0)
    images = rng.uniform(-120, 130, (settings["batch_size"], size, size, 3))
    dtype = "float32" if "bf16" in mode else model.compute_dtype
    images = keras.ops.cast(images.astype(np.float32), dtype)
    if backend() == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        frozen = [v.value for v in model.non_trainable_variables]
        forward = jax.jit(
            lambda t, f, x: model.stateless_call(t, f, x, training=False)[0]
        )

        def fn(x):
            return forward(trainable, frozen, x)

    else:
        import tensorflow as tf

        # A partial, not a lambda: TensorFlow counts traces per code object,
        # and one lambda per model warned "5 out of the last 5 calls ...
        # triggered tf.function retracing" at the fifth model.
        fn = tf.function(
            functools.partial(_inference, model),
            jit_compile="xla" in mode,
            autograph=False,
        )
    return dict(label=label, fn=fn, images=images, macs=macs, mode=mode, **meta)


def _inference(model, images):
    return model(images, training=False)


def paired_ratio(row, base):
    """`row`'s images/s over `base`'s: the median of the per-run ratios
    where both hold `images_per_sec_per_run` (run r of each was timed
    within one round of the machine, `time_interleaved_runs`), else the
    ratio of their medians. Before: always the ratio of the medians, which
    pairs runs of different moments (3-4 % off the paired figure in a
    smoke run), unlike `tools.benchmark_training` and
    `tools.benchmark_input`."""
    ours = row.get("images_per_sec_per_run")
    theirs = base.get("images_per_sec_per_run")
    if ours and theirs and len(ours) == len(theirs):
        return statistics.median(paired_ratios(ours, theirs))
    return row["images_per_sec"] / base["images_per_sec"]


def paired_ratios(ours, theirs):
    """Run r's images/s of one model over another's, per run (both timed
    within one round of the machine: `time_interleaved_runs`)."""
    return [a / b for a, b in zip(ours, theirs, strict=True)]


def add_ratios(rows):
    """Adds ratios (`paired_ratio`) to our R50 (per mode, with the
    paper's beside), to Keras' ResNet50 (plain) and, for a bf16 mode, to
    the same preset's float32 mode (`bf16` to `plain`, `fold_bn_bf16` to
    `fold_bn`) where those rows are present."""
    by_mode = {(r["preset"], r["mode"]): r for r in rows}
    float32_mode = {"bf16": "plain", "fold_bn_bf16": "fold_bn"}
    for r in rows:
        same = by_mode.get((r["preset"], float32_mode.get(r["mode"])))
        if same:
            r["ratio_vs_float32"] = paired_ratio(r, same)
    bases = {
        r["mode"]: r for r in rows if r["preset"] in ("table7_e0", "resnet50")
    }
    # The reference at each row's own size.
    keras_rows = {
        r.get("image_size"): r
        for r in rows
        if r["preset"] == "keras_resnet50" and r["mode"] == "plain"
    }
    for r in rows:
        base = bases.get(r["mode"])
        if base and r["preset"] != "keras_resnet50":
            r["ratio_vs_r50"] = paired_ratio(r, base)
            if r.get("paper_images_per_sec"):
                r["paper_ratio_vs_r50"] = (
                    r["paper_images_per_sec"] / PAPER_R50_IMAGES_PER_SEC
                )
        keras_row = keras_rows.get(r.get("image_size"))
        if keras_row:
            r["ratio_vs_keras_resnet50"] = paired_ratio(r, keras_row)
    return rows


OUTPUT_FILES = ("benchmark.jsonl", "benchmark.md", "benchmark.png")


def write_outputs(rows, out_dir):
    """`OUTPUT_FILES` in `out_dir`: the rows, their table and plot."""
    os.makedirs(out_dir, exist_ok=True)
    jsonl, md, png = (os.path.join(out_dir, n) for n in OUTPUT_FILES)
    with open(jsonl, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    with open(md, "w") as f:
        f.write(markdown_table(rows))
    _plot(rows, png)


MARKDOWN_COLUMNS = (
    "model",
    "dtype",
    "image_size",
    "images_per_sec",
    "ratio_vs_r50",
    "paper_ratio_vs_r50",
    "ratio_vs_keras_resnet50",
    "gflops",
    "peak_fraction",
)


def _settings_line(rows):
    """What every row shares: device, backend and batch (a table pasted
    elsewhere still says where it was measured)."""
    first = rows[0]
    return (
        f"Inference throughput on {first['device']} "
        f"({first['backend']} backend), batch {first['batch_size']}."
    )


def markdown_table(rows):
    """The rows as a Markdown table, under a line naming the device,
    backend and batch size; a row's dtype in its own column (a bf16 mode
    computes in bfloat16 whatever `--dtype` says)."""
    cols = list(MARKDOWN_COLUMNS)
    if any("ratio_vs_float32" in r for r in rows):
        cols.insert(cols.index("gflops"), "ratio_vs_float32")
    lines = [_settings_line(rows), ""]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [_cell(r.get(c)) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return logger.table_number(value)
    return str(value)


def _plot(rows, path):
    """Images/s per model (`figure`), written to `path`."""
    import matplotlib.pyplot as plt

    fig = figure(rows)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure(rows):
    """The matplotlib figure of `rows`: images/s per model; with the
    paper's ratios at hand, a second panel sets ours beside them. Tick
    labels stand upright and the panels widen with the bars (before,
    slanted: "assemble_resnet50 (fold_bn_bf16)" ran over its neighbours'
    names)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paired = [r for r in rows if r.get("paper_ratio_vs_r50") is not None]
    paired = [r for r in paired if r.get("ratio_vs_r50") is not None]
    width = max(6.0, 0.5 * len(rows))
    fig, axes = plt.subplots(
        1,
        2 if paired else 1,
        figsize=(width + (max(5.0, 0.5 * len(paired)) if paired else 0), 6),
        squeeze=False,
    )
    ax = axes[0, 0]
    ax.bar(
        [r["model"] for r in rows],
        [r["images_per_sec"] for r in rows],
        color="tab:blue",
    )
    ax.set_ylabel("images / s")
    dtypes = "/".join(dict.fromkeys(r["dtype"] for r in rows))
    ax.set_title(
        f"Inference throughput ({rows[0]['device']}, "
        f"{dtypes}, batch {rows[0]['batch_size']})"
    )
    ax.tick_params(axis="x", rotation=90)
    if paired:
        _plot_paper_ratios(axes[0, 1], paired)
    fig.tight_layout()
    return fig


def paired_bars(ax, names, first, second, labels, **tick_kwargs):
    """Two bars per name on `ax` (a matplotlib axis): `first` blue,
    `second` grey, labelled `labels`; `tick_kwargs` go to the x ticks."""
    x = np.arange(len(names))
    for offset, values, label, color in (
        (-0.2, first, labels[0], "tab:blue"),
        (0.2, second, labels[1], "tab:gray"),
    ):
        ax.bar(x + offset, values, 0.4, label=label, color=color)
    ax.set_xticks(x, names, **tick_kwargs)


def _plot_paper_ratios(ax, paired):
    paired_bars(
        ax,
        [r["model"] for r in paired],
        [r["ratio_vs_r50"] for r in paired],
        [r["paper_ratio_vs_r50"] for r in paired],
        ("measured", "paper (P40)"),
        rotation=90,
    )
    ax.set_ylabel("throughput / R50's")
    ax.set_title("Relative to R50, measured and in the paper")
    ax.legend()
