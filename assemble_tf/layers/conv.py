"""2-D convolution whose weight gradient can run as matrix products.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016,
https://arxiv.org/abs/1512.03385: a convolution's weight gradient is a sum
over output positions, `dW[i, j] = sum_p x[p * s + (i, j)]^T dy[p]` for
each kernel tap (i, j) and stride s, i.e. one matrix product per tap
between the (strided, shifted) input and the output gradient, both
flattened to (positions, channels). On CPU TensorFlow computes it with
oneDNN's backward-weights convolution, which on some CPUs is much slower
than `MatMul` on the same products for the shapes of a ResNet's later
stages (1 x 1 convolutions, 3 x 3 ones at small outputs), above all in
bfloat16. The measured rates, the machine and the share of a training step
are in docs/benchmarks.md ("Weight gradients as MatMuls"), with the script
that re-measures them.

In training this layer computes them as those products, tap by tap (a contiguous
slice of the padded input; a stride is taken by a reshape and a slice,
which is much faster than a strided slice on CPU), where the table
`MATMUL_WEIGHT_GRADIENT_RULES` says it is faster. The forward pass and the
input gradient are unchanged (Keras' convolution and TensorFlow's
`Conv2DBackpropInput`), so inference, BN folding and Grappler's Conv2D +
BatchNorm fusion see the same graph, and the variables, checkpoints and
config are those of `keras.layers.Conv2D`. GPUs and TPUs (cuDNN and XLA
have fast weight gradients) and other Keras backends keep the plain
convolution.
"""

import keras

# Module switch (benchmarks and tests compare against TensorFlow's own
# weight gradient with it off). Read on each call, i.e. when a
# tf.function traces it.
MATMUL_WEIGHT_GRADIENT = True

# {compute dtype: (pointwise strides, largest output H x W of a larger
# kernel)}: where the MatMul weight gradient is faster on a CPU (measured,
# docs/benchmarks.md). A 1 x 1 kernel takes it at the listed strides, a
# larger one when its output has at most that many positions per image
# (0: never). float16 has no fast CPU kernels either way.
MATMUL_WEIGHT_GRADIENT_RULES = {
    "bfloat16": ((1, 2), 14 * 14),
    "float32": ((2,), 7 * 7),
}


def _matmul_weight_gradient(x, dy, kernel_size, stride, padding):
    """The weight gradient of a 2-D convolution as one MatMul per tap.

    Args:
        x: NHWC input of the convolution.
        dy: NHWC gradient of its output.
        kernel_size: (kh, kw).
        stride: int, the same along H and W.
        padding: "valid", or "same" with stride 1.

    Returns:
        (kh, kw, C_in, C_out) tensor in x's dtype.
    """
    import tensorflow as tf

    kh, kw = kernel_size
    cin, cout = x.shape[-1], dy.shape[-1]
    out_h, out_w = tf.shape(dy)[1], tf.shape(dy)[2]
    if padding == "same":  # stride 1: TensorFlow's SAME split
        top, left = (kh - 1) // 2, (kw - 1) // 2
        x = tf.pad(
            x, [[0, 0], [top, kh - 1 - top], [left, kw - 1 - left], [0, 0]]
        )
    elif stride > 1:
        # The last tap's strided window ends up to stride - 1 rows past
        # the input (never read by the convolution): pad so that it fits.
        shape = tf.shape(x)
        extra_h = tf.maximum(stride * out_h + kh - 1 - shape[1], 0)
        extra_w = tf.maximum(stride * out_w + kw - 1 - shape[2], 0)
        x = tf.pad(x, [[0, 0], [0, extra_h], [0, extra_w], [0, 0]])
    batch = tf.shape(x)[0]
    dy_flat = tf.reshape(dy, [-1, cout])
    taps = []
    for i in range(kh):
        for j in range(kw):
            window = x[:, i : i + stride * out_h, j : j + stride * out_w, :]
            if stride > 1:
                window = tf.reshape(
                    window, [batch, out_h, stride, out_w, stride * cin]
                )[:, :, 0, :, :cin]
            taps.append(
                tf.matmul(
                    tf.reshape(window, [-1, cin]), dy_flat, transpose_a=True
                )
            )
    return tf.reshape(tf.stack(taps), [kh, kw, cin, cout])


def _on_cpu():
    """Whether the step runs on the host CPU (no GPU, no TPU strategy)."""
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        return False
    return not isinstance(
        tf.distribute.get_strategy(),
        (tf.distribute.TPUStrategy, tf.distribute.experimental.TPUStrategy),
    )


@keras.saving.register_keras_serializable(package="assemble_tf")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` with a faster weight gradient on CPU.

    Takes exactly the arguments of `keras.layers.Conv2D` and computes the
    same function and the same input gradient. When called with
    `training=True` on a trainable layer, under the TensorFlow backend on a
    CPU, for channels_last inputs without groups or dilation, with "valid"
    padding or "same" at stride 1, equal strides along H and W, and a
    compute dtype and shape that `MATMUL_WEIGHT_GRADIENT_RULES` lists, the
    weight gradient is computed by `_matmul_weight_gradient`; every other
    call (inference in particular, whose graph stays Keras' own for
    export and Grappler's fusions) is Keras' convolution and TensorFlow's
    gradient.
    """

    def _use_matmul_gradient(self, inputs):
        """Whether `MATMUL_WEIGHT_GRADIENT_RULES` pick the MatMul gradient
        for this layer on `inputs` (the switch, backend and device too)."""
        if (
            not MATMUL_WEIGHT_GRADIENT
            or keras.backend.backend() != "tensorflow"
        ):
            return False
        rule = MATMUL_WEIGHT_GRADIENT_RULES.get(
            keras.backend.standardize_dtype(inputs.dtype)
        )
        stride = self.strides[0]
        if (
            rule is None
            or len(inputs.shape) != 4
            or self.groups != 1
            or self.data_format != "channels_last"
            or tuple(self.dilation_rate) != (1, 1)
            or self.strides[1] != stride
            or (self.padding == "same" and stride != 1)
        ):
            return False
        pointwise_strides, max_positions = rule
        if tuple(self.kernel_size) == (1, 1):
            use = stride in pointwise_strides
        else:
            out_h, out_w = self.compute_output_shape(inputs.shape)[1:3]
            use = (
                out_h is not None
                and out_w is not None
                and out_h * out_w <= max_positions
            )
        return use and _on_cpu()

    def call(self, inputs, training=None):
        if not (
            training and self.trainable and self._use_matmul_gradient(inputs)
        ):
            return super().call(inputs)
        outputs = self._matmul_gradient_conv(inputs, self.kernel)
        if self.use_bias:
            outputs = keras.ops.add(
                outputs, keras.ops.reshape(self.bias, (1, 1, 1, self.filters))
            )
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def _matmul_gradient_conv(self, inputs, kernel):
        """Keras' convolution, with `_matmul_weight_gradient` as its
        kernel gradient and `Conv2DBackpropInput` as its input one."""
        import tensorflow as tf

        forward = self.convolution_op
        strides = [1, self.strides[0], self.strides[1], 1]
        padding = self.padding.upper()

        @tf.custom_gradient
        def conv(x, w):
            def grad(dy):
                dx = tf.raw_ops.Conv2DBackpropInput(
                    input_sizes=tf.shape(x),
                    filter=w,
                    out_backprop=dy,
                    strides=strides,
                    padding=padding,
                )
                dw = _matmul_weight_gradient(
                    x, dy, self.kernel_size, self.strides[0], self.padding
                )
                return dx, dw

            return forward(x, w), grad

        # The kernel as read in the layer's compute dtype (autocast).
        return conv(inputs, tf.convert_to_tensor(kernel))
