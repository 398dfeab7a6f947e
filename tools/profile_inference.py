r"""Where a serving path spends its time, by operator and layer family.

    python -m tools.profile_inference --preset=assemble_resnet50 \
        --mode=fold_bn_bf16 --batch_size=32 --output_dir=profile_out

Traces `--steps` batches of the preset's forward pass in `--mode` (one of
tools.benchmark_throughput's serving paths) with TensorFlow's profiler and
prints per-batch milliseconds by layer family (dense convolutions, SK units,
BlurPool, the BigLittle merge, shortcut pools, head), by op type and by
both; writes profile.json, profile.md and profile.png (time by family) to
`--output_dir`. TensorFlow only: under KERAS_BACKEND=jax, time the families
with tools.benchmark_throughput over the table6_m0..m4 presets
(docs/benchmarks.md). The work is `assemble_tf.export.op_profile`.
"""

from absl import flags

from flags import profile_inference_flags
from official.utils.flags import core as flags_core

FLAGS = flags.FLAGS


def define_flags():
    """Defines the binary's flags (`flags.profile_inference_flags`)."""
    profile_inference_flags.define()


def main(argv):
    del argv
    from assemble_tf.export import op_profile

    fields = [
        f.name
        for f in op_profile.dataclasses.fields(op_profile.ProfileOptions)
        if f.name in FLAGS
    ]
    options = op_profile.ProfileOptions(
        **{name: FLAGS[name].value for name in fields}
    )
    report = op_profile.run_profile(options)
    print(op_profile.markdown(report), end="")


if __name__ == "__main__":
    define_flags()
    # Not `tensorflow_only`: under JAX the library names the alternative
    # (its generic line said the binary "reads runs", which it does not).
    flags_core.run(main)
