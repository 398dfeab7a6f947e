"""Name -> layer factories, one per tweak family; `None` means "off".

The shape follows timm `layers/create_attn.py` and `layers/blur_pool.py`:
the model builder asks a factory for a constructor and never tests
substrings of option names (the original's `'sconv' in anti_alias_type`).
"""

import functools

from assemble_tf.layers.blur_pool import BlurPool2D
from assemble_tf.layers.drop_block import DropBlock2D
from assemble_tf.layers.selective_kernel import SelectiveKernel
from assemble_tf.layers.squeeze_excite import SqueezeExcite

# Attention names: where each one acts in a residual block.
#   "sk"    replaces the 3x3 conv + BN + ReLU (Assemble 2x-channel SK).
#   "sknet" replaces it with the SKNet two-kernel SK (3x3 + dilated 3x3).
#   "se"    gates the block output before the residual add.
ATTENTION_NAMES = ("se", "sk", "sknet")
ANTI_ALIAS_PLACEMENTS = ("sconv", "proj", "max")


def _as_tuple(option, value):
    if value is None:
        return ()
    if isinstance(value, str):
        value = tuple(v.strip() for v in value.split(",") if v.strip())
    try:
        return tuple(value)
    except TypeError:
        raise ValueError(
            f"`{option}` must be None, a name, a comma-separated string or "
            f"a list of names. Received: {option}={value!r}"
        ) from None


def attention_names(attention):
    """The names of an `attention` option: None -> (), "sk,se" or
    ("sk", "se") -> ("sk", "se")."""
    return _as_tuple("attention", attention)


def create_attention(
    attention,
    se_ratio=16,
    sk_reduction=2,
    sk_min_dim=32,
    bn_momentum=0.997,
    bn_epsilon=1e-5,
):
    """Resolves the `attention` option into layer constructors.

    Args:
        attention: None, a name from `ATTENTION_NAMES`, or a combination such
            as `("sk", "se")` (paper Table 2 row C5).
        se_ratio: int. SE reduction ratio.
        sk_reduction: int. SK attention ratio r.
        sk_min_dim: int. SK attention floor L.
        bn_momentum: float. Momentum of the SK units' BNs (the model's).
        bn_epsilon: float. Epsilon of the SK units' BNs (the model's).

    Returns:
        `(middle, post)`: `middle(filters, strides, name)` builds the layer
        that replaces the 3x3 conv, or is None; `post(name)` builds the gate
        applied before the residual add, or is None.
    """
    names = _as_tuple("attention", attention)
    unknown = [n for n in names if n not in ATTENTION_NAMES]
    if unknown or len(set(names)) != len(names):
        raise ValueError(
            f"`attention` takes names from {ATTENTION_NAMES}, each at most "
            f"once. Received: attention={attention!r}"
        )
    if "sk" in names and "sknet" in names:
        raise ValueError(
            "`attention` may hold one SK variant, 'sk' or 'sknet'. "
            f"Received: attention={attention!r}"
        )
    middle = post = None
    for variant, key in (("assemble", "sk"), ("sknet", "sknet")):
        if key in names:
            middle = functools.partial(
                SelectiveKernel,
                variant=variant,
                reduction=sk_reduction,
                min_dim=sk_min_dim,
                bn_momentum=bn_momentum,
                bn_epsilon=bn_epsilon,
            )
    if "se" in names:
        post = functools.partial(SqueezeExcite, ratio=se_ratio)
    return middle, post


def create_anti_alias(anti_alias, filter_size=3):
    """Resolves the `anti_alias` option.

    Args:
        anti_alias: None, or placements from `ANTI_ALIAS_PLACEMENTS`:
            "sconv" (blur after the stride-1 3x3 of stride-2 blocks),
            "proj" (blur before the 1x1 of strided-conv shortcuts), "max"
            (stem max-pool at stride 1, then blur). Paper Table 3.
        filter_size: int. Binomial filter size, 1 to 7.

    Returns:
        `(placements, blur)`: a frozenset of placements and
        `blur(name) -> BlurPool2D` (None when `placements` is empty).
    """
    names = _as_tuple("anti_alias", anti_alias)
    unknown = [n for n in names if n not in ANTI_ALIAS_PLACEMENTS]
    if unknown:
        raise ValueError(
            f"`anti_alias` takes placements from {ANTI_ALIAS_PLACEMENTS}. "
            f"Received: anti_alias={anti_alias!r}"
        )
    if not names:
        return frozenset(), None
    if filter_size not in range(1, 8):
        raise ValueError(
            "`anti_alias_size` must be an integer from 1 to 7. "
            f"Received: anti_alias_size={filter_size!r}"
        )
    return frozenset(names), functools.partial(
        BlurPool2D, filter_size=filter_size, strides=2
    )


def _sequence(key, value):
    """`dropblock[key]` as a tuple; a scalar is an error naming the key
    (before: "TypeError: 'int' object is not iterable")."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(
            f"`dropblock['{key}']` must be a list, one value per stage, e.g. "
            f"{{'stages': (3, 4), 'gamma_scales': (0.25, 1.0)}}. Received: "
            f"{key}={value!r}"
        )
    return tuple(value)


def _check_layers(scales, common):
    """Builds the DropBlock layer of each scale once, for its checks;
    their errors named as the option's keys (before: the layer's own
    arguments, `gamma_scale` for `gamma_scales`)."""
    try:
        for scale in scales:
            DropBlock2D(gamma_scale=scale, **common)
    except ValueError as e:
        where = (
            " (an entry of `dropblock['gamma_scales']`)"
            if "gamma_scale" in str(e)
            else ""
        )
        raise ValueError(f"Invalid `dropblock` option{where}: {e}") from None


def create_drop_block(dropblock, num_stages=4):
    """Resolves the `dropblock` option into a per-stage constructor.

    Args:
        dropblock: None (off) or a dict with keys `stages` (1-based stage
            numbers, default (3, 4)), `block_size` (7), `gamma_scales` (one
            per stage, default (0.25, 1.0)), `keep_prob` (initial, 1.0) and
            `shared_mask` (False).
        num_stages: int. Number of residual stages of the network.

    Returns:
        `make(stage) -> (name -> DropBlock2D) or None`.
    """
    if dropblock is None:
        return lambda stage: None
    if not isinstance(dropblock, dict):
        raise ValueError(
            "`dropblock` must be None or a dict of DropBlock options. "
            f"Received: dropblock={dropblock!r}"
        )
    allowed = {
        "stages",
        "block_size",
        "gamma_scales",
        "keep_prob",
        "shared_mask",
    }
    extra = sorted(set(dropblock) - allowed)
    if extra:
        raise ValueError(
            f"Unknown `dropblock` keys {extra}; allowed: {sorted(allowed)}."
        )
    stages = _sequence("stages", dropblock.get("stages", (3, 4)))
    scales = _sequence(
        "gamma_scales", dropblock.get("gamma_scales", (0.25, 1.0))
    )
    if len(set(stages)) != len(stages):  # before: the last scale won
        raise ValueError(
            "`dropblock['stages']` names a stage more than once. "
            f"Received: stages={stages}"
        )
    if len(scales) != len(stages):
        raise ValueError(
            "`dropblock['gamma_scales']` needs one value per stage in "
            f"`dropblock['stages']`. Received: stages={stages}, "
            f"gamma_scales={scales}"
        )
    bad = [s for s in stages if s not in range(1, num_stages + 1)]
    if bad:
        raise ValueError(
            f"`dropblock['stages']` are stage numbers 1..{num_stages}. "
            f"Received: stages={stages}"
        )
    common = dict(
        keep_prob=dropblock.get("keep_prob", 1.0),
        block_size=dropblock.get("block_size", 7),
        shared_mask=dropblock.get("shared_mask", False),
    )
    _check_layers(scales, common)  # early, before the model is built
    per_stage = dict(zip(stages, scales, strict=True))

    def make(stage):
        if stage not in per_stage:
            return None
        return functools.partial(
            DropBlock2D, gamma_scale=per_stage[stage], **common
        )

    return make
