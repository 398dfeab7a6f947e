"""Batch normalization on TensorFlow's fused kernel, in training and inference.

Ioffe & Szegedy, "Batch Normalization", ICML 2015,
https://arxiv.org/abs/1502.03167. The original Assemble-ResNet code
(clovaai/assembled-cnn, TF 1.14) used `tf.layers.batch_normalization(
fused=True)`. Keras 3 computes BN as separate ops over the whole activation:
in inference a multiply and add (`tf.nn.batch_normalization`), which
TensorFlow's graph optimizer cannot merge into the preceding convolution, and
in training the moments as well (Mean, SquaredDifference, ..., with float32
casts under mixed precision), a large share of a CPU training step. This
layer keeps Keras' `BatchNormalization` variables,
moving-statistics update, checkpoints and config, and runs both modes through
`FusedBatchNormV3`: in inference Grappler fuses it with Conv2D (+ ReLU) on
CPU, in training it computes the batch moments, the normalization and
(through FusedBatchNormGradV3) the gradient in one kernel each, taking the
16-bit input as is under mixed precision. The speed-ups, with the machine
they were measured on, are in docs/benchmarks.md ("Fused training
BatchNorm"). XLA and cuDNN handle the fused op
natively. Under another Keras backend (JAX, used for the GPU figures where
TensorFlow is not installed) the layer is plain Keras BN: XLA fuses BN by
itself there.
"""

import keras

# Module switch for the fused training path (benchmarks and tests compare
# against Keras' unfused training BN with it off). Read on each call, i.e.
# when a tf.function traces it.
FUSED_TRAINING = True


@keras.saving.register_keras_serializable(package="assemble_tf")
class BatchNorm(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` on the fused TensorFlow kernel.

    Takes exactly the arguments of `keras.layers.BatchNormalization`. The
    fused path runs when the backend is TensorFlow, the input is 4-D
    (NHWC) in float16, bfloat16 or float32, the axis is the last one, no
    mask is given and both `center` and `scale` are on; any other case
    falls back to the Keras implementation.

    Inference (`training` false, or the layer frozen) normalizes with the
    moving statistics. Training (`training` true and the layer trainable)
    normalizes with the batch statistics from `FusedBatchNormV3(
    is_training=True)`, which runs in float32 inside for 16-bit inputs, and
    updates the moving statistics exactly as Keras does:
    `moving = moving * momentum + batch * (1 - momentum)` with the biased
    batch variance (the op returns the Bessel-corrected one, n / (n - 1),
    which is undone). Under a `tf.distribute` strategy the statistics are
    per replica, as in Keras with `synchronized=False`. Training falls back
    to Keras with `synchronized=True` (cross-replica BN, whose moments Keras
    all-reduces) and with `renorm=True` (batch renormalization). Both paths
    give the same result to float32 rounding (16-bit rounding of the output
    under mixed precision); with oneDNN on (TensorFlow's CPU default) the
    fused op's batch moments are about 2-4x less accurate than Keras'
    `tf.nn.moments` (~1e-6 relative).
    """

    def _fusable(self, inputs, mask, training=False):
        """Whether this call can run on the fused op.

        Args:
            inputs: The layer's input tensor.
            mask: The mask given to `call`, or None.
            training: Whether the call normalizes with batch statistics.

        Returns:
            bool.
        """
        if keras.backend.backend() != "tensorflow":
            return False
        import tensorflow as tf

        axis = self.axis if isinstance(self.axis, int) else None
        rank = len(inputs.shape)
        fusable = (
            mask is None
            and rank == 4
            and axis is not None
            and axis % rank == 3
            and self.center
            and self.scale
            and inputs.dtype in (tf.float16, tf.bfloat16, tf.float32)
        )
        if training:
            fusable = (
                fusable
                and FUSED_TRAINING
                and not self.synchronized
                and not getattr(self, "renorm", False)
            )
        return fusable

    def call(self, inputs, training=None, mask=None):
        use_batch = bool(training) and self.trainable
        if not self._fusable(inputs, mask, use_batch):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        gamma = tf.cast(self.gamma, tf.float32)
        beta = tf.cast(self.beta, tf.float32)
        if use_batch:
            return self._fused_training(inputs, gamma, beta)
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            gamma,
            beta,
            mean=tf.cast(self.moving_mean, tf.float32),
            variance=tf.cast(self.moving_variance, tf.float32),
            epsilon=self.epsilon,
            is_training=False,
        )
        return tf.cast(outputs, self.compute_dtype)

    def _fused_training(self, inputs, gamma, beta):
        """Normalizes with the batch moments and updates the moving ones."""
        import tensorflow as tf

        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, epsilon=self.epsilon, is_training=True
        )
        # FusedBatchNormV3 returns the variance times n / (n - 1) (n - 1
        # clamped at 1); Keras averages the biased one. Undo the correction.
        count = inputs.shape[:3].num_elements()
        if count is None:
            shape = tf.shape(inputs, out_type=tf.int64)
            count = tf.cast(shape[0] * shape[1] * shape[2], tf.float32)
            variance = variance * (tf.maximum(count - 1.0, 1.0) / count)
        elif count > 1:
            variance = variance * ((count - 1.0) / count)
        # The update of keras.layers.BatchNormalization.call, float32.
        moving_mean = tf.cast(self.moving_mean, tf.float32)
        moving_variance = tf.cast(self.moving_variance, tf.float32)
        self.moving_mean.assign(
            moving_mean * self.momentum + mean * (1.0 - self.momentum)
        )
        self.moving_variance.assign(
            moving_variance * self.momentum + variance * (1.0 - self.momentum)
        )
        return tf.cast(outputs, self.compute_dtype)


def batch_norm_layers(model):
    """Every BatchNormalization layer of `model`, nested ones (SK's,
    Big-Little's) included, ours and Keras' alike."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
