"""Losses of the Assemble-ResNet recipes, all computed in float32.

Follows clovaai/assembled-cnn `losses/cls_losses.py` and
`nets/run_loop_classification.py` (Lee et al. 2020,
https://arxiv.org/abs/2001.06268):

* supervised: cross-entropy against soft targets (one-hot, then Mixup, then
  label smoothing, all done by the input pipeline);
* knowledge distillation (Hinton et al. 2015,
  https://arxiv.org/abs/1503.02531): T^2 * CE(p_teacher, softmax(z / T)),
  weight 1:1 with the supervised term, not label-smoothed;
* weight decay: wd * 1/2 * sum(w^2) over every trainable variable except
  BatchNorm gamma / beta (the FC bias is decayed, as in master).
"""

import keras
import tensorflow as tf


def soft_cross_entropy(targets, logits):
    """Per-example CE of float32 logits against soft targets, [B]."""
    logits = tf.cast(logits, tf.float32)
    targets = tf.cast(targets, tf.float32)
    return -tf.reduce_sum(targets * tf.nn.log_softmax(logits), axis=-1)


def distillation_loss(teacher_probs, logits, temperature):
    """T^2 * CE(teacher, softmax(logits / T)), per example, [B].

    With a one-hot teacher and T = 1 this is the ordinary cross-entropy.
    """
    t = float(temperature)
    scaled = tf.cast(logits, tf.float32) / t
    return (t * t) * soft_cross_entropy(teacher_probs, scaled)


def is_decayed(variable):
    """True for kernels, dense biases and SK/SE fcs; False for BN params."""
    path = getattr(variable, "path", variable.name)
    return variable.trainable and not any(
        part in path for part in ("/gamma", "/beta")
    )


def decayed_variables(model):
    """The variables weight decay applies to (BN gamma / beta excluded)."""
    out = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            continue
        out.extend(v for v in layer._trainable_variables)
    return out


def weight_decay_loss(variables, weight_decay):
    """wd * 1/2 * sum of squares (TF `l2_loss` convention), float32."""
    if not weight_decay or not variables:
        return tf.constant(0.0, tf.float32)
    return weight_decay * tf.add_n(
        [tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in variables]
    )
