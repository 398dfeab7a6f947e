"""Training throughput as ratios measured in one run.

`tools.benchmark_training` times the real training step of presets (the
`Trainer`'s compiled step: uint8 batches normalized and mixed on the device
by `BatchPostprocess`, soft cross-entropy with the recipe's Mixup / label
smoothing, knowledge distillation against teacher probabilities, weight
decay, SGD with momentum, the DropBlock schedule, loss scaling under
mixed_float16) beside Keras' `ResNet50(weights=None)` trained by a plain
`GradientTape` step (softmax cross-entropy, SGD with momentum) in the same
process. Absolute images/s depend on the machine; the ratio ours / Keras
and the achieved GFLOP/s against a matmul peak measured in the same run do
not so much.

Both sides read in-memory batches (ours: one uint8 batch repeated through a
distributed `tf.data` iterator, as `Trainer.train` reads its data; Keras: a
float batch), so the host's input pipeline (JPEG decoding, crops,
AutoAugment) is not timed: `tools.benchmark_input` times that. Timing,
peak and device name come from `assemble_tf.export.throughput`: warm-up
steps first, then the entries run interleaved (repeat r of every entry
before repeat r + 1 of any, the order reversed every other repeat). Each
img/s is the median of the repeats; ours / Keras is the median of the
ratios within a repeat (with its quartiles), which a machine whose speed
drifts between repeats disturbs least.
"""

import dataclasses
import itertools
import json
import os
import tempfile

import keras
import numpy as np

from assemble_tf import config as config_lib
from assemble_tf import presets as presets_lib
from assemble_tf.export import throughput
from assemble_tf.models import count_macs
from assemble_tf.runs import models, runtime
from official.utils.logs import logger
from official.utils.misc.validation import (
    OptionError,
    check_at_least,
    check_distinct,
)

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
KERAS_LABEL = "keras_resnet50"
# Training FLOPs per image ~ 3 forward passes' worth (forward, gradients of
# the activations, gradients of the weights) x 2 FLOPs per MAC.
TRAIN_FLOPS_PER_MAC = 3 * 2


@dataclasses.dataclass(frozen=True)
class Options:
    """What to time (the flags of `tools.benchmark_training`).

    Attributes:
        presets: preset names (each trained with its own recipe).
        precisions: any of `PRECISIONS` (Keras dtype policies).
        batch_size: global batch (examples per step, after Mixup).
        image_size: train crop side (None: each preset's train size).
        repeats: timed repeats per entry (the median is kept).
        steps_per_repeat: steps per timed repeat.
        warmup_steps: untimed steps per entry first (tracing, compiling).
        jit_compile: XLA-compile both train steps.
        num_classes: classifier width of every model.
        model_overrides: `build_model` overrides of our models (tests).
        peak_matmul_size: side of the matmul that measures the peak.
        keras_blocks: blocks per stage of Keras' reference ResNet-50
            (None: its real 3, 4, 6, 3; smoke runs take
            `throughput.SMOKE_KERAS_BLOCKS`).
    """

    presets: tuple = ("resnet50", "assemble_resnet50")
    precisions: tuple = ("float32",)
    batch_size: int = 32
    image_size: int | None = 224
    repeats: int = 5
    steps_per_repeat: int = 2
    warmup_steps: int = 2
    jit_compile: bool = False
    num_classes: int = 1000
    model_overrides: dict = dataclasses.field(default_factory=dict)
    peak_matmul_size: int | None = None
    keras_blocks: tuple | None = None

    def validate(self):
        """Raises `OptionError` naming the option of a bad value."""
        _check_presets(self.presets)
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad or not self.precisions:
            raise OptionError(
                "precisions",
                "{field}={value}: use any of {allowed}.",
                value=",".join(self.precisions),
                allowed=", ".join(PRECISIONS),
            )
        lowest = {
            "batch_size": 1,
            "repeats": 1,
            "steps_per_repeat": 1,
            "warmup_steps": 1,  # the first step traces and compiles
            "image_size": 32,  # None (each preset's train size) passes
        }
        check_at_least(self, lowest)
        # A repeat was timed twice and paired with one Keras run.
        check_distinct(self, ("presets", "precisions"))
        from assemble_tf.runs import runtime

        runtime.refuse_jit_compile_under_jax(self.jit_compile)


def _check_presets(names):
    """Raises `OptionError` (field `presets`) unless `names` is a non-empty
    list of preset names; an unknown name gets its close matches."""
    if not names:
        raise OptionError(
            "presets", "{field} is empty; name at least one preset."
        )
    for name in names:
        try:
            presets_lib.get(name)
        except OptionError as e:  # names `preset`; the option is `presets`
            raise OptionError(
                "presets", e.template, e.others, **e.values
            ) from None


def smoke_options(**overrides):
    """Tiny models and sizes for tests: one repeat of one step."""
    values = dict(
        batch_size=2,
        image_size=32,
        repeats=1,
        steps_per_repeat=1,
        warmup_steps=1,
        num_classes=10,
        # BigLittleNet stages need 2 blocks (as tools.benchmark_throughput).
        model_overrides={"base_width": 8, "block_sizes": "2,2,2,1"},
        peak_matmul_size=256,
        keras_blocks=throughput.SMOKE_KERAS_BLOCKS,
    )
    values.update(overrides)
    return Options(**values)


def compute_dtype(precision):
    return keras.DTypePolicy(precision).compute_dtype


def _uint8_batch(num_images, size, num_classes, kd, seed=0):
    """One training batch as the uint8 pipeline delivers it."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, num_images).astype(np.int32)
    batch = {
        "labels": labels,
        "targets": np.eye(num_classes, dtype=np.float32)[labels],
    }
    if kd:
        logits = rng.normal(size=(num_images, num_classes))
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        batch["teacher_probs"] = (probs / probs.sum(-1, keepdims=True)).astype(
            np.float32
        )
    images = rng.integers(0, 256, (num_images, size, size, 3), np.uint8)
    return images, batch


def trainer_entry(preset, precision, options, model_dir):
    """Our `Trainer`'s compiled step on a repeated in-memory uint8 batch.

    Returns:
        A dict for `throughput.time_interleaved_runs` (`fn(images)` runs one
        step and returns its loss) with the model's MACs and metadata.
    """
    from assemble_tf.training.trainer import Trainer

    size = options.image_size or presets_lib.get(preset).train_image_size
    overrides = {
        "model": dict(options.model_overrides),
        "data": {
            "synthetic": True,
            "num_classes": options.num_classes,
            "image_size": size,
            # Enough examples that the schedules see a long run.
            "num_train_examples": 1000 * options.batch_size,
        },
        "train": {
            "batch_size": options.batch_size,
            "mixed_precision": precision,
            "jit_compile": options.jit_compile,
        },
    }
    config = config_lib.make_config(model_dir, preset, overrides)
    strategy = runtime.setup_runtime(config)  # sets the dtype policy
    trainer = Trainer(config, strategy, log=lambda s: None)
    kd = config.train.kd_temperature > 0
    images, batch = _uint8_batch(
        options.batch_size * trainer.post.batch_multiplier,
        size,
        options.num_classes,
        kd,
    )
    if keras.backend.backend() == "jax":
        import jax

        # One device batch, repeated: what `JaxStep.dataset` yields.
        placed = jax.device_put(
            (images, batch), trainer.backend.runtime.batch_sharding
        )
        iterator = itertools.repeat(placed)
        seed_base = config.train.seed
    else:
        import tensorflow as tf

        dataset = tf.data.Dataset.from_tensors((images, batch)).repeat()
        iterator = iter(strategy.experimental_distribute_dataset(dataset))
        seed_base = tf.constant(config.train.seed, tf.int64)
    train_fn = trainer.train_function()

    def fn(_):
        return train_fn(iterator, seed_base)[0]

    # The run's model has a dynamic input size; count on a static twin.
    macs = count_macs(models.build_run_model(config, image_size=size))
    return {
        "label": preset,
        "preset": preset,
        "precision": precision,
        "fn": fn,
        "images": None,
        "macs": macs,
        "image_size": size,
        "recipe": _recipe(config, trainer),
        "trainer": trainer,
    }


def _recipe(config, trainer):
    """What the timed step does beyond a plain step."""
    a, t = config.augment, config.train
    parts = []
    if a.mixup_type:
        parts.append(f"{a.mixup_mode} type {a.mixup_type}")
    if a.label_smoothing:
        parts.append(f"LS {a.label_smoothing:g}")
    if t.kd_temperature:
        parts.append(f"KD T={t.kd_temperature:g}")
    if t.dropblock_keep_prob and trainer.dropblock_layers:
        parts.append("DropBlock")
    if t.weight_decay:
        parts.append(f"wd {t.weight_decay:g}")
    return ", ".join(parts) or "plain"


def keras_entry(precision, options, image_size):
    """Keras' ResNet50 (weights=None; `options.keras_blocks` per stage in
    smoke runs) with a plain GradientTape SGD step."""
    with runtime.kept_dtype_policy(precision):
        model = throughput.keras_resnet50(
            (image_size, image_size, 3),
            blocks=options.keras_blocks,
            classes=options.num_classes,
            classifier_activation=None,
        )
    optimizer = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(1)
    images = rng.uniform(
        -2, 2, (options.batch_size, image_size, image_size, 3)
    ).astype(np.float32)
    labels = rng.integers(0, options.num_classes, options.batch_size).astype(
        np.int32
    )
    if keras.backend.backend() == "jax":
        fn = _keras_jax_step(model, optimizer, images, labels)
    else:
        import tensorflow as tf

        fn = _keras_tf_step(model, optimizer, labels, options.jit_compile)
        images = tf.constant(images)
    return {
        "label": KERAS_LABEL,
        "preset": KERAS_LABEL,
        "precision": precision,
        "fn": fn,
        "images": images,
        "macs": count_macs(model),
        "image_size": image_size,
        "recipe": "plain",
    }


def _keras_tf_step(model, optimizer, labels, jit_compile):
    """A plain GradientTape SGD step of `model` (TensorFlow)."""
    import tensorflow as tf

    labels = tf.constant(labels)

    def step(x, y):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(x, training=True), tf.float32)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)
            )
            scaled = (
                optimizer.scale_loss(loss)
                if hasattr(optimizer, "scale_loss")
                else loss
            )
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    compiled = tf.function(step, jit_compile=jit_compile, autograph=False)
    return lambda x: compiled(x, labels)


def _keras_jax_step(model, optimizer, images, labels):
    """Keras' own JAX train step (`model.train_function`, the jitted,
    state-donating step that `fit` runs), fed its state as `fit` does:
    nothing waits for the device between steps."""
    import jax

    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    model.train_on_batch(images, labels)  # builds, compiles
    state = [
        (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in model.optimizer.variables],
            [v.value for v in model.metrics_variables],
        )
    ]
    data = jax.device_put((images, labels, None))

    def fn(_):
        logs, state[0] = model.train_function(state[0], iter([data]))
        return logs["loss"]

    return fn


def build_entries(options, model_dir):
    """Ours for every preset x precision, then Keras' for every precision."""
    entries = []
    with runtime.kept_dtype_policy():  # `trainer_entry` sets each one
        for precision in options.precisions:
            for preset in options.presets:
                entries.append(
                    trainer_entry(
                        preset,
                        precision,
                        options,
                        os.path.join(model_dir, f"{preset}_{precision}"),
                    )
                )
            size = options.image_size or entries[-1]["image_size"]
            entries.append(keras_entry(precision, options, size))
    return entries


def matmul_peaks(precisions, size):
    """{compute dtype: best matmul GFLOP/s} for the precisions' dtypes."""
    out = {}
    for precision in precisions:
        dtype = compute_dtype(precision)
        if dtype not in out:
            out[dtype] = throughput.matmul_peak_gflops(
                dtype, size=size, repeats=3 if size <= 2048 else 10
            )
    return out


def run(options, log=None):
    """Times the entries; returns the report (see `write_outputs`).

    Args:
        options: `Options`.
        log: callable(str) for progress lines, or None.

    Returns:
        A dict: device, settings, matmul_peak_gflops ({dtype: GFLOP/s}),
        rows (one per preset x precision: images_per_sec,
        keras_images_per_sec, ratio_vs_keras, gflops, peak_fraction, ...)
        and keras (one per precision).
    """
    log = log or (lambda s: None)
    options.validate()
    device = throughput.device_name()
    on_cpu = device.startswith("CPU")
    peak_size = options.peak_matmul_size or (2048 if on_cpu else 8192)
    log(f"Measuring the matmul peak ({peak_size}^2) on {device}.")
    peaks = matmul_peaks(options.precisions, peak_size)
    entries, runs = _time_entries(options, log)
    measured = [
        _measured_row(e, per_run, peaks)
        for e, per_run in zip(entries, runs, strict=True)
    ]
    for row in measured:
        if row["peak_fraction"] > 1:
            # As tools.benchmark_throughput says (before: 62 GFLOP/s
            # against a 23 GFLOP/s peak in a table, without a word).
            log(
                f"WARNING: {row['model']} ({row['precision']}): "
                f"{row['gflops']:.1f} GFLOP/s is {row['peak_fraction']:.2f}x "
                f"the matmul peak measured in this run: {throughput.ABOVE_PEAK}"
            )
    rows, keras_rows = _rows_vs_keras(measured)
    return {
        "device": device,
        "backend": throughput.backend(),
        "settings": _settings(options),
        "matmul_peak_gflops": peaks,
        "rows": rows,
        "keras": keras_rows,
    }


def _time_entries(options, log):
    """Builds every entry (`build_entries`) and times them interleaved.

    Returns:
        (entries, runs): the entries and, for each, its images/s per
        timed repeat.
    """
    with tempfile.TemporaryDirectory() as model_dir:
        entries = build_entries(options, model_dir)
        log(
            f"Timing the train steps of {len(entries)} models, batch "
            f"{options.batch_size}: "
            f"{options.warmup_steps} warm-up steps each, then "
            f"{options.repeats} interleaved repeats of "
            f"{options.steps_per_repeat} steps."
        )
        runs = throughput.time_interleaved_runs(
            entries,
            options.warmup_steps,
            options.repeats,
            options.steps_per_repeat,
            options.batch_size,
        )
    return entries, runs


def _measured_row(entry, per_run, peaks):
    """The figures of one timed entry.

    Args:
        entry: an entry of `build_entries`.
        per_run: its images/s in each timed repeat.
        peaks: {compute dtype: matmul peak GFLOP/s}.

    Returns:
        A dict: model, precision, image_size, recipe, images_per_sec (the
        median), images_per_sec_per_repeat, gmacs, gflops, peak_fraction.
    """
    rate = float(np.median(per_run))
    gflops = TRAIN_FLOPS_PER_MAC * entry["macs"] * rate / 1e9
    return {
        "model": entry["label"],
        "precision": entry["precision"],
        "image_size": entry["image_size"],
        "recipe": entry["recipe"],
        "images_per_sec": rate,
        "images_per_sec_per_repeat": per_run,
        "gmacs": entry["macs"] / 1e9,
        "gflops": gflops,
        "peak_fraction": gflops / peaks[compute_dtype(entry["precision"])],
    }


def _rows_vs_keras(measured):
    """Our rows with their ratios to Keras' row of the same precision.

    Args:
        measured: `_measured_row`s of every entry.

    Returns:
        (rows, keras_rows): ours (model renamed preset, with
        keras_images_per_sec and its per-repeat rates, keras_gflops,
        ratio_vs_keras: the median of the per-repeat ratios,
        ratio_quartiles) and Keras' rows.
    """
    keras_rows = {
        r["precision"]: r for r in measured if r["model"] == KERAS_LABEL
    }
    rows = []
    for r in measured:
        if r["model"] == KERAS_LABEL:
            continue
        ref = keras_rows[r["precision"]]
        paired = throughput.paired_ratios(
            r["images_per_sec_per_repeat"], ref["images_per_sec_per_repeat"]
        )
        # The repeats' rates stay in the JSON, Keras' beside ours: the
        # ratio and its quartiles follow from them (before: dropped).
        rows.append(
            dict(
                r,
                preset=r.pop("model"),
                keras_images_per_sec=ref["images_per_sec"],
                keras_images_per_sec_per_repeat=ref[
                    "images_per_sec_per_repeat"
                ],
                keras_gflops=ref["gflops"],
                ratio_vs_keras=float(np.median(paired)),
                ratio_quartiles=[
                    float(q) for q in np.percentile(paired, [25, 75])
                ],
            )
        )
    return rows, list(keras_rows.values())


def _settings(options):
    """The report's record of what was timed and how."""
    return {
        "batch_size": options.batch_size,
        "image_size": options.image_size,
        "repeats": options.repeats,
        "steps_per_repeat": options.steps_per_repeat,
        "warmup_steps": options.warmup_steps,
        "jit_compile": options.jit_compile,
        "num_classes": options.num_classes,
        "model_overrides": dict(options.model_overrides),
        "keras_blocks": list(
            options.keras_blocks or throughput.KERAS_RESNET50_BLOCKS
        ),
    }


COLUMNS = [
    ("preset", "preset"),
    ("precision", "precision"),
    ("recipe", "timed recipe"),
    ("images_per_sec", "img/s"),
    ("keras_images_per_sec", "Keras R50 img/s"),
    ("ratio_vs_keras", "ours / Keras"),
    ("ratio_quartiles", "middle half of the repeats"),
    ("gflops", "GFLOP/s"),
    ("keras_gflops", "Keras GFLOP/s"),
    ("peak_fraction", "of matmul peak"),
]


# Columns not written as plain numbers: the peak fraction as the console
# prints it (before: 0.00891 here, 0.9% there).
_FORMATS = {"peak_fraction": "{:.1%}".format}


def _cell(value):
    if isinstance(value, float):
        return logger.table_number(value)
    if isinstance(value, list):  # quartiles
        return "-".join(logger.table_number(v) for v in value)
    return str(value)


def markdown_table(report):
    """One row per preset x precision."""
    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for r in report["rows"]:
        cells = [_FORMATS.get(k, _cell)(r[k]) for k, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    s = report["settings"]
    lines.append("")
    lines.append(
        f"{report['device']}, batch {s['batch_size']}, "
        + (
            f"{s['image_size']} px, "
            if s["image_size"]
            else "each preset's train size, "
        )
        + (
            "XLA (jax.jit, both steps)"
            if report.get("backend") == "jax"
            else ("XLA" if s["jit_compile"] else "no XLA")
        )
        + "; "
        f"{s['repeats']} interleaved repeats of {s['steps_per_repeat']} "
        f"steps after {s['warmup_steps']} warm-up steps; img/s are medians "
        "of the repeats, ours / Keras the median of the per-repeat ratios. "
        "GFLOP/s = 6 x forward MACs x "
        "img/s; matmul peak: "
        + ", ".join(
            f"{k} {v:.0f} GFLOP/s"
            for k, v in report["matmul_peak_gflops"].items()
        )
        + "."
    )
    return "\n".join(lines) + "\n"


OUTPUT_FILES = tuple(f"benchmark_training.{e}" for e in ("json", "md", "png"))


def write_outputs(report, out_dir):
    """`OUTPUT_FILES` in `out_dir`; returns {extension: path}."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        n.rsplit(".", 1)[1]: os.path.join(out_dir, n) for n in OUTPUT_FILES
    }
    with open(paths["json"], "w") as f:
        json.dump(report, f, indent=1)
    with open(paths["md"], "w") as f:
        f.write(markdown_table(report))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    names = [f"{r['preset']}\n{r['precision']}" for r in rows]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4), squeeze=False)
    ax = axes[0, 0]
    throughput.paired_bars(
        ax,
        names,
        [r["images_per_sec"] for r in rows],
        [r["keras_images_per_sec"] for r in rows],
        ("ours (Trainer step)", "Keras ResNet50 (plain step)"),
        fontsize=8,
    )
    ax.set_ylabel("training images / s")
    s = report["settings"]
    ax.set_title(
        f"Training throughput ({report['device']}, batch {s['batch_size']})",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    ax.bar(x, [r["ratio_vs_keras"] for r in rows], color="tab:blue")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylabel("ours / Keras ResNet50")
    ax.set_title("Relative to Keras' ResNet50, same precision", fontsize=10)
    fig.tight_layout()
    fig.savefig(paths["png"], dpi=110)
    plt.close(fig)
    return paths


__all__ = [
    "KERAS_LABEL",
    "Options",
    "PRECISIONS",
    "markdown_table",
    "run",
    "smoke_options",
    "write_outputs",
]
