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

`--modes=plain,bf16 --compare=keras_resnet50` times our model computing in
bfloat16 (float32 in and out, as `tools.export_saved_model
--precision=bfloat16` serves it) beside float32, against Keras' float32
ResNet50; bf16 rows report their GFLOP/s against a bfloat16 matmul peak.

Under `KERAS_BACKEND=jax` (a machine with JAX but no TensorFlow, such as a
GPU box) the same models run through `jax.jit` of Keras' stateless call:
always XLA-compiled, so only the modes without `xla` exist there (`bf16`
and `fold_bn_bf16` are untested there).
"""

import json
import sys

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
    "fold_bn_xla, bf16, fold_bn_bf16 (bf16: computing in bfloat16, float32 "
    "in and out; overrides --fold_bn / --jit_compile).",
)
flags.DEFINE_enum("compare", None, ["keras_resnet50"], "Reference model.")
flags.DEFINE_bool(
    "paper_table", False, "Time the paper's Table 7 architectures vs R50."
)
flags.DEFINE_bool("smoke", False, "Tiny sizes and 2 iterations (tests, CI).")
flags.DEFINE_string("output_dir", None, "Where JSON, markdown, PNG go.")
FLAGS = flags.FLAGS


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
    from assemble_tf.export import throughput

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
    names = throughput.PAPER_ROWS if FLAGS.paper_table else FLAGS.preset
    for name in names:
        presets.get(name)  # fail before timing anything
    bad = set(FLAGS.modes) - set(throughput.MODES)
    if bad:
        raise ValueError(
            f"--modes={','.join(FLAGS.modes)}: unknown {sorted(bad)}; use "
            f"any of {', '.join(throughput.MODES)}."
        )
    modes = selected_modes()
    if FLAGS.dtype != "float32" and any("bf16" in m for m in modes):
        raise ValueError(
            f"--modes={','.join(modes)} with --dtype={FLAGS.dtype}: the bf16 "
            "modes time bfloat16 beside float32; drop --dtype (or the bf16 "
            "modes)."
        )
    if throughput.backend() == "jax" and any("xla" in m for m in modes):
        raise ValueError(
            f"--modes={','.join(modes)} (or --jit_compile): under "
            "KERAS_BACKEND=jax every mode is XLA-compiled already; use "
            "plain or fold_bn."
        )
    device = throughput.device_name()
    # A 2048^2 product keeps a CPU busy; a GPU needs 8192^2 to fill up.
    on_cpu = device.startswith("CPU")
    peaks = {
        dtype: throughput.matmul_peak_gflops(
            dtype,
            size=2048 if on_cpu else 8192,
            repeats=3 if on_cpu else 10,
        )
        for dtype in [FLAGS.dtype]
        + (["bfloat16"] if any("bf16" in m for m in modes) else [])
    }
    tiny = {"base_width": 8, "block_sizes": (2, 2, 2, 1)} if FLAGS.smoke else {}
    entries = []
    for name in names:
        preset = presets.get(name)
        size = (
            64 if FLAGS.smoke else (FLAGS.image_size or preset.eval_image_size)
        )
        paper = preset.paper
        for mode in modes:
            model, macs = throughput.build(
                name, size, "fold_bn" in mode, "bf16" in mode, **tiny
            )
            entries.append(
                throughput.entry(
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
        macs = throughput.count_macs(ref)
        ref_modes = ["plain"] + (
            ["xla"] if any("xla" in m for m in modes) else []
        )
        for mode in ref_modes:
            entries.append(
                throughput.entry(
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
    rates = throughput.time_interleaved(
        entries,
        settings["warmup"],
        settings["runs"],
        settings["steps"],
        settings["batch_size"],
    )
    rows = []
    for e, rate in zip(entries, rates, strict=True):
        gflops = 2 * e["macs"] * rate / 1e9
        dtype = "bfloat16" if "bf16" in e["mode"] else FLAGS.dtype
        rows.append(
            {
                "model": e["label"],
                "preset": e["model_name"],
                "mode": e["mode"],
                "dtype": dtype,
                "image_size": int(e["images"].shape[1]),
                "images_per_sec": rate,
                "gflops": gflops,
                "peak_fraction": gflops / peaks[dtype],
                "matmul_peak_gflops": peaks[dtype],
                "paper_images_per_sec": e["paper"],
            }
        )
        print(f"{e['label']}: {rate:.2f} img/s", file=sys.stderr)
    for r in throughput.add_ratios(rows):
        r.update(
            device=device,
            batch_size=settings["batch_size"],
            backend=throughput.backend(),
        )
        print(json.dumps(r))
    if FLAGS.output_dir:
        throughput.write_outputs(rows, FLAGS.output_dir)


if __name__ == "__main__":
    flags_core.run(main)
