"""Average pooling over a zero-padded map, the zeros counted.

The original BigLittleNet shortcut (Chen et al., "Big-Little Net", ICLR
2019, https://arxiv.org/abs/1807.03848; clovaai/assembled-cnn
`nets/resnet_model.py`, as used by Assemble-ResNet, Lee et al. 2020,
https://arxiv.org/abs/2001.06268) pads a map with one zero on every side and
runs a 3x3/2 VALID average pool: every output divides by 9, the padded zeros
included (PyTorch's `count_include_pad=True`).

Speed: at inference under TensorFlow the pool is one depthwise convolution
with a constant 1/k^2 filter and explicit padding (oneDNN pads inside the
kernel): no padded copy of the map (2.0x faster in float32, 1.4x in
bfloat16 on oneDNN CPUs, docs/benchmarks.md "Assemble-R50 in bfloat16").
Training and the other backends pad, then pool.
"""

import keras
import numpy as np

from official.utils.misc import validation


@keras.saving.register_keras_serializable(package="assemble_tf")
class PaddedAveragePool2D(keras.layers.Layer):
    """`pool_size` average pool at `strides` after `padding` zeros per side.

    Equal to `ZeroPadding2D(padding)` then `AveragePooling2D(pool_size,
    strides, padding="valid")`. A 56x56 map with the defaults becomes
    28x28. The layer has no weights.

    Args:
        pool_size: int. Side of the window (default 3).
        strides: int. Step of the window (default 2).
        padding: int. Zeros added on every side (default 1).
        **kwargs: Base layer arguments (`name`, `dtype`, ...).
    """

    def __init__(self, pool_size=3, strides=2, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = validation.check_positive_int("pool_size", pool_size)
        self.strides = validation.check_positive_int("strides", strides)
        self.padding = validation.check_non_negative_int("padding", padding)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        # Before: a map smaller than the window gave 0 x 0 in training and
        # 1 x 1 at inference (the depthwise path).
        for axis in (1, 2):
            n = input_shape[axis]
            if n is not None and n + 2 * self.padding < self.pool_size:
                raise ValueError(
                    f"PaddedAveragePool2D {self.name!r} (pool_size="
                    f"{self.pool_size}, padding={self.padding}) needs maps "
                    f"of at least {self.pool_size - 2 * self.padding} "
                    f"pixels; received {n} along axis {axis} (input shape "
                    f"{tuple(input_shape)})."
                )

    def call(self, inputs, training=None):
        p = self.padding
        if not training and keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            k, channels = self.pool_size, inputs.shape[-1]
            exact = inputs.dtype == tf.float32
            # In 16 bits a sum, then a division: 1/9 as a bfloat16 weight
            # is 0.11133, +0.2 % on every output (each BigLittle avg3
            # shortcut at bfloat16 inference).
            weight = 1.0 / (k * k) if exact else 1.0
            kernel = np.full((k, k, channels, 1), weight, np.float32)
            pooled = tf.nn.depthwise_conv2d(
                inputs,
                tf.constant(kernel, inputs.dtype),
                (1, self.strides, self.strides, 1),
                [[0, 0], [p, p], [p, p], [0, 0]],
            )
            return pooled if exact else pooled / (k * k)
        x = inputs
        if p:
            x = keras.ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
        return keras.ops.average_pool(
            x, self.pool_size, strides=self.strides, padding="valid"
        )

    def compute_output_shape(self, input_shape):
        def out(size):
            if size is None:
                return None
            return (size + 2 * self.padding - self.pool_size) // (
                self.strides
            ) + 1

        n, h, w, c = input_shape
        return (n, out(h), out(w), c)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "pool_size": self.pool_size,
                "strides": self.strides,
                "padding": self.padding,
            }
        )
        return config
