"""Flags of `tools.benchmark_training` (names match `benchmark.Options`)."""

from flags import flag_table

TABLE = (
    (
        "list",
        "presets",
        ["resnet50", "assemble_resnet50"],
        "Presets to time, each with its own training recipe.",
    ),
    (
        "list",
        "precisions",
        ["float32"],
        "Any of float32, mixed_float16, mixed_bfloat16.",
    ),
    (
        "integer",
        "batch_size",
        32,
        "Examples per step (after Mixup).",
        {"lower_bound": 1},
    ),
    (
        "integer",
        "image_size",
        224,
        "Train crop side of every model (0: each preset's train size).",
        {"lower_bound": 0},
    ),
    (
        "integer",
        "repeats",
        5,
        "Timed repeats per model (the median is kept).",
        {"lower_bound": 1},
    ),
    (
        "integer",
        "steps_per_repeat",
        2,
        "Train steps per timed repeat.",
        {"lower_bound": 1},
    ),
    (
        "integer",
        "warmup_steps",
        2,
        "Untimed steps per model first (tracing, compiling; at least 1).",
        {"lower_bound": 1},
    ),
    (
        "bool",
        "jit_compile",
        False,
        "XLA-compile both train steps (ours as `train --jit_compile`). "
        "On CPU XLA makes the step slower; for GPUs and TPUs.",
    ),
    (
        "integer",
        "num_classes",
        1000,
        "Classifier width of every model.",
        {"lower_bound": 2},
    ),
    ("string", "output_dir", None, "Where the JSON, markdown and PNG go."),
    (
        "bool",
        "overwrite",
        False,
        "Replace the report of an earlier run in --output_dir.",
    ),
    (
        "bool",
        "smoke",
        False,
        "Tiny run for tests: our models at base_width 8, Keras' ResNet50 "
        "with one block per stage, 32 px, batch 2, one repeat of one step "
        "(flags given on the command line win).",
    ),
)


def define():
    """Defines the binary's flags."""
    flag_table.define_table(TABLE, __name__)
