r"""Inference throughput of presets, as ratios measured in one run.

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
and `fold_bn_bf16` are untested there). The work is
`assemble_tf.export.throughput_run.run_benchmark`.
"""

import dataclasses
import json

from absl import flags

from official.utils.flags import core as flags_core

FLAGS = flags.FLAGS


def define_flags():
    """Defines the binary's flags (names match `ThroughputOptions` fields)."""
    flags.DEFINE_list("preset", ["resnet50"], "Presets to time.")
    flags.DEFINE_integer("batch_size", 64, "Images per batch.", lower_bound=1)
    flags.DEFINE_integer(
        "image_size",
        None,
        "Input side of every model, --compare's too. Default: each "
        "preset's eval size.",
    )
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
    flags.DEFINE_bool(
        "smoke", False, "Tiny sizes and 2 iterations (tests, CI)."
    )
    flags.DEFINE_string("output_dir", None, "Where JSON, markdown, PNG go.")


def options_from_flags(flag_values):
    """The `ThroughputOptions` of the parsed flags (lists as tuples)."""
    from assemble_tf.export import throughput_run

    values = {}
    for field in dataclasses.fields(throughput_run.ThroughputOptions):
        value = flag_values[field.name].value
        values[field.name] = tuple(value) if isinstance(value, list) else value
    return throughput_run.ThroughputOptions(**values)


def main(argv):
    del argv
    from assemble_tf.export import throughput_run

    report = throughput_run.run_benchmark(options_from_flags(FLAGS))
    for row in report["rows"]:
        print(json.dumps(row))


if __name__ == "__main__":
    define_flags()
    flags_core.run(main)
