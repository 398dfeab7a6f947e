r"""Inference throughput of presets, as ratios measured in one run.

    python -m tools.benchmark_throughput --preset=assemble_resnet50 \
        --compare=keras_resnet50 --output_dir=bench_out
    python -m tools.benchmark_throughput --paper_table --output_dir=bench_paper

Lee et al. 2020 (https://arxiv.org/abs/2001.06268) report images/s on one
Tesla P40, FP32, batch 64. Absolute numbers depend on the machine, so this
tool prints ratios against references timed in the same process: Keras'
`ResNet50(weights=None)` (`--compare=keras_resnet50`) and our R50
(`--paper_table`, beside the paper's ratio, e.g. Assemble-R50 312/536 =
0.58). Each figure is the median of `--runs` timed runs of `--steps` batches
after `--warmup` batches, inside `tf.function` (optionally XLA, BN folded).
Also reports achieved GFLOP/s against a matmul peak of the row's compute
dtype (float32, or bfloat16 / float16) measured in the same run. Writes
JSON lines, a markdown table and a bar chart.

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

from flags import benchmark_throughput_flags
from official.utils.flags import core as flags_core

FLAGS = flags.FLAGS


def define_flags():
    """Defines the binary's flags (`flags.benchmark_throughput_flags`)."""
    benchmark_throughput_flags.define()


def options_from_flags(flag_values):
    """The `ThroughputOptions` of the parsed flags (lists as tuples)."""
    from assemble_tf.export import throughput_run

    if flag_values.paper_table and flag_values["preset"].present:
        # Before: --preset was dropped without a word.
        from official.utils.misc.validation import OptionError

        raise OptionError(
            "preset",
            "{field} with {paper_table}: the paper's table times its own "
            "Table 7 rows; leave one of them out.",
            ["paper_table"],
        )
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
