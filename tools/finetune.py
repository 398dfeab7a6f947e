"""Fine-tunes a pretrained model on a tfds dataset or an image folder.

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

from flags import config_flags
from official.utils.flags import core as flags_core

FLAGS = flags.FLAGS


def define_flags():
    config_flags.define_config_flags()
    flags.DEFINE_string(
        "recipe",
        None,
        "Fine-tuning recipe: assemble or vanilla (default: assemble for "
        "Assemble presets, else vanilla); none keeps the preset's.",
    )
    flags.DEFINE_bool(
        "retrieval",
        False,
        "Class-disjoint retrieval training on the train classes of "
        "caltech_birds2011 (0-99), cars196 (0-97) or stanford_online_"
        "products (its train split); pair with --embedding_size / "
        "--pooling=gem and evaluate with tools.eval_retrieval.",
    )


def dataset_overrides(flag_values):
    """Source, class count and splits of --source."""
    from assemble_tf.data import sources
    from assemble_tf.runs import inputs

    if not flag_values.source:
        raise ValueError(
            "--source is required: a tfds name (e.g. oxford_flowers102) or "
            "an image folder <root>/<split>/<class>/<image>."
        )
    data = {"source": flag_values.source, "label_offset": 0}
    known = None
    try:
        known = sources.transfer_dataset(flag_values.source)
    except ValueError:
        pass
    info = inputs.open_source_cached(
        flag_values.source, flag_values.tfds_data_dir, flag_values.download
    )
    data["num_classes"] = info.num_classes
    if flag_values.retrieval:
        split, low, high = sources.retrieval_classes(
            flag_values.source, "train"
        )
        # Train and evaluate on the training classes (evaluation: the same
        # split, a sanity check); recall@K on the held-out test classes
        # comes from tools.eval_retrieval.
        data.update(
            train_split=split,
            validation_split=split,
            num_classes=high - low,
            class_range=f"{low},{high}",
        )
        return data, info
    if known is not None:
        data["train_split"] = known.train_split
        data["validation_split"] = known.eval_split
    elif "validation" not in info.splits and "test" in info.splits:
        data["validation_split"] = "test"
    return data, info


def resolve_config(flag_values):
    from assemble_tf import config as config_lib
    from assemble_tf.training import recipes

    overrides = {}
    recipe = flag_values.recipe or recipes.default_for(flag_values.preset)
    if recipe != "none":
        overrides = recipes.get(recipe)
    data, info = dataset_overrides(flag_values)
    overrides.setdefault("data", {}).update(data)
    explicit = config_flags.explicit_overrides(flag_values)
    for group, values in explicit.items():
        overrides.setdefault(group, {}).update(values)
    if not flag_values.model_dir:
        raise ValueError("--model_dir is required (the run folder).")
    config = config_lib.make_config(
        flag_values.model_dir, flag_values.preset, overrides
    )
    if not config.train.warm_start:
        print(
            "WARNING: no --warm_start: training from scratch.",
            file=sys.stderr,
        )
    return config, recipe, info


def main(argv):
    del argv
    from assemble_tf.training import train_lib
    from assemble_tf.training.trainer import NonFiniteLossError

    config, recipe, info = resolve_config(FLAGS)
    print(
        f"Fine-tuning {config.model.preset} on {info.name} ({info.kind}, "
        f"{config.data.num_classes} classes; train "
        f"'{config.data.train_split}', eval "
        f"'{config.data.validation_split}') with recipe {recipe}.",
        file=sys.stderr,
    )
    try:
        summary = train_lib.run_experiment(config)
    except NonFiniteLossError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        sys.exit(3)
    summary.update(recipe=recipe, source=config.data.source)
    print(json.dumps(summary))


if __name__ == "__main__":
    define_flags()
    flags_core.run(main)
