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


def define_flags(flag_values=FLAGS):
    fv = {"flag_values": flag_values}
    config_flags.define_config_flags(flag_values=flag_values)
    flags.DEFINE_string(
        "recipe",
        None,
        "Fine-tuning recipe (--list_recipes): vanilla / assemble (the "
        "authors' Food-101 scripts), table8_f0..f13 (Table 8 rows, with "
        "their backbone and Food-101), assemble_fgvc50, retrieval_s0..s9, "
        "assemble_ir50_{sop,cub200,cars196}. Default: assemble for Assemble "
        "presets, else vanilla; none keeps the preset's ImageNet recipe. A "
        "row's backbone replaces the default --preset (an explicit --preset "
        "wins, with a warning) and its dataset the missing --source.",
        **fv,
    )
    flags.DEFINE_bool(
        "retrieval",
        False,
        "Class-disjoint retrieval training on the train classes of "
        "caltech_birds2011 (0-99), cars196 (0-97) or stanford_online_"
        "products (its train split); pair with --embedding_size / "
        "--pooling=gem and evaluate with tools.eval_retrieval. The "
        "retrieval_* and assemble_ir50_* recipes set it.",
        **fv,
    )
    flags.DEFINE_bool(
        "dry_run",
        False,
        "Print the fully resolved configuration as one JSON line and exit, "
        "reading no data and no weights.",
        **fv,
    )
    flags.DEFINE_bool(
        "list_recipes", False, "Print the table of recipes and exit.", **fv
    )


def _num_classes_without_data(flag_values, retrieval):
    """The class count of --source from the catalogue (or the folder's
    class folders), for --dry_run."""
    import os

    from assemble_tf.data import sources

    if retrieval and not os.path.isdir(flag_values.source):
        _, low, high = sources.retrieval_classes(flag_values.source, "train")
        return high - low
    try:
        return sources.transfer_dataset(flag_values.source).num_classes
    except ValueError:
        pass
    root = os.path.join(flag_values.source, flag_values.train_split or "train")
    if os.path.isdir(root):
        return len([d for d in os.scandir(root) if d.is_dir()])
    raise ValueError(
        f"--dry_run cannot tell the classes of --source="
        f"{flag_values.source}; pass --num_classes."
    )


def dataset_overrides(flag_values, retrieval, dry_run=False):
    """Source, class count and splits of --source (and the opened source's
    info, None with `dry_run`)."""
    import os

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
    info = None
    if dry_run:
        data["num_classes"] = flag_values.explicit_classes or (
            _num_classes_without_data(flag_values, retrieval)
        )
        splits = {"validation"}
    else:
        info = inputs.open_source_cached(
            flag_values.source, flag_values.tfds_data_dir, flag_values.download
        )
        data["num_classes"] = info.num_classes
        splits = set(info.splits)
    if retrieval and os.path.isdir(flag_values.source):
        # A folder: its train split is the training half (keep its classes
        # apart from the test split's for a class-disjoint evaluation).
        split = flag_values.train_split or "train"
        data.update(train_split=split, validation_split=split)
        return data, info
    if retrieval:
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
    elif "validation" not in splits and "test" in splits:
        data["validation_split"] = "test"
    return data, info


def resolve_recipe(flag_values):
    """(recipe name, `Recipe` or None, preset, source, retrieval)."""
    from assemble_tf.training import recipes

    name = flag_values.recipe or recipes.default_for(flag_values.preset)
    preset, source = flag_values.preset, flag_values.source
    if name == "none":
        return name, None, preset, source, flag_values.retrieval
    recipe = recipes.get(name)
    if recipe.preset:
        if not flag_values["preset"].present:
            preset = recipe.preset
        elif preset != recipe.preset:
            print(
                f"WARNING: --recipe={name} is fine-tuned from "
                f"{recipe.preset} in the paper; --preset={preset} replaces "
                "it, so the paper's figures do not apply.",
                file=sys.stderr,
            )
    if not source and recipe.source:
        source = recipe.source
    return (
        name,
        recipe,
        preset,
        source,
        flag_values.retrieval or (recipe.retrieval),
    )


def resolve_config(flag_values, dry_run=False):
    """(config, recipe name, `Recipe` or None, source info or None)."""
    from assemble_tf import config as config_lib

    name, recipe, preset, source, retrieval = resolve_recipe(flag_values)
    overrides = recipe.overrides if recipe else {}
    explicit = config_flags.explicit_overrides(flag_values)
    values = _Values(
        flag_values,
        preset=preset,
        source=source,
        explicit_classes=explicit.get("data", {}).get("num_classes"),
    )
    data, info = dataset_overrides(values, retrieval, dry_run)
    overrides.setdefault("data", {}).update(data)
    for group, group_values in explicit.items():
        overrides.setdefault(group, {}).update(group_values)
    if not flag_values.model_dir and not dry_run:
        raise ValueError("--model_dir is required (the run folder).")
    config = config_lib.make_config(flag_values.model_dir, preset, overrides)
    if not config.train.warm_start and not dry_run:
        print(
            "WARNING: no --warm_start: training from scratch.",
            file=sys.stderr,
        )
    return config, name, recipe, info


class _Values:
    """Flag values with some replaced (the recipe's preset and source)."""

    def __init__(self, flag_values, **replaced):
        self._flag_values = flag_values
        self._replaced = replaced

    def __getattr__(self, name):
        if name in self._replaced:
            return self._replaced[name]
        return getattr(self._flag_values, name)


def main(argv):
    del argv
    from assemble_tf.training import recipes, train_lib
    from assemble_tf.training.trainer import NonFiniteLossError

    if FLAGS.list_recipes:
        print(recipes.format_table(recipes.table()))
        return
    if FLAGS.dry_run:
        config, name, recipe, _ = resolve_config(FLAGS, dry_run=True)
        print(
            json.dumps(
                {
                    "recipe": name,
                    "paper": recipe.paper if recipe else {},
                    "config": config.to_dict(),
                }
            )
        )
        return
    config, name, recipe, info = resolve_config(FLAGS)
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
    if recipe and recipe.paper:
        summary["paper"] = recipe.paper
    print(json.dumps(summary))


if __name__ == "__main__":
    define_flags()
    flags_core.run(main)
