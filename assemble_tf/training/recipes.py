"""Fine-tuning recipes (transfer learning).

Lee et al. 2020 (https://arxiv.org/abs/2001.06268), section 4 and the
authors' scripts `scripts/finetuning_{assemble,vanila}_on_food101.sh`
(github.com/clovaai/assembled-cnn): 100 epochs, batch
256, cosine from 0.01 with 5 warm-up epochs, weight decay 1e-3, BN momentum
0.966, the ImageNet weights without the classifier and without BN moving
statistics (only trainable variables were restored), evaluation at 224
(`imagenet`: shorter side 256, centre crop 224). The Assemble recipe adds
Mixup (type 1), AutoAugment `good`, label smoothing 0.1 and DropBlock with
keep probability 0.9 -> 0.7. These two scripts are the only fine-tuning
configurations the authors published; the paper applies the same protocol to
Food-101, Stanford Cars, Flowers-102, FGVC-Aircraft and Oxford-IIIT Pets.

Each recipe is {config group: {field: value}}, applied after the preset's
ImageNet recipe and before the flags a user sets explicitly.
"""

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
    },
}


def _recipe(augment, train):
    out = {group: dict(values) for group, values in _COMMON.items()}
    out["augment"] = augment
    out["train"].update(train)
    return out


FINETUNE_RECIPES = {
    "assemble": _recipe(
        {
            "mixup_type": 1,
            "autoaugment": "good",
            "label_smoothing": 0.1,
        },
        {"dropblock_keep_prob": (0.9, 0.7)},
    ),
    "vanilla": _recipe(
        {"mixup_type": 0, "autoaugment": "none", "label_smoothing": 0.0},
        {"dropblock_keep_prob": None},
    ),
}


def get(name):
    """A copy of recipe `name` ({group: {field: value}})."""
    if name not in FINETUNE_RECIPES:
        raise ValueError(
            f"--recipe={name!r} is not one of {sorted(FINETUNE_RECIPES)}."
        )
    return {g: dict(v) for g, v in FINETUNE_RECIPES[name].items()}


def default_for(preset):
    """'assemble' for the Assemble / regularized presets, else 'vanilla'."""
    return "assemble" if "assemble" in preset else "vanilla"
