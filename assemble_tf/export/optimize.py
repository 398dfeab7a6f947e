"""Inference-speed transforms: BatchNorm folding.

At inference a BatchNorm after a convolution is an affine map per output
channel, y = g (conv(x) - m) / sqrt(v + eps) + b, so it can be folded into
the convolution: kernel' = kernel * s and bias' = b - m * s with
s = g / sqrt(v + eps) (Jacob et al. 2018, https://arxiv.org/abs/1712.05877,
section 3.2). `build_resnet(fold_bn=True)` builds the same graph with biased
convs and no BN layers; `fold_batch_norm` fills it from a trained model.
"""

import numpy as np


def fold_batch_norm(model, folded):
    """Copies `model`'s weights into `folded` with every conv + BN fused.

    Args:
        model: the trained model (BN layers named `<x>_bn` after `<x>_conv`).
        folded: the same architecture built with `fold_bn=True`.

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
        bn_name = layer.name[: -len("_conv")] + "_bn"
        if layer.name.endswith("_conv") and bn_name in source:
            bn = source[bn_name]
            gamma, beta, mean, var = (
                np.asarray(w, np.float64) for w in bn.get_weights()
            )
            scale = gamma / np.sqrt(var + bn.epsilon)
            kernel = np.asarray(original.kernel, np.float64) * scale
            bias = beta - mean * scale
            layer.kernel.assign(kernel.astype(layer.kernel.dtype))
            layer.bias.assign(bias.astype(layer.bias.dtype))
            folded_count += 1
        else:
            layer.set_weights(original.get_weights())
    return folded_count
