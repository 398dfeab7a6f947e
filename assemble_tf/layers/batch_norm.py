"""Batch normalization with a fused inference kernel.

Ioffe & Szegedy, "Batch Normalization", ICML 2015,
https://arxiv.org/abs/1502.03167. The original Assemble-ResNet code
(clovaai/assembled-cnn, TF 1.14) used `tf.layers.batch_normalization(
fused=True)`; Keras 3 computes inference BN as a separate multiply and add
over the whole activation (`tf.nn.batch_normalization`), which TensorFlow's
graph optimizer cannot merge into the preceding convolution. This layer
keeps Keras' `BatchNormalization` unchanged for training (same variables,
same moving-statistics update, same checkpoints) and runs inference through
`FusedBatchNormV3`, which Grappler fuses with Conv2D (+ ReLU) on CPU and
which XLA and cuDNN handle natively: about 1.25x faster ResNet-50 inference
on a 2-core CPU (docs/benchmarks.md). Under another Keras backend (JAX,
used for the GPU figures where TensorFlow is not installed) the layer is
plain Keras BN: XLA fuses BN into the convolution there by itself.
"""

import keras


@keras.saving.register_keras_serializable(package="assemble_tf")
class BatchNorm(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` with a fused inference path.

    Takes exactly the arguments of `keras.layers.BatchNormalization`. The
    fused path runs when the layer normalizes with its moving statistics
    (`training` false or the layer frozen), the input is 4-D, the axis is the
    last one, no mask is given and both `center` and `scale` are on; any
    other case falls back to the Keras implementation. Both paths give the
    same result to float32 rounding.
    """

    def _fusable(self, inputs, mask):
        if keras.backend.backend() != "tensorflow":
            return False
        import tensorflow as tf

        axis = self.axis if isinstance(self.axis, int) else None
        rank = len(inputs.shape)
        return (
            mask is None
            and rank == 4
            and axis is not None
            and axis % rank == 3
            and self.center
            and self.scale
            and inputs.dtype in (tf.float16, tf.bfloat16, tf.float32)
        )

    def call(self, inputs, training=None, mask=None):
        if (training and self.trainable) or not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            tf.cast(self.gamma, tf.float32),
            tf.cast(self.beta, tf.float32),
            mean=tf.cast(self.moving_mean, tf.float32),
            variance=tf.cast(self.moving_variance, tf.float32),
            epsilon=self.epsilon,
            is_training=False,
        )
        return tf.cast(outputs, self.compute_dtype)
