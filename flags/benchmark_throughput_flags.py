"""Flags of `tools.benchmark_throughput` (names match `ThroughputOptions`
fields).

Only absl and the flag table: the binary also runs under
`KERAS_BACKEND=jax` on a machine without TensorFlow.
"""

from absl import flags

from flags import flag_table

TABLE = (
    ("list", "preset", ["resnet50"], "Presets to time."),
    (
        "integer",
        "batch_size",
        None,
        "Images per batch. Default: 64 (2 with --smoke).",
        {"lower_bound": 1},
    ),
    (
        "integer",
        "image_size",
        None,
        "Input side of every model, --compare's too. Default: each "
        "preset's eval size (64 with --smoke).",
    ),
    (
        "enum",
        "dtype",
        "float32",
        "Compute dtype.",
        {"enum_values": ["float32", "float16", "bfloat16"]},
    ),
    (
        "integer",
        "warmup",
        None,
        "Untimed batches (at least 1: the first traces). Default: 2 (1 "
        "with --smoke).",
        {"lower_bound": 1},
    ),
    (
        "integer",
        "runs",
        None,
        "Timed runs (the median is kept). Default: 5 (2 with --smoke).",
        {"lower_bound": 1},
    ),
    (
        "integer",
        "steps",
        None,
        "Batches per timed run. Default: 3 (1 with --smoke).",
        {"lower_bound": 1},
    ),
    ("bool", "jit_compile", False, "XLA-compile the forward pass."),
    ("bool", "fold_bn", False, "Fold BatchNorm into the convolutions."),
    (
        "list",
        "modes",
        [],
        "Serving paths to time side by side, any of plain, xla, fold_bn, "
        "fold_bn_xla, bf16, fold_bn_bf16 (bf16: computing in bfloat16, float32 "
        "in and out; overrides --fold_bn / --jit_compile).",
    ),
    (
        "enum",
        "compare",
        None,
        "Reference model.",
        {"enum_values": ["keras_resnet50"]},
    ),
    (
        "bool",
        "paper_table",
        False,
        "Time the paper's Table 7 architectures vs R50.",
    ),
    (
        "bool",
        "smoke",
        False,
        "Tiny models (Keras' ResNet50 with one block per stage), sizes and "
        "2 iterations (tests, CI); --batch_size, --warmup, --runs and "
        "--steps given explicitly are kept.",
    ),
    ("string", "output_dir", None, "Where JSON, markdown, PNG go."),
    (
        "bool",
        "overwrite",
        False,
        "Replace the report of an earlier run in --output_dir.",
    ),
    ("bool", "progress", True, "Progress bars on stderr (building, timing)."),
)


def define():
    """Defines the binary's flags; `--presets` is `--preset`, the name
    `tools.benchmark_training` gives its list."""
    flag_table.define_table(TABLE, __name__)
    flags.DEFINE_alias("presets", "preset", module_name=__name__)
