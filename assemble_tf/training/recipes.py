"""Fine-tuning recipes (transfer learning and retrieval), by name.

Lee et al. 2020 (https://arxiv.org/abs/2001.06268), section 5 and the
authors' scripts `scripts/finetuning_{assemble,vanila}_on_food101.sh`
(github.com/clovaai/assembled-cnn): 100 epochs, batch 256, cosine from 0.01
with 5 warm-up epochs, weight decay 1e-3, BN momentum 0.966, the ImageNet
weights without the classifier and without BN moving statistics (only
trainable variables were restored), evaluation at 224 (`imagenet`: shorter
side 256, centre crop 224). The fine-tuning regularizers of the paper are
DropBlock (keep probability 0.9 -> 0.7), Mixup (type 1), AutoAugment
`good` (the CIFAR-10 policy) and label smoothing 0.1.

The named recipes:

* `vanilla`, `assemble`: the two published scripts (no regularizer / all
  four), for any backbone and dataset.
* `table8_f0` ... `table8_f13`: the rows of Table 8 (Food-101): the backbone
  preset of the row and the regularizers switched on during fine-tuning,
  with the paper's Food-101 top-1 and (not AlexNet-normalised) mCE.
* `assemble_fgvc50`: F13's recipe for any FGVC set (Assemble-ResNet-FGVC-50,
  the paper's FGVC figure: Food-101, Stanford Cars, Flowers-102,
  FGVC-Aircraft, Oxford-IIIT Pets).
* `retrieval_s0` ... `retrieval_s9`: the retrieval ablation on Stanford
  Online Products (recall@1), and `assemble_ir50_{sop,cub200,cars196}`
  (Assemble-ResNet-IR-50, Table 15). The paper gives no loss or
  hyper-parameters for retrieval; every S / IR row uses one recipe
  (`RETRIEVAL_BASE`): NormSoftmax (Zhai & Wu, "Classification is a Strong
  Baseline for Deep Metric Learning", BMVC 2019, arXiv 1811.12649) on a
  512-d BN'd embedding, cosine logits / 0.05, class-disjoint training
  halves, 30 epochs at batch 128 with 1 warm-up epoch, with the Food-101
  protocol's optimiser otherwise. The rows then
  differ only where the paper says they do.

A recipe is {config group: {field: value}} plus the backbone preset it
starts from (None: any), its default dataset and the paper's figures. It is
applied after the preset's ImageNet recipe and before the flags a user sets
explicitly.
"""

import dataclasses
import difflib

from official.utils.misc.validation import OptionError

_COMMON = {
    "model": {"bn_momentum": 0.966},
    "data": {"image_size": 224, "eval_preprocessing": "imagenet"},
    "train": {
        "epochs": 100.0,
        "batch_size": 256,
        "base_learning_rate": 0.01,
        "lr_schedule": "cosine",
        "warmup_epochs": 5.0,
        "weight_decay": 1e-3,
        "kd_temperature": 0.0,
        "warm_start_head": False,
        # The original restored trainable variables only: BN statistics
        # restart at 0 / 1 (hence momentum 0.966).
        "warm_start_bn_stats": False,
        "dropblock_keep_prob": None,
    },
    "augment": {"mixup_type": 0, "autoaugment": "none", "label_smoothing": 0.0},
}

# The fine-tuning regularizers and the fields each one sets.
REGULARIZERS = {
    "DropBlock": {
        "model": {"add_dropblock": True},
        "train": {"dropblock_keep_prob": (0.9, 0.7)},
    },
    "Mixup": {"augment": {"mixup_type": 1}},
    "AutoAugment": {"augment": {"autoaugment": "good"}},
    "LS": {"augment": {"label_smoothing": 0.1}},
}

# Retrieval (our choice, see the module docstring): NormSoftmax on a 512-d
# embedding, trained on the class-disjoint training half.
RETRIEVAL_BASE = {
    "model": {
        "embedding_size": 512,
        "classifier": "cosine",
        "cosine_temperature": 0.05,
    },
    "train": {"epochs": 30.0, "batch_size": 128, "warmup_epochs": 1.0},
}


def _merge(*parts):
    out = {}
    for part in parts:
        for group, values in part.items():
            out.setdefault(group, {}).update(values)
    return out


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A named fine-tuning recipe.

    Attributes:
        name: the name the `recipe` option takes.
        description: one line.
        regularizers: the fine-tuning regularizers (keys of `REGULARIZERS`).
        preset: the backbone preset the row starts from, or None (any).
        source: the default dataset (a tfds name), or None.
        retrieval: class-disjoint retrieval training (NormSoftmax).
        paper: {dataset: {metric: value}} of the paper, e.g.
            {"food101": {"top1": 92.47, "mce": 41.99}}.
        figure: where the paper's numbers are (e.g. "Table 8 F13").
    """

    name: str
    description: str
    regularizers: tuple = ()
    preset: str | None = None
    source: str | None = None
    retrieval: bool = False
    paper: dict = dataclasses.field(default_factory=dict)
    figure: str = ""

    @property
    def overrides(self):
        """{group: {field: value}}, a fresh copy."""
        parts = [_COMMON]
        if self.retrieval:
            parts.append(RETRIEVAL_BASE)
        parts += [REGULARIZERS[r] for r in self.regularizers]
        return _merge(*parts)


RECIPES = {}


def _add(recipe):
    unknown = set(recipe.regularizers) - set(REGULARIZERS)
    if unknown:
        raise ValueError(f"Unknown regularizers {sorted(unknown)}")
    RECIPES[recipe.name] = recipe


_ALL = ("DropBlock", "Mixup", "AutoAugment", "LS")
_add(Recipe("vanilla", "The authors' vanilla Food-101 script"))
_add(Recipe("assemble", "The authors' Assemble Food-101 script", _ALL))

# Table 8: (backbone preset, backbone in the paper's words, fine-tuning
# regularizers, Food-101 top-1, Food-101 mCE not normalised by AlexNet).
TABLE8 = (
    ("resnet50", "R50", (), 86.99, 61.50),
    ("resnet50d", "R50D", (), 87.63, 62.12),
    ("table6_m2", "R50D+SK", (), 89.77, 57.20),
    ("table6_m3", "R50D+SK+BL", (), 90.15, 57.16),
    ("table6_m4", "R50D+SK+BL+AA", (), 90.37, 56.66),
    ("table6_m4", "R50D+SK+BL+AA", _ALL[:1], 91.25, 53.13),
    ("table6_m4", "R50D+SK+BL+AA", _ALL[:2], 91.64, 48.53),
    ("table6_m4", "R50D+SK+BL+AA", _ALL[:3], 91.85, 41.73),
    ("table6_m4", "R50D+SK+BL+AA", _ALL, 91.76, 41.40),
    ("assemble_resnet50", "R50D+SK+BL+AA+REG", (), 90.63, 53.98),
    ("assemble_resnet50", "R50D+SK+BL+AA+REG", _ALL[:1], 91.62, 51.01),
    ("assemble_resnet50", "R50D+SK+BL+AA+REG", _ALL[:2], 92.11, 45.73),
    ("assemble_resnet50", "R50D+SK+BL+AA+REG", _ALL[:3], 92.21, 41.69),
    ("assemble_resnet50", "R50D+SK+BL+AA+REG", _ALL, 92.47, 41.99),
)
for _i, (_preset, _words, _regs, _top1, _mce) in enumerate(TABLE8):
    _add(
        Recipe(
            f"table8_f{_i}",
            f"F{_i} {_words}, fine-tuned with "
            f"{'+'.join(_regs) or 'no regularizer'}",
            _regs,
            _preset,
            "food101",
            paper={"food101": {"top1": _top1, "mce": _mce}},
            figure=f"Table 8 F{_i}",
        )
    )

# Assemble-ResNet-FGVC-50: F13 on every FGVC set (the paper's FGVC figure;
# top-1 per dataset from the transfer catalogue).
FGVC_TOP1 = {
    "food101": 92.5,
    "cars196": 94.4,
    "oxford_flowers102": 98.9,
    "fgvc_aircraft": 92.4,
    "oxford_iiit_pet": 94.3,
}
_add(
    Recipe(
        "assemble_fgvc50",
        "Assemble-ResNet-FGVC-50: F13's recipe on any FGVC set",
        _ALL,
        "assemble_resnet50",
        None,
        paper={d: {"top1": v} for d, v in FGVC_TOP1.items()},
        figure="FGVC figure (Table 9)",
    )
)

# Retrieval S rows on Stanford Online Products (recall@1). REG here is the
# ImageNet recipe LS + Mixup + DropBlock + KD without AutoAugment: Table 7
# E8 (R50D + SK).
SOP = "stanford_online_products"
RETRIEVAL_ROWS = (
    ("resnet50", "R50", (), 82.9),
    ("resnet50d", "R50D", (), 84.2),
    ("table6_m2", "R50D+SK", (), 85.4),
    ("table6_m3", "R50D+SK+BL", (), 85.2),
    ("table6_m4", "R50D+SK+BL+AA", (), 85.1),
    ("table6_m2", "R50D+SK", ("DropBlock",), 85.9),
    ("table6_m2", "R50D+SK", ("DropBlock", "AutoAugment"), 83.7),
    ("table7_e8", "R50D+SK+REG", (), 85.2),
    ("table7_e8", "R50D+SK+REG", ("DropBlock",), 85.9),
    ("table7_e8", "R50D+SK+REG", ("DropBlock", "AutoAugment"), 84.0),
)
for _i, (_preset, _words, _regs, _r1) in enumerate(RETRIEVAL_ROWS):
    _add(
        Recipe(
            f"retrieval_s{_i}",
            f"S{_i} {_words}, retrieval fine-tuning with "
            f"{'+'.join(_regs) or 'no regularizer'}",
            _regs,
            _preset,
            SOP,
            retrieval=True,
            paper={SOP: {"recall@1": _r1}},
            figure=f"retrieval ablation S{_i}",
        )
    )

# Assemble-ResNet-IR-50 (Table 15): R50D+SK+REG everywhere; recall@1 (the
# paper's ResNet-50 in the description).
IR50 = (
    ("sop", SOP, ("DropBlock",), 85.9, 82.9),
    ("cub200", "caltech_birds2011", ("DropBlock",), 80.3, 75.9),
    ("cars196", "cars196", ("DropBlock", "LS", "AutoAugment"), 96.1, 92.9),
)
for _key, _source, _regs, _r1, _r50 in IR50:
    _add(
        Recipe(
            f"assemble_ir50_{_key}",
            f"Assemble-ResNet-IR-50 on {_source} ({'+'.join(_regs)}; "
            f"ResNet-50: recall@1 {_r50})",
            _regs,
            "table7_e8",
            _source,
            retrieval=True,
            paper={_source: {"recall@1": _r1}},
            figure="Table 15",
        )
    )


def get(name):
    """The `Recipe` called `name`; unknown names get close matches."""
    if name not in RECIPES:
        close = difflib.get_close_matches(name, list(RECIPES), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise OptionError(
            "recipe",
            "{field}={name!r} is not a recipe.{hint} "
            "All {count}: {list_recipes} of tools.finetune, or "
            "docs/transfer.md.",
            ["list_recipes"],
            name=name,
            hint=hint,
            count=len(RECIPES),
        )
    return RECIPES[name]


def default_for(preset):
    """'assemble' for the Assemble / regularized presets, else 'vanilla'."""
    return "assemble" if "assemble" in preset else "vanilla"


def table():
    """One row per recipe: name, backbone, regularizers, dataset, paper."""
    rows = []
    for r in RECIPES.values():
        figures = "; ".join(
            f"{d} " + ", ".join(f"{k} {v}" for k, v in m.items())
            for d, m in r.paper.items()
        )
        rows.append(
            {
                "recipe": r.name,
                "backbone": r.preset or "(any)",
                "regularizers": "+".join(r.regularizers) or "-",
                "dataset": r.source or "(any)",
                "kind": "retrieval" if r.retrieval else "classification",
                "paper": f"{figures} ({r.figure})" if figures else "-",
            }
        )
    return rows


def format_table(rows):
    """`table()` as a markdown table."""
    keys = list(rows[0])
    lines = [
        "| " + " | ".join(keys) + " |",
        "|" + "---|" * len(keys),
    ]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)
