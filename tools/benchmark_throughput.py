"""Inference throughput of presets, as ratios measured in one run.

    python -m tools.benchmark_throughput --preset=assemble_resnet50 \
        --compare=keras_resnet50 --output_dir=bench_out
    python -m tools.benchmark_throughput --paper_table --output_dir=bench_out

Lee et al. 2020 (https://arxiv.org/abs/2001.06268) report images/s on one
Tesla P40, FP32, batch 64. Absolute numbers depend on the machine, so this
tool prints ratios against references timed in the same process: Keras'
`ResNet50(weights=None)` (`--compare=keras_resnet50`) and our R50
(`--paper_table`, beside the paper's ratio, e.g. Assemble-R50 312/536 =
0.58). Each figure is the median of `--runs` timed runs of `--steps` batches
after `--warmup` batches, inside `tf.function` (optionally XLA, BN folded).
Also reports achieved GFLOP/s against a float32 matmul peak measured in the
same run. Writes JSON lines, a markdown table and a bar chart.

Under `KERAS_BACKEND=jax` (a machine with JAX but no TensorFlow, such as a
GPU box) the same models run through `jax.jit` of Keras' stateless call:
always XLA-compiled, so only the `plain` and `fold_bn` modes exist there.
"""

import json
import os
import statistics
import sys
import time

import numpy as np
from absl import flags

from official.utils.flags import core as flags_core

flags.DEFINE_list("preset", ["resnet50"], "Presets to time.")
flags.DEFINE_integer("batch_size", 64, "Images per batch.", lower_bound=1)
flags.DEFINE_integer("image_size", None, "Default: each preset's eval size.")
flags.DEFINE_enum(
    "dtype", "float32", ["float32", "float16", "bfloat16"], "Compute dtype."
)
flags.DEFINE_integer("warmup", 2, "Untimed batches.", lower_bound=0)
flags.DEFINE_integer(
    "runs", 5, "Timed runs (the median is kept).", lower_bound=1
)
flags.DEFINE_integer("steps", 3, "Batches per timed run.", lower_bound=1)
flags.DEFINE_bool("jit_compile", False, "XLA-compile the forward pass.")
flags.DEFINE_bool("fold_bn", False, "Fold BatchNorm into the convolutions.")
flags.DEFINE_list(
    "modes",
    [],
    "Serving paths to time side by side, any of plain, xla, fold_bn, "
    "fold_bn_xla (overrides --fold_bn / --jit_compile).",
)
flags.DEFINE_enum("compare", None, ["keras_resnet50"], "Reference model.")
flags.DEFINE_bool(
    "paper_table", False, "Time the paper's Table 7 architectures vs R50."
)
flags.DEFINE_bool("smoke", False, "Tiny sizes and 2 iterations (tests, CI).")
flags.DEFINE_string("output_dir", None, "Where JSON, markdown, PNG go.")
FLAGS = flags.FLAGS

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


def backend():
    import keras

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


def time_interleaved(entries, warmup, runs, steps, batch_size):
    """Median images/s of each entry's `fn(images)`, runs interleaved.

    Run r of every entry is timed before run r + 1 of any, so slow drifts of
    a shared machine (other jobs, frequency scaling) hit all entries alike
    and the ratios stay meaningful.
    """
    for e in entries:
        for _ in range(warmup):
            wait(e["fn"](e["images"]))
    rates = {id(e): [] for e in entries}
    for _ in range(runs):
        for e in entries:
            start = time.perf_counter()
            for _ in range(steps):
                out = e["fn"](e["images"])
            wait(out)
            rates[id(e)].append(
                steps * batch_size / (time.perf_counter() - start)
            )
    return [statistics.median(rates[id(e)]) for e in entries]


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


def build(preset, image_size, fold_bn):
    from assemble_tf.export.optimize import fold_batch_norm
    from assemble_tf.models import build_model, count_macs

    kwargs = {"image_size": image_size}
    if FLAGS.smoke:
        kwargs.update(base_width=8, block_sizes=(2, 2, 2, 1))
    model = build_model(preset, **kwargs)
    macs = count_macs(model)
    if fold_bn:
        folded = build_model(preset, fold_bn=True, **kwargs)
        fold_batch_norm(model, folded)
        model = folded
    return model, macs


def entry(label, model, macs, size, mode, settings, **meta):
    """A timed callable: the compiled forward pass.

    TensorFlow: `tf.function`, XLA when the mode says so. JAX: `jax.jit` of
    the model's stateless call on its current variables.
    """
    import keras

    rng = np.random.default_rng(0)
    images = rng.uniform(-120, 130, (settings["batch_size"], size, size, 3))
    images = keras.ops.cast(images.astype(np.float32), model.compute_dtype)
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

        fn = tf.function(
            lambda x: model(x, training=False), jit_compile="xla" in mode
        )
    return dict(label=label, fn=fn, images=images, macs=macs, mode=mode, **meta)


def selected_modes():
    if FLAGS.modes:
        return FLAGS.modes
    mode = "fold_bn" if FLAGS.fold_bn else "plain"
    if FLAGS.jit_compile:
        mode = "xla" if mode == "plain" else "fold_bn_xla"
    return [mode]


def main(argv):
    del argv
    import keras

    from assemble_tf import presets

    keras.config.set_dtype_policy(
        "float32" if FLAGS.dtype == "float32" else f"mixed_{FLAGS.dtype}"
    )
    settings = {
        "batch_size": FLAGS.batch_size,
        "warmup": FLAGS.warmup,
        "runs": FLAGS.runs,
        "steps": FLAGS.steps,
    }
    if FLAGS.smoke:
        settings = {"batch_size": 2, "warmup": 1, "runs": 2, "steps": 1}
    names = PAPER_ROWS if FLAGS.paper_table else FLAGS.preset
    for name in names:
        presets.get(name)  # fail before timing anything
    bad = set(FLAGS.modes) - {"plain", "xla", "fold_bn", "fold_bn_xla"}
    if bad:
        raise ValueError(
            f"--modes={','.join(FLAGS.modes)}: unknown {sorted(bad)}; use "
            "plain, xla, fold_bn or fold_bn_xla."
        )
    modes = selected_modes()
    if backend() == "jax" and any("xla" in m for m in modes):
        raise ValueError(
            f"--modes={','.join(modes)} (or --jit_compile): under "
            "KERAS_BACKEND=jax every mode is XLA-compiled already; use "
            "plain or fold_bn."
        )
    from assemble_tf.models import count_macs

    device = device_name()
    # A 2048^2 product keeps a CPU busy; a GPU needs 8192^2 to fill up.
    on_cpu = device.startswith("CPU")
    peak = matmul_peak_gflops(
        FLAGS.dtype,
        size=2048 if on_cpu else 8192,
        repeats=3 if on_cpu else 10,
    )
    entries = []
    for name in names:
        preset = presets.get(name)
        size = (
            64 if FLAGS.smoke else (FLAGS.image_size or preset.eval_image_size)
        )
        paper = preset.paper
        for mode in modes:
            model, macs = build(name, size, "fold_bn" in mode)
            entries.append(
                entry(
                    name if len(modes) == 1 else f"{name} ({mode})",
                    model,
                    macs,
                    size,
                    mode,
                    settings,
                    model_name=name,
                    paper=paper.throughput if paper else None,
                )
            )
    if FLAGS.compare == "keras_resnet50":
        size = 64 if FLAGS.smoke else 224
        ref = keras.applications.ResNet50(
            weights=None, input_shape=(size, size, 3)
        )
        # Keras' ResNet50 is v1 (stride on the 1x1): 3.86 GMACs at 224.
        macs = count_macs(ref)
        ref_modes = ["plain"] + (
            ["xla"] if any("xla" in m for m in modes) else []
        )
        for mode in ref_modes:
            entries.append(
                entry(
                    "keras_resnet50" + ("" if mode == "plain" else " (xla)"),
                    ref,
                    macs,
                    size,
                    mode,
                    settings,
                    model_name="keras_resnet50",
                    paper=None,
                )
            )
    print(
        f"Timing {len(entries)} models on {device}, batch "
        f"{settings['batch_size']}, {FLAGS.dtype}: {settings['warmup']} "
        f"warm-up, {settings['runs']} interleaved runs of "
        f"{settings['steps']} batches.",
        file=sys.stderr,
    )
    rates = time_interleaved(
        entries,
        settings["warmup"],
        settings["runs"],
        settings["steps"],
        settings["batch_size"],
    )
    rows = []
    for e, rate in zip(entries, rates, strict=True):
        gflops = 2 * e["macs"] * rate / 1e9
        rows.append(
            {
                "model": e["label"],
                "preset": e["model_name"],
                "mode": e["mode"],
                "image_size": int(e["images"].shape[1]),
                "images_per_sec": rate,
                "gflops": gflops,
                "peak_fraction": gflops / peak,
                "paper_images_per_sec": e["paper"],
            }
        )
        print(f"{e['label']}: {rate:.2f} img/s", file=sys.stderr)
    bases = {
        r["mode"]: r for r in rows if r["preset"] in ("table7_e0", "resnet50")
    }
    keras_row = next(
        (
            r
            for r in rows
            if r["preset"] == "keras_resnet50" and r["mode"] == "plain"
        ),
        None,
    )
    for r in rows:
        base = bases.get(r["mode"])
        if base and r["preset"] != "keras_resnet50":
            r["ratio_vs_r50"] = r["images_per_sec"] / base["images_per_sec"]
            if r.get("paper_images_per_sec"):
                r["paper_ratio_vs_r50"] = r["paper_images_per_sec"] / 536
        if keras_row:
            r["ratio_vs_keras_resnet50"] = (
                r["images_per_sec"] / keras_row["images_per_sec"]
            )
        r.update(
            device=device,
            dtype=FLAGS.dtype,
            batch_size=settings["batch_size"],
            matmul_peak_gflops=peak,
            backend=backend(),
        )
        print(json.dumps(r))
    if FLAGS.output_dir:
        write_outputs(rows, FLAGS.output_dir)


def write_outputs(rows, out_dir):
    """benchmark.jsonl, benchmark.md and benchmark.png in `out_dir`."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "benchmark.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    cols = [
        "model",
        "image_size",
        "images_per_sec",
        "ratio_vs_r50",
        "paper_ratio_vs_r50",
        "ratio_vs_keras_resnet50",
        "gflops",
        "peak_fraction",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            cells.append(
                "-"
                if v is None
                else f"{v:.3g}"
                if isinstance(v, float)
                else str(v)
            )
        lines.append("| " + " | ".join(cells) + " |")
    with open(os.path.join(out_dir, "benchmark.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # With the paper's ratios at hand, a second panel sets ours beside them.
    paired = [r for r in rows if r.get("paper_ratio_vs_r50") is not None]
    paired = [r for r in paired if r.get("ratio_vs_r50") is not None]
    fig, axes = plt.subplots(
        1, 2 if paired else 1, figsize=(13 if paired else 8, 4), squeeze=False
    )
    ax = axes[0, 0]
    ax.bar(
        [r["model"] for r in rows],
        [r["images_per_sec"] for r in rows],
        color="tab:blue",
    )
    ax.set_ylabel("images / s")
    ax.set_title(
        f"Inference throughput ({rows[0]['device']}, "
        f"{rows[0]['dtype']}, batch {rows[0]['batch_size']})"
    )
    ax.tick_params(axis="x", rotation=30)
    if paired:
        ax = axes[0, 1]
        x = np.arange(len(paired))
        ax.bar(
            x - 0.2,
            [r["ratio_vs_r50"] for r in paired],
            0.4,
            label="measured",
            color="tab:blue",
        )
        ax.bar(
            x + 0.2,
            [r["paper_ratio_vs_r50"] for r in paired],
            0.4,
            label="paper (P40)",
            color="tab:gray",
        )
        ax.set_xticks(x, [r["model"] for r in paired], rotation=30)
        ax.set_ylabel("throughput / R50's")
        ax.set_title("Relative to R50, measured and in the paper")
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "benchmark.png"), dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    flags_core.run(main)
