"""Parameter and multiply-add (MAC) counts of a built Keras model.

MACs count convolutions (dense, depthwise and the blur filters), dense
layers and the 1x1 attention convs of SE and SK, as timm / fvcore-style
counters do; BN, activations, pooling and additions are not counted. This
convention gives ResNet-50 4.09 GMACs at 224 (Lee et al. 2020, Table 12).
"""

import math

import keras


def count_params(model):
    """Returns `(total, trainable, non_trainable)` parameter counts."""
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    total = model.count_params()
    return total, trainable, total - trainable


def _shape(tensor):
    return tuple(tensor.shape[1:])


def count_macs(model):
    """Multiply-adds of one forward pass of one example.

    The model must have a static input size (`image_size` set).

    Raises:
        ValueError: when the input size is not static.
    """
    if any(d is None for d in model.inputs[0].shape[1:]):
        raise ValueError(
            "count_macs needs a static input size; build the model with "
            f"image_size=N. Received input shape {model.inputs[0].shape}"
        )
    total = 0
    for layer in model.layers:
        if hasattr(layer, "macs"):
            total += layer.macs(_shape(layer.input))
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            out = _shape(layer.output)
            kh, kw = layer.kernel_size
            total += out[0] * out[1] * out[2] * kh * kw
        elif isinstance(layer, keras.layers.Conv2D):
            out = _shape(layer.output)
            kh, kw = layer.kernel_size
            cin = _shape(layer.input)[-1]
            total += out[0] * out[1] * out[2] * kh * kw * cin // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            total += _shape(layer.input)[-1] * layer.units
    return total
