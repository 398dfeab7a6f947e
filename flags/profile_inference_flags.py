"""Flags of `tools.profile_inference` (names match `ProfileOptions`
fields)."""

from flags import flag_table

TABLE = (
    ("string", "preset", "assemble_resnet50", "Preset to profile."),
    (
        "enum",
        "mode",
        "fold_bn_bf16",
        "Serving path (as tools.benchmark_throughput --modes): bf16 computes "
        "in bfloat16 from float32 images, fold_bn folds BatchNorm.",
        {
            # Not the XLA modes: XLA's one fused cluster has no layers
            # to attribute time to.
            "enum_values": ["plain", "fold_bn", "bf16", "fold_bn_bf16"]
        },
    ),
    (
        "integer",
        "image_size",
        None,
        "Input side. Default: the preset's eval size.",
        {"lower_bound": 32},
    ),
    ("integer", "batch_size", 32, "Images per batch.", {"lower_bound": 1}),
    (
        "integer",
        "warmup",
        2,
        "Untimed batches (at least 1: the first traces the model).",
        {"lower_bound": 1},
    ),
    (
        "integer",
        "steps",
        3,
        "Timed, then traced batches (the report is per batch).",
        {"lower_bound": 1},
    ),
    ("string", "output_dir", None, "Where profile.json, .md and .png go."),
    (
        "bool",
        "overwrite",
        False,
        "Replace the profile of an earlier run in --output_dir.",
    ),
)


def define():
    flag_table.define_table(TABLE, __name__)
