"""The original TF1 variable scopes of our layers, from their names.

The authors' graph (clovaai/assembled-cnn `nets/resnet_model.py`, branch
master; Lee et al. 2020, https://arxiv.org/abs/2001.06268) names a variable
by its TF1 variable scope and the layer's creation order inside that scope:
the k-th `conv2d` of `resnet_model/stage1/big1` is `conv2d_<k>`. Our layer
names are deterministic and hierarchical (`stage1_big_block1_1_conv`), so
the scope and the creation order of every layer follow from its name alone:

    stem_<i>_{conv,bn}          resnet_model, or with BigLittleNet
                                resnet_model/stage0 (convs) and
                                resnet_model/stage0_1 (BNs)
    stem_bl_<part>_{conv,bn}    resnet_model/stage0/pool
    stage<s>_block<b>_<unit>    resnet_model, or resnet_model/stage<s> in a
                                BigLittleNet (its stage 4)
    stage<s>_{big,little,merge}_block<b>_<unit>
                                resnet_model/stage<s>/{big,little,merge}<s>
    stage<s>_little_expand_*    resnet_model/stage<s>/little<s>, last
    head_embedding[_bn]         resnet_model (the BN: .../embedding)
    head_dense                  resnet_model (`dense`)

where a unit is `shortcut`, `1`, `2`, `2b`, `3` (each `_conv` then `_bn`),
`sk` or `se`, created in that order within a block. A model is a
BigLittleNet (resnet_version=2) when it has the BL stem (`stem_bl_*`).
"""

import re

from assemble_tf.layers.cosine_classifier import CosineClassifier
from assemble_tf.layers.gem import GeMPooling2D

ROOT = "resnet_model"
# Creation order of the parts of a block, of the BL stem and of the
# branches of a BL stage.
_UNIT_ORDER = {
    "shortcut": 0,
    "1": 1,
    "2": 2,
    "sk": 2,
    "2b": 3,
    "3": 3,
    "se": 4,
}
_BL_STEM_ORDER = ("big", "little1", "little2", "little3", "merge")
_BRANCH_ORDER = {None: 0, "big": 0, "little": 1, "merge": 2}
_CONV_BN = {"conv": 0, "bn": 1}

_STEM = re.compile(r"stem_(?P<index>\d+)_(?P<kind>conv|bn)")
_BL_STEM = re.compile(
    rf"stem_bl_(?P<part>{'|'.join(_BL_STEM_ORDER)})_(?P<kind>conv|bn)"
)
_BLOCK = re.compile(
    r"stage(?P<stage>\d+)(?:_(?P<branch>big|little|merge))?"
    r"_block(?P<block>\d+)_(?:(?P<unit>shortcut|1|2|2b|3)_(?P<kind>conv|bn)"
    r"|(?P<attention>sk|se))"
)
_EXPAND = re.compile(r"stage(?P<stage>\d+)_little_expand_(?P<kind>conv|bn)")
_HEAD = {
    "head_embedding": ("embedding", ROOT, (3, 0, 0)),
    "head_embedding_bn": ("bn", f"{ROOT}/embedding", (3, 0, 1)),
    "head_dense": ("dense", ROOT, (3, 1, 0)),
}


def is_big_little(model):
    """Whether `model` is a BigLittleNet (it has the BL stem module)."""
    return any(layer.name.startswith("stem_bl_") for layer in model.layers)


def _stage_scope(stage, branch, big_little):
    if branch:
        return f"{ROOT}/stage{stage}/{branch}{stage}"
    return f"{ROOT}/stage{stage}" if big_little else ROOT


def original_place(name, big_little):
    """`(kind, scope, order)` of the layer called `name`, or None.

    Args:
        name: str. A layer name of a model made by `build_resnet`.
        big_little: bool. Whether that model is a BigLittleNet.

    Returns:
        None for a layer the original has no variables for (ReLU, pad,
        pooling, blur, DropBlock, ...); else its kind (conv, bn, sk, se,
        embedding, dense), its original variable scope and a key that sorts
        the layers of a scope in the original creation order.
    """
    if name in _HEAD:
        return _HEAD[name]
    if m := _STEM.fullmatch(name):
        kind = m["kind"]
        scope = ROOT
        if big_little:
            scope = f"{ROOT}/stage0" if kind == "conv" else f"{ROOT}/stage0_1"
        return kind, scope, (0, int(m["index"]), _CONV_BN[kind])
    if m := _BL_STEM.fullmatch(name):
        order = (1, _BL_STEM_ORDER.index(m["part"]), _CONV_BN[m["kind"]])
        return m["kind"], f"{ROOT}/stage0/pool", order
    if m := _BLOCK.fullmatch(name):
        stage, branch = int(m["stage"]), m["branch"]
        unit = m["unit"] or m["attention"]
        kind = m["kind"] or m["attention"]
        order = (
            2,
            stage,
            _BRANCH_ORDER[branch],
            0,
            int(m["block"]),
            _UNIT_ORDER[unit],
            _CONV_BN.get(kind, 0),
        )
        return kind, _stage_scope(stage, branch, big_little), order
    if m := _EXPAND.fullmatch(name):
        stage = int(m["stage"])
        order = (
            2,
            stage,
            _BRANCH_ORDER["little"],
            1,
            0,
            0,
            _CONV_BN[m["kind"]],
        )
        return m["kind"], _stage_scope(stage, "little", big_little), order
    return None


def original_scopes(model):
    """The layers of `model` per original variable scope, in creation order.

    Args:
        model: a `keras.Model` made by `build_resnet` / `build_model`.

    Returns:
        `{scope: [(kind, layer), ...]}`, kinds as `original_place`'s, with
        "cosine" for a `CosineClassifier` head (it has no original name).

    Raises:
        ValueError: a layer with weights whose name has no original place.
    """
    big_little = is_big_little(model)
    placed = []
    for layer in model.layers:
        if isinstance(layer, GeMPooling2D) and (
            layer.p != 3.0 or layer.epsilon != 1e-6
        ):
            # The original's pool_type='gem' is p = 3 with a 1e-6 clip;
            # another GeM has no variables to tell it by.
            raise ValueError(
                f"{layer.name}: GeM with p={layer.p:g}, epsilon="
                f"{layer.epsilon:g}; the original's GeM has p=3 and "
                "epsilon=1e-6."
            )
        place = original_place(layer.name, big_little)
        if place is None:
            if layer.weights:
                raise ValueError(
                    f"{layer.name}: a layer with weights that the original "
                    "graph does not name (not a layer of `build_resnet`)."
                )
            continue
        kind, scope, order = place
        if isinstance(layer, CosineClassifier):
            kind = "cosine"
        placed.append((scope, order, kind, layer))
    scopes = {}
    for scope, _, kind, layer in sorted(placed, key=lambda p: p[:2]):
        scopes.setdefault(scope, []).append((kind, layer))
    return scopes
