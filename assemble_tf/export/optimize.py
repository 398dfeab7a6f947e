"""Inference-speed transforms: BatchNorm folding.

At inference a BatchNorm after a convolution is an affine map per output
channel, y = g (conv(x) - m) / sqrt(v + eps) + b, so it can be folded into
the convolution: kernel' = kernel * s and bias' = b - m * s with
s = g / sqrt(v + eps) (Jacob et al. 2018, https://arxiv.org/abs/1712.05877,
section 3.2). `fold_bn_graph` clones a model with every such conv + BN pair
(`<x>_conv` feeding only `<x>_bn`) replaced by one biased conv;
`fold_batch_norm` fills it from the trained model; `folded_copy` does both.
A layer with conv + BN pairs inside (the SK unit: `folded_pairs()`, a
`fold_bn` argument) is rebuilt with `fold_bn=True` and its pairs fused the
same way. BNs that follow no conv (the embedding head's) stay.

    folded, count = optimize.folded_copy(model)
"""

import collections

import keras
import numpy as np

_CONV, _BN = "_conv", "_bn"


def foldable_pairs(model):
    """`{conv name: bn name}` of the conv + BN pairs BN folding fuses.

    A pair is a `keras.layers.Conv2D` named `<x>_conv` whose output goes
    to a `BatchNormalization` named `<x>_bn` and nowhere else.
    """
    uses = collections.Counter(map(id, keras.tree.flatten(model.outputs)))
    layers = {}
    for layer in model.layers:
        layers[layer.name] = layer
        if not isinstance(layer, keras.layers.InputLayer):
            uses.update(map(id, keras.tree.flatten(layer.input)))
    pairs = {}
    for name, layer in layers.items():
        if not (
            isinstance(layer, keras.layers.BatchNormalization)
            and name.endswith(_BN)
        ):
            continue
        conv = layers.get(name[: -len(_BN)] + _CONV)
        if (
            isinstance(conv, keras.layers.Conv2D)
            and layer.input is conv.output
            and uses[id(conv.output)] == 1
        ):
            pairs[conv.name] = name
    return pairs


def fold_bn_graph(model):
    """A clone of `model` with its foldable conv + BN pairs as biased convs.

    The layers keep their names and configurations (dtype policy
    included); the folded convs gain a bias, their BNs are left out. The
    weights are new: `fold_batch_norm(model, clone)` fills them.

    Args:
        model: a functional `keras.Model`.

    Returns:
        The folded functional `keras.Model` (same name, inputs, outputs).
    """
    pairs = foldable_pairs(model)
    folded_bns = set(pairs.values())

    def clone(layer):
        config = layer.get_config()
        if layer.name in pairs:
            config["use_bias"] = True
        if hasattr(layer, "folded_pairs"):
            config["fold_bn"] = True
        return layer.__class__.from_config(config)

    def call(layer, *args, **kwargs):
        if layer.name in folded_bns:
            return args[0]
        return layer(*args, **kwargs)

    return keras.models.clone_model(
        model, clone_function=clone, call_function=call
    )


def fold_batch_norm(model, folded):
    """Copies `model`'s weights into `folded` with every conv + BN fused.

    Args:
        model: the trained model (BN layers named `<x>_bn` after `<x>_conv`).
        folded: its `fold_bn_graph`.

    Returns:
        The number of BN layers folded.

    Raises:
        ValueError: when the two models do not correspond.
    """
    source = {layer.name: layer for layer in model.layers}
    folded_count = 0
    for layer in folded.layers:
        if not layer.weights:
            continue
        if layer.name not in source:
            raise ValueError(
                f"{layer.name} of the folded model has no counterpart."
            )
        original = source[layer.name]
        bn_name = layer.name[: -len(_CONV)] + _BN
        if layer.name.endswith(_CONV) and bn_name in source:
            _fold_pair(original, source[bn_name], layer)
            folded_count += 1
        elif getattr(layer, "fold_bn", False) and not original.fold_bn:
            folded_count += _fold_inner_pairs(original, layer)
        else:
            layer.set_weights(original.get_weights())
    return folded_count


def _fold_pair(conv, bn, target):
    """Fills the biased conv `target` with `conv` + `bn` fused."""
    gamma, beta, mean, var = (
        np.asarray(w, np.float64) for w in bn.get_weights()
    )
    scale = gamma / np.sqrt(var + bn.epsilon)
    kernel = np.asarray(conv.kernel, np.float64) * scale
    bias = beta - mean * scale
    target.kernel.assign(kernel.astype(target.kernel.dtype))
    target.bias.assign(bias.astype(target.bias.dtype))


def _fold_inner_pairs(original, layer):
    """Fills `layer` (built with `fold_bn=True`) from `original`: its
    `folded_pairs()` fused, its other sub-layers copied. Returns the number
    of BNs folded."""
    pairs = original.folded_pairs()
    folded_bns = set(pairs.values())
    for attr, sub in vars(original).items():
        if not isinstance(sub, keras.layers.Layer) or attr in folded_bns:
            continue
        if attr in pairs:
            _fold_pair(
                sub, getattr(original, pairs[attr]), getattr(layer, attr)
            )
        elif sub.weights:
            getattr(layer, attr).set_weights(sub.get_weights())
    return len(pairs)


def folded_copy(model):
    """`(folded model with model's weights, number of BNs folded)`."""
    folded = fold_bn_graph(model)
    return folded, fold_batch_norm(model, folded)
