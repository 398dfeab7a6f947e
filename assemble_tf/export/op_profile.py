"""Where inference time goes: a per-operator profile of a serving path.

Runs a preset's forward pass in one of `throughput.MODES` (e.g.
`fold_bn_bf16`: BN folded, computing in bfloat16, as `tools.
export_saved_model --precision=bfloat16 --fold_bn` serves it) under
TensorFlow's profiler (`tf.profiler.experimental`), reads the executed ops
back from the trace (the XSpace protobuf; the kernels of oneDNN CPUs appear
as `_MklNative...`) and attributes each op's time to its op type and to the
family of the layer that created it: dense convolutions, the Selective
Kernel units, BlurPool, the BigLittle merge, the shortcut pools, the head.
The time is the sum of op durations over the executor's threads, so it can
exceed the wall time (two inter-op threads on a 2-core CPU).

    report = op_profile.run_profile(op_profile.ProfileOptions(
        preset="assemble_resnet50", mode="fold_bn_bf16"))

`tools.profile_inference` is the command line; docs/benchmarks.md
"Assemble-R50 in bfloat16" holds the profiles that guided the rewrites of
SK, BlurPool and the BigLittle merge.
"""

import collections
import dataclasses
import glob
import json
import os
import re
import tempfile
import time

from assemble_tf.export import throughput
from official.utils.misc.validation import (
    OptionError,
    check_at_least,
    check_choices,
    check_creatable,
    check_replaceable,
)

# Layer class name -> family (first match wins; other layers: "other").
FAMILIES = (
    ("SelectiveKernel", "SK unit"),
    ("BlurPool2D", "BlurPool"),
    ("BigLittleMerge", "BigLittle merge"),
    ("PaddedAveragePool2D", "shortcut pool"),
    ("AveragePooling2D", "shortcut pool"),
    ("ZeroPadding2D", "padding"),
    ("Conv2D", "convolution"),
    ("BatchNorm", "BatchNorm"),
    ("SqueezeExcite", "SE unit"),
    ("ReLU", "ReLU / add"),
    ("Add", "ReLU / add"),
    ("Dense", "head"),
    ("GlobalAveragePooling2D", "head"),
    ("MaxPooling2D", "stem pool"),
)
PROFILE_JSON, PROFILE_MD, PROFILE_PNG = (
    "profile.json",
    "profile.md",
    "profile.png",
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProfileOptions:
    """What to profile; field names are `tools.profile_inference`'s flags.

    Attributes:
        preset: the preset to profile.
        mode: the serving path, one of `throughput.MODES`.
        image_size: input side (None: the preset's eval size).
        batch_size: images per batch.
        warmup: untimed batches before the traced ones.
        steps: traced batches (the report is per batch).
        model_overrides: `build_model` overrides (tiny models in tests).
        output_dir: where profile.json, .md and .png go (None: none).
        overwrite: replace an earlier profile in `output_dir`.
    """

    preset: str = "assemble_resnet50"
    mode: str = "fold_bn_bf16"
    image_size: int | None = None
    batch_size: int = 32
    warmup: int = 2
    steps: int = 3
    model_overrides: dict | None = None
    output_dir: str | None = None
    overwrite: bool = False

    def validate(self):
        """Raises `OptionError` naming a bad field."""
        from assemble_tf import presets

        check_choices(self, {"mode": throughput.MODES})
        if "xla" in self.mode:
            # XLA's cluster runs as one op: nothing to attribute (the
            # profile came out empty).
            raise OptionError(
                "mode",
                "{field}={value}: an XLA-compiled model runs as one fused "
                "cluster, which the profile cannot split into layers; "
                "profile the same model without XLA (plain, fold_bn, bf16 "
                "or fold_bn_bf16).",
                value=self.mode,
            )
        check_creatable(self, folders=["output_dir"])
        check_replaceable(self, (PROFILE_JSON, PROFILE_MD, PROFILE_PNG))
        check_at_least(
            self, {"batch_size": 1, "warmup": 1, "steps": 1, "image_size": 32}
        )
        presets.get(self.preset)
        if throughput.backend() != "tensorflow":
            raise OptionError(
                "mode",
                "the operator profile reads TensorFlow's profiler; under "
                "KERAS_BACKEND={backend} time the families with "
                "tools.benchmark_throughput over the table6_m0..m4 presets "
                "(docs/benchmarks.md).",
                backend=throughput.backend(),
            )


def layer_families(model):
    """`{layer name: family}` of the model's layers (`FAMILIES`)."""
    families = {}
    for layer in model.layers:
        names = [cls.__name__ for cls in type(layer).__mro__]
        families[layer.name] = next(
            (family for cls, family in FAMILIES if cls in names), "other"
        )
    return families


def _layer_of(op_name, families):
    """The model layer an op name ("model_1/layer_1/conv/Conv2D") belongs
    to, or None. Keras' TF name scopes may append `_<n>` to both names."""
    parts = op_name.split("/")
    if len(parts) < 3:
        return None
    for candidate in (parts[1], re.sub(r"_\d+$", "", parts[1])):
        if candidate in families:
            return candidate
    return None


def read_trace(logdir):
    """`[(op name, op type, milliseconds)]` of every executed TF op in the
    profile under `logdir` (its host plane's executor threads)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    if not paths:
        raise FileNotFoundError(f"No *.xplane.pb under {logdir}.")
    space = xplane_pb2.XSpace()
    with open(max(paths, key=os.path.getmtime), "rb") as f:
        space.ParseFromString(f.read())
    ops = []
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU") and "GPU" not in plane.name:
            continue
        metadata = plane.event_metadata
        for line in plane.lines:
            for event in line.events:
                name = metadata[event.metadata_id].name
                # TF ops are "scope/op:OpType"; executor bookkeeping is not.
                op, sep, op_type = name.rpartition(":")
                if not sep or "/" not in op or " " in op_type:
                    continue
                ops.append((op, op_type, event.duration_ps / 1e9))
    return ops


def _family(layer_family, op_type, op):
    """The family an op's time counts to. Grappler fuses conv + BN + ReLU
    (+ the residual add, + the BigLittle merge's add) into one conv op
    named after the last node it fused: that is convolution time. An SK
    unit splits into its path convolutions and the rest (attention, GAP,
    weighted sum)."""
    fused_into = ("ReLU / add", "BigLittle merge", "BatchNorm", "other")
    conv = re.search(r"(?<!Depthwise)Conv2D", op_type)
    if layer_family in fused_into and conv:
        return "convolution"
    if layer_family == "SK unit":
        sub = re.sub(r"_\d+$", "", op.split("/")[2])
        # A path conv fused with its ReLU is named after the ReLU.
        paths = re.fullmatch(r"(conv|bn|pad)(_[ab])?", sub) or (
            conv and not sub.startswith("fc")
        )
        return "SK " + ("path convolutions" if paths else "attention and sum")
    return layer_family


def summarize(ops, families, steps):
    """Per-batch milliseconds and shares by op type, by family and by
    (family, op type) of the traced `ops` (`read_trace`)."""
    by_type, by_family, by_pair = (collections.Counter() for _ in range(3))
    for op, op_type, ms in ops:
        layer = _layer_of(op, families)
        family = _family(families[layer] if layer else "other", op_type, op)
        by_type[op_type] += ms / steps
        by_family[family] += ms / steps
        by_pair[f"{family} / {op_type}"] += ms / steps
    total = sum(by_type.values())

    def rows(counter):
        return [
            {"name": k, "ms": round(v, 3), "share": v / total if total else 0}
            for k, v in counter.most_common()
        ]

    return {
        "op_ms_per_batch": total,
        "by_op_type": rows(by_type),
        "by_family": rows(by_family),
        "by_family_and_op_type": rows(by_pair),
    }


def profile_entry(entry, warmup, steps, logdir):
    """Runs `entry["fn"]` (`throughput.entry`) `warmup` times, then `steps`
    times timed and `steps` times traced into `logdir`; returns (wall
    milliseconds per batch, traced ops)."""
    import tensorflow as tf

    fn, images = entry["fn"], entry["images"]
    for _ in range(warmup):
        throughput.wait(fn(images))
    start = time.perf_counter()
    for _ in range(steps):
        throughput.wait(fn(images))
    wall_ms = (time.perf_counter() - start) / steps * 1e3
    tf.profiler.experimental.start(logdir)
    try:
        for _ in range(steps):
            throughput.wait(fn(images))
    finally:
        tf.profiler.experimental.stop()
    return wall_ms, read_trace(logdir)


def run_profile(options, log=print):
    """Profiles `options.preset` in `options.mode`; writes the outputs.

    Returns:
        The report: the settings, images/s and wall ms per batch (untraced
        runs), op ms per batch, and the `summarize` tables.
    """
    from assemble_tf import presets

    options.validate()
    size = options.image_size or presets.get(options.preset).eval_image_size
    mode = options.mode
    model, macs = throughput.build(
        options.preset,
        size,
        "fold_bn" in mode,
        "bf16" in mode,
        **(options.model_overrides or {}),
    )
    settings = {"batch_size": options.batch_size}
    entry = throughput.entry(options.preset, model, macs, size, mode, settings)
    log(
        f"Profiling {options.preset} ({mode}) at {size} px, batch "
        f"{options.batch_size}: {options.warmup} warm-up, {options.steps} "
        "timed and traced batches."
    )
    with tempfile.TemporaryDirectory() as logdir:
        wall_ms, ops = profile_entry(
            entry, options.warmup, options.steps, logdir
        )
    report = {
        "preset": options.preset,
        "mode": mode,
        "image_size": size,
        "batch_size": options.batch_size,
        "device": throughput.device_name(),
        "wall_ms_per_batch": wall_ms,
        "images_per_sec": options.batch_size / wall_ms * 1e3,
        "gflops": 2 * macs * options.batch_size / wall_ms / 1e6,
        **summarize(ops, layer_families(model), options.steps),
    }
    if options.output_dir:
        write_outputs(report, options.output_dir)
    return report


def markdown(report, top=12):
    """The report as markdown: a header line and three tables (the `top`
    rows of the op-type and family x op-type tables)."""
    lines = [
        f"`{report['preset']}` ({report['mode']}), {report['image_size']} "
        f"px, batch {report['batch_size']}, {report['device']}: "
        f"{report['images_per_sec']:.1f} img/s, "
        f"{report['wall_ms_per_batch']:.0f} ms per batch wall, "
        f"{report['op_ms_per_batch']:.0f} ms of ops.",
    ]
    for title, key, limit in (
        ("layer family", "by_family", None),
        ("op type", "by_op_type", top),
        ("family / op type", "by_family_and_op_type", top),
    ):
        lines += ["", f"| {title} | ms per batch | share |", "|---|---:|---:|"]
        for row in report[key][:limit]:
            lines.append(
                f"| {row['name']} | {row['ms']:.1f} | {row['share']:.1%} |"
            )
    return "\n".join(lines) + "\n"


def write_outputs(report, out_dir):
    """profile.json, profile.md and profile.png (time by family)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, PROFILE_JSON), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(out_dir, PROFILE_MD), "w") as f:
        f.write(markdown(report))
    rows = report["by_family"][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(rows) + 1.2))
    ax.barh([r["name"] for r in rows], [r["ms"] for r in rows])
    ax.set_xlabel("op milliseconds per batch")
    ax.set_title(
        f"{report['preset']} ({report['mode']}), batch "
        f"{report['batch_size']}: {report['images_per_sec']:.1f} img/s"
    )
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, PROFILE_PNG), dpi=100)
    plt.close(fig)
