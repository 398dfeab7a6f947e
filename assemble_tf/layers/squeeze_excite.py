"""Squeeze-and-Excitation.

Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018,
https://arxiv.org/abs/1709.01507; used in Assemble-ResNet (Lee et al. 2020,
https://arxiv.org/abs/2001.06268) rows C1, C5 and E4-E5. Numerics follow
clovaai/assembled-cnn `nets/blocks.py: se_block`: GAP -> 1x1 conv to C / ratio
(no bias) -> ReLU -> 1x1 conv to C (no bias) -> sigmoid -> scale. No BN.
"""

import keras

from assemble_tf.layers import common
from official.utils.misc import validation


@keras.saving.register_keras_serializable(package="assemble_tf")
class SqueezeExcite(keras.layers.Layer):
    """Channel attention: rescale channels by a gate computed from GAP.

    Args:
        ratio: int. Channel reduction of the bottleneck (default 16).
        min_dim: int. Floor of the bottleneck width (default 1).
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Reference:
        Hu et al. 2018, https://arxiv.org/abs/1709.01507.
    """

    def __init__(self, ratio=16, min_dim=1, **kwargs):
        super().__init__(**kwargs)
        validation.check_positive_int("ratio", ratio)
        validation.check_positive_int("min_dim", min_dim)
        self.ratio = ratio
        self.min_dim = min_dim
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.reduced_dim = max(channels // self.ratio, self.min_dim)
        dtype = self.dtype_policy
        self.fc1 = keras.layers.Conv2D(
            self.reduced_dim,
            1,
            use_bias=False,
            kernel_initializer=common.conv_initializer(),
            dtype=dtype,
            name="fc1",
        )
        self.fc2 = keras.layers.Conv2D(
            channels,
            1,
            use_bias=False,
            kernel_initializer=common.conv_initializer(),
            dtype=dtype,
            name="fc2",
        )
        self.fc1.build((None, 1, 1, channels))
        self.fc2.build((None, 1, 1, self.reduced_dim))

    def call(self, inputs):
        s = keras.ops.mean(inputs, axis=(1, 2), keepdims=True)
        s = keras.ops.sigmoid(self.fc2(keras.ops.relu(self.fc1(s))))
        return inputs * s

    def compute_output_shape(self, input_shape):
        return input_shape

    def macs(self, input_shape):
        """Multiply-adds for one example of `input_shape` (H, W, C)."""
        c = input_shape[-1]
        return 2 * c * max(c // self.ratio, self.min_dim)

    def get_config(self):
        config = super().get_config()
        config.update({"ratio": self.ratio, "min_dim": self.min_dim})
        return config
