r"""The end-to-end demo: real data in, a trained Assemble model out.

    python -m tools.demo --output_dir=demo_out

1. writes scikit-learn's handwritten digits as TFRecords (no download);
2. trains a small Assemble configuration (BigLittleNet + SK + anti-aliasing
   + DropBlock, with Mixup, label smoothing and AutoAugment: the
   assemble_resnet50 recipe at base width 16 on 32x32 inputs) on the CPU;
3. evaluates it on the held-out digits (top-1, top-5, ECE);
4. writes training curves, a reliability diagram and a short report, and
   prints one JSON line.
About three and a half minutes on 2 cores.
Rerunning resumes / reuses what is there. The work is
`assemble_tf.training.demo.run_demo`.
"""

import json

from absl import flags

from official.utils.flags import core as flags_core

FLAGS = flags.FLAGS


def define_flags():
    """Defines --output_dir, --epochs and --seed (`DemoOptions` fields)."""
    flags.DEFINE_string(
        "output_dir", "demo_out", "Where everything is written."
    )
    flags.DEFINE_integer("epochs", 40, "Training epochs.", lower_bound=1)
    flags.DEFINE_integer(
        "seed", 0, "Seed of the run (data order, crops, init).", lower_bound=0
    )


def main(argv):
    del argv
    from assemble_tf.training import demo

    options = demo.DemoOptions(
        output_dir=FLAGS.output_dir, epochs=FLAGS.epochs, seed=FLAGS.seed
    )
    print(json.dumps(demo.run_demo(options)))


if __name__ == "__main__":
    define_flags()
    flags_core.run(main)
