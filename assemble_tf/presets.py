"""Named models: the paper's final networks and every ablation row.

Lee et al., "Compounding the Performance Improvements of Assembled
Techniques in a Convolutional Neural Network", arXiv 2001.06268 v2
(https://arxiv.org/abs/2001.06268). Each preset is a few lines of
`build_resnet` arguments plus the paper's reported figures for that row
(top-1 %, mCE %, images/s on one Tesla P40, FP32, batch 64), its evaluation
size, and its training recipe as data for the training binary.

`resnet50`, `assemble_resnet50` and `assemble_resnet152` reproduce the
original master graph of clovaai/assembled-cnn exactly (1001 classes), so its
released checkpoints load. In the paper's naming "R50D+BL" is master's
`resnet_version=2` with `use_resnet_d=False`: a 7x7 stem and the BigLittle
3x3 average-pool shortcut ("avg3"), which plays the ResNet-D role.
"""

import copy
import dataclasses
import difflib

from official.utils.misc.validation import OptionError

# Building blocks of the rows (arguments of models.resnet.build_resnet).
R50 = {"depth": 50}
# The downsampling shortcuts `build_resnet` takes (`shortcut`): one list
# for the builder, a run's model options and the model tools' flag.
SHORTCUTS = ("conv", "avg2", "avg3", "avg2_tf1")

R50D = {"depth": 50, "stem": "deep", "shortcut": "avg2"}
BIG_LITTLE_R50 = {"depth": 50, "big_little": (2, 4), "shortcut": "avg3"}
SK = {"attention": "sk"}
SE = {"attention": "se"}
AA = {"anti_alias": "sconv", "anti_alias_size": 3}
DROPBLOCK = {
    "dropblock": {
        "stages": (3, 4),
        "block_size": 7,
        "gamma_scales": (0.25, 1.0),
        "keep_prob": 1.0,
    }
}

# Training recipes as {config group: {field: value}} (the fields of
# `assemble_tf.config`; master scripts: SGD momentum 0.9, batch 1024, base
# LR 0.4 not batch-scaled, 5 warm-up epochs, weight decay 1e-4 x 1/2 sum w^2).
_BASE_RECIPE = {
    "train": {
        "epochs": 120.0,
        "batch_size": 1024,
        "base_learning_rate": 0.4,
        "lr_schedule": "cosine",
        "warmup_epochs": 5.0,
        "weight_decay": 1e-4,
        "dropblock_keep_prob": None,
        "kd_temperature": 0.0,
    },
    "augment": {"label_smoothing": 0.0, "mixup_type": 0, "autoaugment": None},
}


def _recipe(base=_BASE_RECIPE, **changes):
    """A copy of `base` with each change put in the group of its field."""
    recipe = {group: dict(values) for group, values in base.items()}
    for field, value in changes.items():
        groups = [g for g, values in recipe.items() if field in values]
        if not groups:
            raise ValueError(f"Unknown recipe field {field!r}")
        recipe[groups[0]][field] = value
    return recipe


STEP_120 = _recipe(lr_schedule="piecewise")  # Tables 2 and 3 (step LR)
COSINE_120 = _recipe()
LS_120 = _recipe(label_smoothing=0.1)
LS_MIXUP_200 = _recipe(epochs=200.0, label_smoothing=0.1, mixup_type=1)
LS_MIXUP_DB_270 = _recipe(
    epochs=270.0,
    label_smoothing=0.1,
    mixup_type=1,
    dropblock_keep_prob=(1.0, 0.9),
)
KD_270 = _recipe(LS_MIXUP_DB_270, kd_temperature=1.0)
KD_600 = _recipe(KD_270, epochs=600.0)
ASSEMBLE_600 = _recipe(KD_600, autoaugment="imagenet")
# The paper's KD teachers: AmoebaNet-A for the ResNet-50 rows,
# EfficientNet-B7 for Assemble-ResNet-152.
AMOEBANET = "AmoebaNet-A"
EFFICIENTNET_B7 = "EfficientNet-B7"


@dataclasses.dataclass(frozen=True)
class PaperFigures:
    """Figures the paper reports for a row.

    Attributes:
        source: where they come from, e.g. "Table 7 E11".
        top1: ImageNet top-1 accuracy in %, or None.
        mce: ImageNet-C mCE in % (lower is better), or None.
        throughput: inference images/s (one P40, FP32, batch 64), or None.
        mfr: ImageNet-P mFR in % (abstract: R50 57.7, Assemble-R50 32.3).
    """

    source: str
    top1: float | None = None
    mce: float | None = None
    throughput: int | None = None
    mfr: float | None = None


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named network: architecture, evaluation size, figures, recipe
    ({config group: {field: value}}) and, for KD recipes, the teacher."""

    name: str
    description: str
    model: dict
    paper: PaperFigures | None = None
    recipe: dict = dataclasses.field(default_factory=lambda: _recipe())
    teacher: str | None = None
    train_image_size: int = 224
    eval_image_size: int = 224
    eval_preprocessing: str = "imagenet"

    def model_kwargs(self):
        """A fresh copy of the `build_resnet` arguments."""
        return copy.deepcopy(self.model)


PRESETS = {}


def _add(name, description, model, paper=None, recipe=COSINE_120, **kw):
    if name in PRESETS:
        raise ValueError(f"Duplicate preset {name!r}")
    merged = {}
    for part in model:
        merged.update(copy.deepcopy(part))
    if recipe["train"]["kd_temperature"]:
        kw.setdefault("teacher", AMOEBANET)
    PRESETS[name] = Preset(
        name, description, merged, paper, _recipe(recipe), **kw
    )


def _alias(name, of, description):
    """`name` is preset `of` under another name (a paper row that is also
    a network users ask for by name)."""
    if name in PRESETS:
        raise ValueError(f"Duplicate preset {name!r}")
    PRESETS[name] = dataclasses.replace(
        PRESETS[of], name=name, description=description
    )


_BL_EVAL = {"eval_image_size": 256, "eval_preprocessing": "imagenet_224_256"}

# The networks users ask for by name. ------------------------------------
_add(
    "resnet50",
    "ResNet-50 v1.5, the original baseline (1001 classes), step LR",
    [R50],
    PaperFigures("Table 1", 76.3, 76.0, 536, mfr=57.7),
    # Table 1's baseline is the step-LR run (Table 2 C0 / Table 3 A0:
    # 76.30); with cosine it is Table 7 E0 (76.87), `table7_e0` (before:
    # the cosine recipe under Table 1's figures).
    STEP_120,
)
_add(
    "resnet50d",
    "ResNet-50-D: deep stem, 2x2 avg-pool shortcut",
    [R50D],
    PaperFigures("Table 7 E1", 77.37, 75.73, 493),
)
_add("resnet101", "ResNet-101 v1.5", [{"depth": 101}])
_add("resnet152", "ResNet-152 v1.5", [{"depth": 152}])
_add(
    "se_resnet50d",
    "ResNet-50-D + SE (ratio 16)",
    [R50D, SE],
    PaperFigures("Table 7 E4", 79.71, 64.48, 420),
    LS_MIXUP_200,
)
_add(
    "sk_resnet50d",
    "ResNet-50-D + SK (3x3, 2x channels, r=2)",
    [R50D, SK],
    PaperFigures("Table 6 M2", 78.83, None, 359),
)
_add(
    "assemble_resnet50",
    "Assemble-ResNet-50: BL(2,4) + SK + AA + DropBlock (master graph)",
    [BIG_LITTLE_R50, SK, AA, DROPBLOCK],
    PaperFigures("Table 7 E11", 82.78, 48.89, 312, mfr=32.3),
    ASSEMBLE_600,
    **_BL_EVAL,
)
_add(
    "assemble_resnet152",
    "Assemble-ResNet-152: BL(1,2) + SK + AA + DropBlock (master graph)",
    [
        {"depth": 152, "big_little": (1, 2), "shortcut": "avg3"},
        SK,
        AA,
        DROPBLOCK,
    ],
    PaperFigures("Table 7 E12", 84.19, 43.27, 143),
    ASSEMBLE_600,
    teacher=EFFICIENTNET_B7,
    eval_image_size=256,
    eval_preprocessing="imagenet_224_256a",
)

# Table 2: Selective Kernel variants (R50, 120 epochs, step LR). ----------
_add(
    "table2_c0",
    "C0 ResNet-50",
    [R50],
    PaperFigures("Table 2 C0", 76.30, None, 536),
    STEP_120,
)
_add(
    "table2_c1",
    "C1 R50 + SE",
    [R50, SE],
    PaperFigures("Table 2 C1", 77.40, None, 466),
    STEP_120,
)
_add(
    "table2_c2",
    "C2 R50 + SK 3x3 + 5x5 (dilated 3x3), r=2",
    [R50, {"attention": "sknet"}],
    PaperFigures("Table 2 C2", 78.00, None, 326),
    STEP_120,
)
_add(
    "table2_c3",
    "C3 R50 + SK 3x3 with 2x channels, r=2 (chosen)",
    [R50, SK],
    PaperFigures("Table 2 C3", 77.92, None, 382),
    STEP_120,
)
_add(
    "table2_c4",
    "C4 R50 + SK 3x3 with 2x channels, r=16",
    [R50, SK, {"sk_reduction": 16}],
    PaperFigures("Table 2 C4", 77.57, None, 402),
    STEP_120,
)
_add(
    "table2_c5",
    "C5 R50 + SK (r=2) + SE",
    [R50, {"attention": ("sk", "se")}],
    PaperFigures("Table 2 C5", 77.50, None, 345),
    STEP_120,
)

# Table 3: anti-aliasing placements (R50, 120 epochs, step LR). -----------
_add(
    "table3_a0",
    "A0 ResNet-50, no anti-aliasing",
    [R50],
    PaperFigures("Table 3 A0", 76.30, None, 536),
    STEP_120,
)
_add(
    "table3_a1",
    "A1 blur size 5 on max-pool, projection and strided conv",
    [R50, {"anti_alias": ("max", "proj", "sconv"), "anti_alias_size": 5}],
    PaperFigures("Table 3 A1", 76.81, None, 422),
    STEP_120,
)
_add(
    "table3_a2",
    "A2 blur size 3 on max-pool, projection and strided conv",
    [R50, {"anti_alias": ("max", "proj", "sconv"), "anti_alias_size": 3}],
    PaperFigures("Table 3 A2", 76.83, None, 456),
    STEP_120,
)
_add(
    "table3_a3",
    "A3 blur size 3 on max-pool and strided conv",
    [R50, {"anti_alias": ("max", "sconv"), "anti_alias_size": 3}],
    PaperFigures("Table 3 A3", 76.84, None, 483),
    STEP_120,
)
_add(
    "table3_a4",
    "A4 blur size 3 on strided conv only (chosen)",
    [R50, AA],
    PaperFigures("Table 3 A4", 76.67, None, 519),
    STEP_120,
)

# Table 6: network tweaks only (120 epochs, cosine). ----------------------
_add(
    "table6_m0",
    "M0 ResNet-50",
    [R50],
    PaperFigures("Table 6 M0", 76.87, None, 536),
)
_add(
    "table6_m1",
    "M1 ResNet-50-D",
    [R50D],
    PaperFigures("Table 6 M1", 77.37, None, 493),
)
_add(
    "table6_m2",
    "M2 R50D + SK",
    [R50D, SK],
    PaperFigures("Table 6 M2", 78.83, None, 359),
)
_add(
    "table6_m3",
    "M3 R50D + SK + BigLittleNet (eval 256)",
    [BIG_LITTLE_R50, SK],
    PaperFigures("Table 6 M3", 79.27, None, 359),
    **_BL_EVAL,
)
_add(
    "table6_m4",
    "M4 R50D + SK + BL + anti-aliasing (eval 256)",
    [BIG_LITTLE_R50, SK, AA],
    PaperFigures("Table 6 M4", 79.39, None, 312),
    **_BL_EVAL,
)

# Table 7: tweaks and regularization assembled. ---------------------------
_add(
    "table7_e0",
    "E0 ResNet-50 baseline",
    [R50],
    PaperFigures("Table 7 E0", 76.87, 75.55, 536),
)
_add(
    "table7_e1",
    "E1 R50D",
    [R50D],
    PaperFigures("Table 7 E1", 77.37, 75.73, 493),
)
_add(
    "table7_e2",
    "E2 R50D, label smoothing",
    [R50D],
    PaperFigures("Table 7 E2", 78.35, 74.27, 493),
    LS_120,
)
_add(
    "table7_e3",
    "E3 R50D, LS + Mixup, 200 ep",
    [R50D],
    PaperFigures("Table 7 E3", 79.10, 68.19, 493),
    LS_MIXUP_200,
)
_add(
    "table7_e4",
    "E4 R50D + SE, LS + Mixup, 200 ep",
    [R50D, SE],
    PaperFigures("Table 7 E4", 79.71, 64.48, 420),
    LS_MIXUP_200,
)
_add(
    "table7_e5",
    "E5 R50D + SE, LS + Mixup + DropBlock, 270 ep",
    [R50D, SE, DROPBLOCK],
    PaperFigures("Table 7 E5", 80.40, 62.64, 420),
    LS_MIXUP_DB_270,
)
_add(
    "table7_e6",
    "E6 R50D + SK, LS + Mixup + DropBlock, 270 ep",
    [R50D, SK, DROPBLOCK],
    PaperFigures("Table 7 E6", 81.40, 58.34, 359),
    LS_MIXUP_DB_270,
)
_add(
    "table7_e7",
    "E7 R50D + SK, + KD, 270 ep",
    [R50D, SK, DROPBLOCK],
    PaperFigures("Table 7 E7", 81.69, 57.08, 359),
    KD_270,
)
_add(
    "table7_e8",
    "E8 R50D + SK, LS + Mixup + DropBlock + KD, 600 ep",
    [R50D, SK, DROPBLOCK],
    PaperFigures("Table 7 E8", 82.10, 56.48, 359),
    KD_600,
)
_add(
    "table7_e9",
    "E9 R50D + BL + SK, 600 ep (eval 256)",
    [BIG_LITTLE_R50, SK, DROPBLOCK],
    PaperFigures("Table 7 E9", 82.44, 55.20, 359),
    KD_600,
    **_BL_EVAL,
)
_add(
    "table7_e10",
    "E10 R50D + BL + SK + AA, 600 ep (eval 256)",
    [BIG_LITTLE_R50, SK, AA, DROPBLOCK],
    PaperFigures("Table 7 E10", 82.69, 54.12, 312),
    KD_600,
    **_BL_EVAL,
)
_alias(
    "table7_e11", "assemble_resnet50", "E11 Assemble-ResNet-50 (+ AutoAugment)"
)
_alias(
    "table7_e12",
    "assemble_resnet152",
    "E12 Assemble-ResNet-152 (KD teacher EfficientNet-B7)",
)


def names():
    """All preset names, in definition order."""
    return list(PRESETS)


def get(name):
    """Returns the `Preset` called `name`.

    Raises:
        OptionError: naming `preset`, the unknown name and its close
            matches.
    """
    if name not in PRESETS:
        close = difflib.get_close_matches(str(name), list(PRESETS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise OptionError(
            "preset",
            "{field}={name!r} is not a preset.{hint} All {count} names: "
            "`python -m tools.preset_table` or docs/models.md 'Presets'.",
            name=name,
            hint=hint,
            count=len(PRESETS),
        )
    # A copy: its recipe and model dicts were the registry's own (an edit
    # changed the preset, and its aliases, for the whole process).
    return copy.deepcopy(PRESETS[name])
