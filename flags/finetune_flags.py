"""Flags of `tools.finetune`, and the fine-tuning request they make.

`tools.train`'s flags (every config field) plus the recipe choice; the
request is resolved by `assemble_tf.training.transfer`.
"""

from absl import flags

from flags import config_flags


def define_finetune_flags(flag_values=flags.FLAGS):
    """`tools.train`'s flags plus --recipe, --retrieval, --dry_run and
    --list_recipes."""
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


def request_from_flags(flag_values):
    """The `transfer.FinetuneRequest` of the command line."""
    from assemble_tf.training import transfer

    return transfer.FinetuneRequest(
        model_dir=flag_values.model_dir,
        preset=flag_values.preset,
        preset_explicit=flag_values["preset"].present,
        recipe=flag_values.recipe,
        source=flag_values.source,
        retrieval=flag_values.retrieval,
        overrides=config_flags.explicit_overrides(flag_values),
    )
