"""Inference throughput of presets, as ratios measured in one run.

Lee et al. 2020 (https://arxiv.org/abs/2001.06268) report images/s on one
Tesla P40, FP32, batch 64. Absolute numbers depend on the machine, so
`run_benchmark` reports ratios against references timed in the same
process: Keras' `ResNet50(weights=None)` (`compare="keras_resnet50"`) and
our R50 (`paper_table`, beside the paper's ratio, e.g. Assemble-R50
312/536 = 0.58). Each figure is the median of `runs` timed runs of `steps`
batches after `warmup` batches, inside `tf.function` (optionally XLA, BN
folded), or `jax.jit` under `KERAS_BACKEND=jax`. Also reports achieved
GFLOP/s against a float32 (bf16 modes: bfloat16) matmul peak measured in
the same run. The pieces (compiled forward passes, interleaved timing, the
peak, the outputs) are `assemble_tf.export.throughput`'s;
`tools.benchmark_throughput` is the command line.
"""

import dataclasses
import statistics
import sys

from assemble_tf.export import throughput
from assemble_tf.runs import runtime
from official.utils.misc import progress as progress_lib
from official.utils.misc.validation import (
    OptionError,
    check_at_least,
    check_choices,
    check_creatable,
    check_distinct,
    check_replaceable,
)

DTYPES = ("float32", "float16", "bfloat16")
REFERENCES = ("keras_resnet50",)
# `smoke`: tiny models, sizes and iterations (tests, CI). BigLittleNet
# stages need 2 blocks.
SMOKE_SETTINGS = {"batch_size": 2, "warmup": 1, "runs": 2, "steps": 1}
# Without `smoke`; a value given in the options wins over either.
DEFAULT_SETTINGS = {"batch_size": 64, "warmup": 2, "runs": 5, "steps": 3}
SMOKE_MODEL = {"base_width": 8, "block_sizes": (2, 2, 2, 1)}
SMOKE_IMAGE_SIZE = 64


@dataclasses.dataclass(frozen=True)
class ThroughputOptions:
    """What to time; field names are `tools.benchmark_throughput`'s flags.

    Attributes:
        preset: presets to time.
        batch_size: images per batch (None: 64, or `smoke`'s 2; so too
            `warmup`, `runs` and `steps`, see `DEFAULT_SETTINGS` and
            `SMOKE_SETTINGS`).
        image_size: input side of every model, the reference too (None:
            each preset's eval size, `SMOKE_IMAGE_SIZE` with `smoke`).
        dtype: compute dtype, one of `DTYPES` (a Keras dtype policy).
        warmup: untimed batches per model.
        runs: timed runs (the median is kept).
        steps: batches per timed run.
        jit_compile: XLA-compile the forward pass (without `modes`).
        fold_bn: fold BatchNorm into the convolutions (without `modes`).
        modes: serving paths timed side by side, any of
            `throughput.MODES`; they override `fold_bn` / `jit_compile`.
        compare: a reference model of `REFERENCES`, or None; timed at
            each size of the presets (`reference_sizes`).
        paper_table: time the paper's Table 7 architectures instead of
            `preset`.
        smoke: tiny models (ours, and Keras' ResNet50 with one block per
            stage), sizes and 2 iterations (tests, CI); timing settings
            given explicitly are kept.
        output_dir: where benchmark.jsonl, .md and .png go (None: none).
        overwrite: replace an earlier report in `output_dir`.
        progress: progress bars on stderr while the models are built and
            timed (a paper table takes minutes of each).
    """

    preset: tuple[str, ...] = ("resnet50",)
    batch_size: int | None = None
    image_size: int | None = None
    dtype: str = "float32"
    warmup: int | None = None
    runs: int | None = None
    steps: int | None = None
    jit_compile: bool = False
    fold_bn: bool = False
    modes: tuple[str, ...] = ()
    compare: str | None = None
    paper_table: bool = False
    smoke: bool = False
    output_dir: str | None = None
    overwrite: bool = False
    progress: bool = True


def selected_modes(options):
    """`options.modes`, else the one mode of `fold_bn` and `jit_compile`."""
    if options.modes:
        return list(options.modes)
    mode = "fold_bn" if options.fold_bn else "plain"
    if options.jit_compile:
        mode = "xla" if mode == "plain" else "fold_bn_xla"
    return [mode]


def preset_names(options):
    """The presets to time (checked: fail before timing anything)."""
    from assemble_tf import presets

    names = throughput.PAPER_ROWS if options.paper_table else options.preset
    if not names:  # timed nothing (or the reference alone)
        raise OptionError("preset", "{field} is empty: name a preset.")
    for name in names:
        presets.get(name)
    return list(names)


def _check_values(options):
    """Raises `OptionError` for a value out of its range or choices, or a
    list naming one entry twice (it was timed twice: a ratio of a model
    to itself)."""
    choices = {"dtype": DTYPES, "compare": REFERENCES}
    check_choices(options, choices)
    # One warm-up batch at least: the first call traces (and compiles),
    # and timed it gave a fifth of the rate and wrong ratios.
    lowest = {"batch_size": 1, "warmup": 1, "runs": 1, "steps": 1}
    lowest["image_size"] = 32  # (0 was each preset's size, silently)
    check_at_least(options, lowest)
    check_distinct(options, ("modes", "preset"))
    # Before the timing (it failed after it, on writing).
    check_creatable(options, folders=["output_dir"])
    check_replaceable(options, throughput.OUTPUT_FILES)


def validate(options):
    """The modes to time; raises `OptionError` naming bad options."""
    _check_values(options)
    bad = set(options.modes) - set(throughput.MODES)
    if bad:
        raise OptionError(
            "modes",
            "{field}={modes}: unknown {bad}; use any of {valid}.",
            modes=",".join(options.modes),
            bad=sorted(bad),
            valid=", ".join(throughput.MODES),
        )
    given = [n for n in ("fold_bn", "jit_compile") if getattr(options, n)]
    if options.modes and given:  # before: ignored beside the modes
        raise OptionError(
            given[0],
            "{field} with {modes}={selected}: the modes name each path "
            "(fold_bn, xla, fold_bn_xla, ...); leave {field} out.",
            ["modes"],
            selected=",".join(options.modes),
        )
    modes = selected_modes(options)
    if options.dtype != "float32" and any("bf16" in m for m in modes):
        raise OptionError(
            "dtype",
            "{modes}={selected} with {field}={dtype}: the bf16 modes time "
            "bfloat16 beside float32; drop {field} (or the bf16 modes).",
            ["modes"],
            selected=",".join(modes),
            dtype=options.dtype,
        )
    if throughput.backend() == "jax" and any("xla" in m for m in modes):
        if not options.modes:  # the mode came from jit_compile
            raise OptionError(
                "jit_compile",
                "{field}: under KERAS_BACKEND=jax every forward pass is "
                "XLA-compiled already; leave {field} out.",
            )
        raise OptionError(
            "modes",
            "{field}={selected}: under KERAS_BACKEND=jax every mode is "
            "XLA-compiled already; use plain or fold_bn.",
            selected=",".join(modes),
        )
    return modes


def timing_settings(options):
    """{batch_size, warmup, runs, steps}: those `options` give, the rest
    from `SMOKE_SETTINGS` with `smoke` (it silently replaced given ones),
    else from `DEFAULT_SETTINGS`."""
    settings = dict(SMOKE_SETTINGS if options.smoke else DEFAULT_SETTINGS)
    for name in settings:
        if getattr(options, name) is not None:
            settings[name] = getattr(options, name)
    return settings


def matmul_peaks(dtype, modes, device):
    """{dtype: matmul GFLOP/s} of `dtype`, and of bfloat16 for bf16 modes."""
    # A 2048^2 product keeps a CPU busy; a GPU needs 8192^2 to fill up.
    on_cpu = device.startswith("CPU")
    dtypes = [dtype] + (["bfloat16"] if any("bf16" in m for m in modes) else [])
    return {
        d: throughput.matmul_peak_gflops(
            d, size=2048 if on_cpu else 8192, repeats=3 if on_cpu else 10
        )
        for d in dtypes
    }


def preset_entries(options, names, modes, settings):
    """Timed entries of every preset in every mode (`throughput.entry`)."""
    from assemble_tf import presets

    tiny = SMOKE_MODEL if options.smoke else {}
    entries = []
    bar = progress_lib.bar(
        total=len(names) * len(modes),
        desc="building",
        progress=options.progress,
    )
    for name in names:
        preset = presets.get(name)
        default = SMOKE_IMAGE_SIZE if options.smoke else preset.eval_image_size
        size = options.image_size or default
        paper = preset.paper.throughput if preset.paper else None
        for mode in modes:
            model, macs = throughput.build(
                name, size, "fold_bn" in mode, "bf16" in mode, **tiny
            )
            bar.update()
            label = name if len(modes) == 1 else f"{name} ({mode})"
            entries.append(
                throughput.entry(
                    label,
                    model,
                    macs,
                    size,
                    mode,
                    settings,
                    model_name=name,
                    paper=paper,
                )
            )
    bar.close()
    return entries


def reference_sizes(options, names):
    """The input sides the reference model is timed at: those of the
    presets `names` timed beside it (`options.image_size`, or each eval
    size among them), so that every row compares with the reference at its
    own size (before: presets of several sizes were refused, and the
    documented R50 at 224 beside Assemble-R50 at 256 did not run)."""
    if options.image_size:
        return [options.image_size]
    from assemble_tf import presets

    if options.smoke:
        return [SMOKE_IMAGE_SIZE]
    return sorted({presets.get(n).eval_image_size for n in names})


def keras_entries(options, modes, settings, sizes):
    """Entries of Keras' ResNet50 (plain, and XLA when a mode is) at each
    of `sizes` pixels (`reference_sizes`; labelled with the size when
    there are several)."""

    blocks = throughput.SMOKE_KERAS_BLOCKS if options.smoke else None
    ref_modes = ["plain"] + (["xla"] if any("xla" in m for m in modes) else [])
    entries = []
    for size in sizes:
        ref = throughput.keras_resnet50((size, size, 3), blocks=blocks)
        # Keras' ResNet50 is v1 (stride on the 1x1): 3.86 GMACs at 224.
        macs = throughput.count_macs(ref)
        at = f" @{size}" if len(sizes) > 1 else ""
        entries += [
            throughput.entry(
                "keras_resnet50" + at + ("" if mode == "plain" else " (xla)"),
                ref,
                macs,
                size,
                mode,
                settings,
                model_name="keras_resnet50",
                paper=None,
            )
            for mode in ref_modes
        ]
    return entries


# Above the matmul peak measured in the run: a convolution algorithm that
# does fewer multiplications than the nominal MACs (Winograd) or a peak
# measured low on a busy machine (a rerun, 1.05x, lost 20 minutes of
# timing when every row above 1 was refused). Twice the peak is a wrong
# MAC count or timing.
PEAK_FRACTION_LIMIT = 2.0


def result_row(entry, rate, dtype, peaks, log=None):
    """The JSON row of one timed entry (before ratios). A row above the
    matmul peak of its dtype (up to `PEAK_FRACTION_LIMIT`) is kept with a
    `note` and a line to `log`.

    Raises:
        ValueError: the row's GFLOP/s exceed the peak `PEAK_FRACTION_LIMIT`
            times (a wrong MAC count or timing; naming the row).
    """
    gflops = 2 * entry["macs"] * rate / 1e9
    dtype = "bfloat16" if "bf16" in entry["mode"] else dtype
    fraction = gflops / peaks[dtype]
    beyond = (
        f"{entry['label']}: {gflops:.1f} GFLOP/s is {fraction:.2f}x the "
        f"{dtype} matmul peak measured in this run ({peaks[dtype]:.1f} "
        "GFLOP/s)"
    )
    if fraction > PEAK_FRACTION_LIMIT:
        raise ValueError(
            f"{beyond}; no model runs at {PEAK_FRACTION_LIMIT:g}x the peak, "
            "so its MAC count or its timing is wrong. Not reported."
        )
    note = None
    if fraction > 1:
        note = f"{beyond}: {throughput.ABOVE_PEAK}"
        if log is not None:
            log(f"WARNING: {note}")
    return {
        "model": entry["label"],
        "preset": entry["model_name"],
        "mode": entry["mode"],
        "dtype": dtype,
        "image_size": int(entry["images"].shape[1]),
        "images_per_sec": rate,
        "gflops": gflops,
        "peak_fraction": fraction,
        "matmul_peak_gflops": peaks[dtype],
        "paper_images_per_sec": entry["paper"],
        "note": note,
    }


def _stderr(line):
    print(line, file=sys.stderr)


def _time_rows(entries, settings, dtype, peaks, log, options):
    """Times `entries` interleaved; their rows, with ratios."""
    total = len(entries) * (settings["warmup"] + settings["runs"])
    with progress_lib.bar(
        total=total, desc="timing", unit="run", progress=options.progress
    ) as bar:
        per_run = throughput.time_interleaved_runs(
            entries,
            settings["warmup"],
            settings["runs"],
            settings["steps"],
            settings["batch_size"],
            tick=bar.update,
        )
    rows = []
    for entry, rates in zip(entries, per_run, strict=True):
        rate = statistics.median(rates)
        row = result_row(entry, rate, dtype, peaks, log)
        # Kept in the JSON: the paired ratios follow from them.
        row["images_per_sec_per_run"] = [round(r, 3) for r in rates]
        rows.append(row)
        log(f"{entry['label']}: {rate:.2f} img/s")
    return throughput.add_ratios(rows)


def _precisions(dtype, modes):
    """'float32', or with modes 'modes plain, bf16 (bf16 ones in
    bfloat16)'."""
    if not modes:
        return dtype
    return f"modes {', '.join(modes)}" + (
        " (bf16 ones in bfloat16)" if any("bf16" in m for m in modes) else ""
    )


def run_benchmark(options, log=_stderr):
    """Times the models of `options` side by side; writes the outputs.

    Args:
        options: a `ThroughputOptions`.
        log: called with each progress line (default: printed to stderr).

    Returns:
        {"device", "backend", "dtype", "settings", "rows"}: "rows" holds
        one dict per timed model (images/s, GFLOP/s, peak fraction, ratios
        to R50 / Keras' ResNet50 / float32, device, batch size, backend),
        as benchmark.jsonl has them.

    Raises:
        OptionError: a bad option (named); ValueError: an unknown preset,
            or a row at twice the matmul peak or more (named).
    """
    names = preset_names(options)
    modes = validate(options)
    settings = timing_settings(options)
    if options.compare:
        keras_sizes = reference_sizes(options, names)
    policy = (
        "float32" if options.dtype == "float32" else f"mixed_{options.dtype}"
    )
    with runtime.kept_dtype_policy(policy):
        device = throughput.device_name()
        peaks = matmul_peaks(options.dtype, modes, device)
        entries = preset_entries(options, names, modes, settings)
        if options.compare == "keras_resnet50":
            entries += keras_entries(options, modes, settings, keras_sizes)
        log(
            f"Timing {len(entries)} models on {device}, batch "
            f"{settings['batch_size']}, {_precisions(options.dtype, modes)}: "
            f"{settings['warmup']} warm-up, {settings['runs']} interleaved "
            f"runs of {settings['steps']} batches."
        )
        rows = _time_rows(entries, settings, options.dtype, peaks, log, options)
    backend = throughput.backend()
    for row in rows:
        row.update(
            device=device, batch_size=settings["batch_size"], backend=backend
        )
    if options.output_dir:
        throughput.write_outputs(rows, options.output_dir)
    return dict(
        device=device,
        backend=backend,
        dtype=options.dtype,
        settings=settings,
        rows=rows,
    )
