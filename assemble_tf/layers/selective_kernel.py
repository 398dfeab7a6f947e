"""Selective Kernel convolution (SK unit).

Li et al., "Selective Kernel Networks", CVPR 2019,
https://arxiv.org/abs/1903.06586. Assemble-ResNet (Lee et al. 2020,
https://arxiv.org/abs/2001.06268, Table 2 row C3) replaces the two kernels by
one 3x3 conv with twice the channels, split into two paths ("3x3, 2x
channels", r = 2, L = 32). Numerics follow clovaai/assembled-cnn
`nets/blocks.py: sk_conv2d`: conv -> BN -> ReLU -> split U1, U2;
s = GAP(U1 + U2); z = ReLU(BN(W1 s)) with d = max(int(F / r), L);
a = W2 z split in halves; softmax across the two paths; V = a1 U1 + a2 U2.
The SKNet two-kernel variant (3x3 and dilated 3x3 standing for 5x5, row C2)
is built here too; the original code never implemented it.
"""

import keras

from assemble_tf.layers import common
from assemble_tf.layers.batch_norm import BatchNorm
from assemble_tf.layers.conv import Conv2D
from official.utils.misc import validation

VARIANTS = ("assemble", "sknet")


@keras.saving.register_keras_serializable(package="assemble_tf")
class SelectiveKernel(keras.layers.Layer):
    """Selective Kernel unit: two paths fused by channel-wise attention.

    The output has `filters` channels, is non-negative and carries no BN or
    ReLU after it. With `strides=2` the "assemble" conv pads 1/1 explicitly
    and runs VALID, as the original; the dilated "sknet" path runs at
    stride 1 and is subsampled, which equals a strided dilated conv with
    padding 2.

    Args:
        filters: int. Output channels F (the bottleneck width).
        strides: int. 1 or 2 (default 1).
        variant: str. "assemble" (one 3x3 conv to 2F split in two) or
            "sknet" (3x3 and dilated 3x3 convs) (default "assemble").
        reduction: int. Ratio r of the attention bottleneck (default 2).
        min_dim: int. Floor L of the attention width (default 32).
        bn_momentum: float. BatchNorm momentum (default 0.997).
        bn_epsilon: float. BatchNorm epsilon (default 1e-5).
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Reference:
        Li et al. 2019, https://arxiv.org/abs/1903.06586;
        Lee et al. 2020, https://arxiv.org/abs/2001.06268.
    """

    def __init__(
        self,
        filters,
        strides=1,
        variant="assemble",
        reduction=2,
        min_dim=32,
        bn_momentum=0.997,
        bn_epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        validation.check_positive_int("filters", filters)
        if strides not in (1, 2):
            raise ValueError(
                f"SelectiveKernel strides must be 1 or 2. "
                f"Received: strides={strides!r}"
            )
        if variant not in VARIANTS:
            raise ValueError(
                f"SelectiveKernel variant must be one of {VARIANTS}. "
                f"Received: variant={variant!r}"
            )
        validation.check_positive_int("reduction", reduction)
        validation.check_positive_int("min_dim", min_dim)
        self.filters = filters
        self.strides = strides
        self.variant = variant
        self.reduction = reduction
        self.min_dim = min_dim
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self.attention_dim = max(int(filters / reduction), min_dim)

        dtype = self.dtype_policy
        bn_args = dict(momentum=bn_momentum, epsilon=bn_epsilon, dtype=dtype)
        if variant == "assemble":
            self.pad = (
                keras.layers.ZeroPadding2D(1, dtype=dtype)
                if strides == 2
                else None
            )
            self.conv = Conv2D(
                2 * filters,
                3,
                strides=strides,
                padding="valid" if strides == 2 else "same",
                use_bias=False,
                kernel_initializer=common.conv_initializer(),
                dtype=dtype,
                name="conv",
            )
            self.bn = BatchNorm(**bn_args, name="bn")
        else:
            self.conv_a = Conv2D(
                filters,
                3,
                padding="same",
                use_bias=False,
                kernel_initializer=common.conv_initializer(),
                dtype=dtype,
                name="conv_a",
            )
            self.bn_a = BatchNorm(**bn_args, name="bn_a")
            self.conv_b = Conv2D(
                filters,
                3,
                padding="same",
                dilation_rate=2,
                use_bias=False,
                kernel_initializer=common.conv_initializer(),
                dtype=dtype,
                name="conv_b",
            )
            self.bn_b = BatchNorm(**bn_args, name="bn_b")
        self.fc1 = keras.layers.Conv2D(
            self.attention_dim,
            1,
            use_bias=False,
            kernel_initializer=common.conv_initializer(),
            dtype=dtype,
            name="fc1",
        )
        self.attn_bn = BatchNorm(**bn_args, name="attn_bn")
        self.fc2 = keras.layers.Conv2D(
            2 * filters,
            1,
            use_bias=False,
            kernel_initializer=common.conv_initializer(),
            dtype=dtype,
            name="fc2",
        )

    def build(self, input_shape):
        n, h, w, c = input_shape
        if self.variant == "assemble":
            shape = input_shape
            if self.pad is not None:
                self.pad.build(shape)
                shape = self.pad.compute_output_shape(shape)
            self.conv.build(shape)
            self.bn.build(self.conv.compute_output_shape(shape))
        else:
            for conv, bn in (
                (self.conv_a, self.bn_a),
                (self.conv_b, self.bn_b),
            ):
                conv.build(input_shape)
                bn.build((n, h, w, self.filters))
        self.fc1.build((n, 1, 1, self.filters))
        self.attn_bn.build((n, 1, 1, self.attention_dim))
        self.fc2.build((n, 1, 1, self.attention_dim))

    def _paths(self, inputs, training):
        if self.variant == "assemble":
            x = inputs if self.pad is None else self.pad(inputs)
            u = keras.ops.relu(self.bn(self.conv(x), training=training))
            return u[..., : self.filters], u[..., self.filters :]
        u1 = keras.ops.relu(self.bn_a(self.conv_a(inputs), training=training))
        u2 = keras.ops.relu(self.bn_b(self.conv_b(inputs), training=training))
        if self.strides == 2:
            u1, u2 = u1[:, ::2, ::2, :], u2[:, ::2, ::2, :]
        return u1, u2

    def path_weights(self, inputs, training=False):
        """Returns the paths U1, U2 and their softmax weights (N,1,1,2,F)."""
        if not self.built:
            self.build(tuple(inputs.shape))
        u1, u2 = self._paths(inputs, training)
        s = keras.ops.mean(u1 + u2, axis=(1, 2), keepdims=True)
        z = keras.ops.relu(self.attn_bn(self.fc1(s), training=training))
        a = self.fc2(z)
        a = keras.ops.reshape(a, (-1, 1, 1, 2, self.filters))
        return u1, u2, keras.ops.softmax(a, axis=3)

    def call(self, inputs, training=None):
        if self.variant != "assemble":
            u1, u2, a = self.path_weights(inputs, training=training)
            return a[..., 0, :] * u1 + a[..., 1, :] * u2
        # Same result as path_weights() + the weighted sum, without slicing
        # the 2F-channel activation into copies: the GAP of U1 + U2 is the
        # sum of the two halves of the pooled 2F vector, and the weighted
        # sum is a reduction over a free (..., 2, F) reshape.
        if not self.built:
            self.build(tuple(inputs.shape))
        f = self.filters
        x = inputs if self.pad is None else self.pad(inputs)
        u = keras.ops.relu(self.bn(self.conv(x), training=training))
        pooled = keras.ops.mean(u, axis=(1, 2), keepdims=True)
        s = pooled[..., :f] + pooled[..., f:]
        z = keras.ops.relu(self.attn_bn(self.fc1(s), training=training))
        a = keras.ops.reshape(self.fc2(z), (-1, 1, 1, 2, f))
        a = keras.ops.softmax(a, axis=3)
        shape = keras.ops.shape(u)
        u = keras.ops.reshape(u, (-1, shape[1], shape[2], 2, f))
        return keras.ops.sum(u * a, axis=3)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        if self.strides == 2:
            h = None if h is None else (h + 1) // 2
            w = None if w is None else (w + 1) // 2
        return (n, h, w, self.filters)

    def macs(self, input_shape):
        """Multiply-adds for one example of `input_shape` (H, W, C)."""
        _, h, w, f = self.compute_output_shape((None, *input_shape))
        cin = input_shape[-1]
        if self.variant == "assemble":
            conv = h * w * 9 * cin * 2 * f
        else:
            h1, w1 = input_shape[0], input_shape[1]
            conv = 2 * h1 * w1 * 9 * cin * f  # both run at stride 1
        return conv + f * self.attention_dim + self.attention_dim * 2 * f

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "strides": self.strides,
                "variant": self.variant,
                "reduction": self.reduction,
                "min_dim": self.min_dim,
                "bn_momentum": self.bn_momentum,
                "bn_epsilon": self.bn_epsilon,
            }
        )
        return config
