r"""Trains a preset with its recipe on TFRecords (--data_dir), a tfds set or
an image folder (--source), resumably: under TensorFlow on any
tf.distribute strategy, or under KERAS_BACKEND=jax data parallel over the
local devices.

    python -m tools.train --preset=assemble_resnet50 \
        --data_dir=/data/imagenet --model_dir=/runs/a50 \
        --distribution_strategy=mirrored --mixed_precision=mixed_float16

The preset sets the architecture and the paper's recipe; any flag set on the
command line overrides it. The resolved configuration is written to
`model_dir/config.json` and rerunning the same command resumes from the last
checkpoint. Prints one JSON line at the end.
"""

import json
import sys

from absl import flags

from flags import config_flags
from official.utils.flags import core as flags_core

FLAGS = flags.FLAGS


def define_flags():
    """One flag per config field, plus --model_dir and --preset."""
    config_flags.define_config_flags()


def main(argv):
    del argv
    from assemble_tf.runs import inputs
    from assemble_tf.training import train_lib
    from assemble_tf.training.trainer import NonFiniteLossError

    config = config_flags.flags_to_config(FLAGS)
    for line in inputs.data_warnings(config.data):
        print(f"WARNING: {line}", file=sys.stderr)
    try:
        summary = train_lib.run_experiment(config)
    except NonFiniteLossError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        sys.exit(3)
    print(json.dumps(summary))


if __name__ == "__main__":
    define_flags()
    flags_core.run(main)
