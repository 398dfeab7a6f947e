"""Keras 3 layers of Assemble-TF (all registered serializable)."""

from assemble_tf.layers.avg_pool import PaddedAveragePool2D
from assemble_tf.layers.batch_norm import BatchNorm, batch_norm_layers
from assemble_tf.layers.big_little import BigLittleMerge
from assemble_tf.layers.blur_pool import BlurPool2D, binomial_kernel
from assemble_tf.layers.conv import Conv2D
from assemble_tf.layers.cosine_classifier import CosineClassifier
from assemble_tf.layers.drop_block import DropBlock2D
from assemble_tf.layers.gem import GeMPooling2D
from assemble_tf.layers.selective_kernel import SelectiveKernel
from assemble_tf.layers.squeeze_excite import SqueezeExcite


def set_dropblock_keep_prob(model, keep_prob):
    """Sets the keep probability of every DropBlock2D layer in `model`.

    Under TensorFlow the layers hold it in a variable that traced steps
    read. Under JAX it is a number that Keras' jitted train step (`fit`,
    `train_on_batch`) traces in as a constant: when it changes, that step
    is rebuilt (before: the new value was ignored once the step had been
    compiled). The project's own JAX step passes it in
    (`drop_block.keep_prob_override`) and is not rebuilt.

    Returns the number of layers updated (0 when DropBlock is off).
    """
    import keras

    count, changed = 0, False
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, DropBlock2D):
            layer.set_keep_prob(keep_prob)
            # Against the value the compiled step traced (before: against
            # the layer's last value, which its own setter may have moved
            # already, and the step kept the old one).
            traced = layer._traced_keep_prob
            changed |= traced is not None and traced != float(keep_prob)
            count += 1
    compiled = getattr(model, "train_function", None) is not None
    if changed and compiled and keras.backend.backend() != "tensorflow":
        model.make_train_function(force=True)
    return count


__all__ = [
    "BatchNorm",
    "batch_norm_layers",
    "BigLittleMerge",
    "BlurPool2D",
    "Conv2D",
    "CosineClassifier",
    "DropBlock2D",
    "GeMPooling2D",
    "PaddedAveragePool2D",
    "SelectiveKernel",
    "SqueezeExcite",
    "binomial_kernel",
    "set_dropblock_keep_prob",
]
