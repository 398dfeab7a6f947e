r"""Fine-tunes a pretrained model on a tfds dataset or an image folder.

    # Flowers-102 from an imported Assemble-ResNet-50 checkpoint
    python -m tools.finetune --preset=assemble_resnet50 \
        --warm_start=assemble_r50.weights.h5 \
        --source=oxford_flowers102 --tfds_data_dir=/data/tfds \
        --model_dir=/runs/a50_flowers
    # FGVC-Aircraft from a folder <root>/{train,test}/<variant>/<image>
    python -m tools.finetune --preset=resnet50 --recipe=vanilla \
        --warm_start=/runs/r50 --source=/data/fgvc_aircraft \
        --validation_split=test --model_dir=/runs/r50_aircraft

Lee et al. 2020 (https://arxiv.org/abs/2001.06268), transfer learning; the
recipes are the authors' Food-101 scripts (clovaai/assembled-cnn,
`assemble_tf.training.recipes`): `--recipe=assemble` (Mixup, AutoAugment
`good`, label smoothing, DropBlock 0.9 -> 0.7) or `vanilla`, both 100
epochs at batch 256, LR 0.01 cosine, weight decay 1e-3, BN momentum 0.966,
head re-initialised and BN statistics reset as the original. The data go
through the same augmentation, pipeline and training loop as ImageNet
(`tools.train`); the class count and splits come from the dataset
(`--num_classes`, `--train_split`, `--validation_split` override them). Any
flag of `tools.train` can be set; explicit flags win over the recipe.
Rerunning the same command resumes. Prints one JSON line at the end.
"""

import json
import sys

from absl import flags

from flags import finetune_flags
from official.utils.flags import core as flags_core

FLAGS = flags.FLAGS
define_flags = finetune_flags.define_finetune_flags


def main(argv):
    del argv
    from assemble_tf.training import recipes, train_lib, transfer
    from assemble_tf.training.trainer import NonFiniteLossError

    if FLAGS.list_recipes:
        print(recipes.format_table(recipes.table()))
        return
    request = finetune_flags.request_from_flags(FLAGS)
    result = transfer.resolve(request, FLAGS.dry_run)
    for line in result.warnings:
        print(f"WARNING: {line}", file=sys.stderr)
    config, name, paper = result.config, result.recipe_name, result.paper
    if FLAGS.dry_run:
        print(
            json.dumps(dict(recipe=name, paper=paper, config=config.to_dict()))
        )
        return
    info = result.source_info
    print(
        f"Fine-tuning {config.model.preset} on {info.name} ({info.kind}, "
        f"{config.data.num_classes} classes; train "
        f"'{config.data.train_split}', eval "
        f"'{config.data.validation_split}') with recipe {name}.",
        file=sys.stderr,
    )
    try:
        summary = train_lib.run_experiment(config)
    except NonFiniteLossError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        sys.exit(3)
    summary.update(recipe=name, source=config.data.source)
    if paper:
        summary["paper"] = paper
    print(json.dumps(summary))


if __name__ == "__main__":
    define_flags()
    flags_core.run(main)
