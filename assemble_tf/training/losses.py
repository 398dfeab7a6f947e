"""Losses of the Assemble-ResNet recipes, in float32, on every backend.

Follows clovaai/assembled-cnn `losses/cls_losses.py` and
`nets/run_loop_classification.py` (Lee et al. 2020,
https://arxiv.org/abs/2001.06268):

* supervised: cross-entropy against soft targets (one-hot, then Mixup, then
  label smoothing, all done by `BatchPostprocess` before the model runs);
* knowledge distillation (Hinton et al. 2015,
  https://arxiv.org/abs/1503.02531): T^2 * CE(p_teacher, softmax(z / T)),
  weight 1:1 with the supervised term, not label-smoothed;
* weight decay: wd * 1/2 * sum(w^2) over every trainable variable except
  BatchNorm gamma / beta (the FC bias is decayed, as in master).

Written once in `keras.ops`: the TensorFlow step and the JAX step call the
same functions (the JAX step on the values of a stateless call).
"""

import keras
from keras import ops


def soft_cross_entropy(targets, logits):
    """Per-example CE of float32 logits against soft targets, [B]."""
    logits = ops.cast(logits, "float32")
    targets = ops.cast(targets, "float32")
    return -ops.sum(targets * ops.log_softmax(logits, axis=-1), axis=-1)


def distillation_loss(teacher_probs, logits, temperature):
    """T^2 * CE(teacher, softmax(logits / T)), per example, [B].

    With a one-hot teacher and T = 1 this is the ordinary cross-entropy.
    """
    t = float(temperature)
    scaled = ops.cast(logits, "float32") / t
    return (t * t) * soft_cross_entropy(teacher_probs, scaled)


def recipe_loss(batch, logits, kd_temperature, global_batch):
    """The data term of a step: sum of CE (+ KD) over the batch / global
    batch size, so that summing over replicas gives the global mean.

    Args:
        batch: dict with `targets` [B, K] and, with KD, `teacher_probs`.
        logits: [B, K] in any float dtype.
        kd_temperature: float; 0 turns KD off.
        global_batch: examples per step over all replicas.
    """
    loss = ops.sum(soft_cross_entropy(batch["targets"], logits))
    if kd_temperature > 0:
        loss = loss + ops.sum(
            distillation_loss(batch["teacher_probs"], logits, kd_temperature)
        )
    return loss / ops.cast(global_batch, "float32")


def decayed_variables(model):
    """The variables weight decay applies to, in `trainable_variables` order.

    Every trainable variable except BatchNorm gamma / beta. A frozen layer
    (`layer.trainable = False`, e.g. `freeze_backbone`) has none, so its
    weights are neither updated nor counted in the L2 term.
    """
    bn = {
        id(v)
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
        for v in layer.weights
    }
    return [v for v in model.trainable_variables if id(v) not in bn]


def weight_decay_loss(values, weight_decay):
    """wd * 1/2 * sum of squares (TF `l2_loss` convention), float32.

    `values` are variables (TensorFlow) or their arrays (a JAX stateless
    step).
    """
    if not weight_decay or not values:
        return ops.convert_to_tensor(0.0, "float32")
    total = ops.sum(
        ops.stack([ops.sum(ops.square(ops.cast(v, "float32"))) for v in values])
    )
    return weight_decay * 0.5 * total
