r"""Training images/s of presets, as ratios to Keras' ResNet50.

    python -m tools.benchmark_training \
        --presets=resnet50,assemble_resnet50 \
        --precisions=float32,mixed_bfloat16 --output_dir=bench_train

Times our `Trainer`'s compiled step (uint8 batches normalized and mixed on
the device, the preset's recipe: Mixup, label smoothing, KD, weight decay,
DropBlock schedule, SGD with momentum) beside Keras'
`ResNet50(weights=None)` trained by a plain GradientTape SGD step (under
KERAS_BACKEND=jax: Keras' own compiled `train_function`) in the same
process, interleaved, and prints ours / Keras per preset and precision,
and the achieved GFLOP/s (6 x forward MACs per image) against a matmul
peak measured in the same run. Writes benchmark_training.json, .md
and .png to --output_dir. The host input pipeline is not timed
(`tools.benchmark_input` times it). See `assemble_tf.training.benchmark`.
"""

import json
import sys

from absl import flags

from flags import benchmark_training_flags
from official.utils.flags import core as flags_core
from official.utils.misc import validation

FLAGS = flags.FLAGS


def define_flags():
    """Defines the binary's flags (`flags.benchmark_training_flags`)."""
    benchmark_training_flags.define()


def options_from_flags(flag_values):
    """The `benchmark.Options` of the parsed flags (`--smoke`: tiny
    settings, but the flags given win; before, they were dropped)."""
    from assemble_tf.training import benchmark

    f = flag_values
    values = dict(
        presets=tuple(f.presets),
        precisions=tuple(f.precisions),
        batch_size=f.batch_size,
        image_size=f.image_size or None,
        repeats=f.repeats,
        steps_per_repeat=f.steps_per_repeat,
        warmup_steps=f.warmup_steps,
        jit_compile=f.jit_compile,
        num_classes=f.num_classes,
    )
    if not f.smoke:
        return benchmark.Options(**values)
    always = ("presets", "precisions", "jit_compile")
    return benchmark.smoke_options(
        **{k: v for k, v in values.items() if k in always or f[k].present}
    )


def main(argv):
    del argv
    from assemble_tf.training import benchmark

    options = options_from_flags(FLAGS)

    def log(line):
        print(line, file=sys.stderr, flush=True)

    validation.check_creatable(FLAGS, folders=["output_dir"])  # before
    validation.check_replaceable(FLAGS, benchmark.OUTPUT_FILES)  # the work
    report = benchmark.run(options, log=log)
    for r in report["rows"]:
        log(
            f"{r['preset']} {r['precision']}: {r['images_per_sec']:.3g} "
            f"img/s, Keras ResNet50 {r['keras_images_per_sec']:.3g} img/s, "
            f"ours / Keras = {r['ratio_vs_keras']:.3f} (middle half of the "
            f"repeats {r['ratio_quartiles'][0]:.3f}-"
            f"{r['ratio_quartiles'][1]:.3f}); "
            f"{r['gflops']:.3g} GFLOP/s ({r['peak_fraction']:.1%} of the "
            "matmul peak)"
        )
        print(json.dumps(r))
    if FLAGS.output_dir:
        paths = benchmark.write_outputs(report, FLAGS.output_dir)
        log(f"Wrote {', '.join(paths.values())}.")


if __name__ == "__main__":
    define_flags()
    flags_core.run(main)
