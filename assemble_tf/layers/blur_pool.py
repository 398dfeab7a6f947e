"""Anti-aliased downsampling (BlurPool).

Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019,
https://arxiv.org/abs/1904.11486. Assemble-ResNet (Lee et al. 2020,
https://arxiv.org/abs/2001.06268) blurs after the stride-1 3x3 conv of every
stride-2 bottleneck ("sconv"). Numerics follow clovaai/assembled-cnn
`nets/blocks.py: anti_aliased_downsample`: a normalized binomial filter,
reflect padding of int((k - 1) / 2) on every side, a depthwise VALID
convolution with stride 2. The filter is a constant, not a weight.

Beyond the original: an even filter size pads one pixel more after the map
than before it (k - 1 in all, as "same" padding does), so the output has
ceil(n / stride) pixels for every side n, as the block's shortcut. The
extra pixel is read only on maps of odd side, where the original gave a
pixel fewer than the shortcut and the residual add failed; everywhere else
the outputs are the original's.

Speed: on a static map the reflected border is built by concatenating the
mirrored rows and columns, and only on the sides the strided filter reads
(for an even side and size 3, the top and left only): the same padded
values at less than half the cost of a reflect `pad` in bfloat16 on oneDNN
CPUs (Assemble-R50's blurs 31 -> 12 ms per batch of 32); in float32 about
the same cost (docs/benchmarks.md "Assemble-R50 in bfloat16").
"""

import keras
import numpy as np

from assemble_tf.layers import common
from official.utils.misc import validation

# Rows of Pascal's triangle: the 1-D binomial filters of size 1 to 7.
BINOMIAL_ROWS = {
    1: (1.0,),
    2: (1.0, 1.0),
    3: (1.0, 2.0, 1.0),
    4: (1.0, 3.0, 3.0, 1.0),
    5: (1.0, 4.0, 6.0, 4.0, 1.0),
    6: (1.0, 5.0, 10.0, 10.0, 5.0, 1.0),
    7: (1.0, 6.0, 15.0, 20.0, 15.0, 6.0, 1.0),
}


def binomial_kernel(filter_size):
    """Returns the normalized 2-D binomial filter as a float64 array.

    Args:
        filter_size: int. Side of the filter, 1 to 7.

    Returns:
        A `(filter_size, filter_size)` array that sums to 1.
    """
    # Before: 3.0 was taken, then TensorFlow failed at the first call.
    filter_size = common.check_int_choice(
        "filter_size", filter_size, tuple(BINOMIAL_ROWS)
    )
    row = np.asarray(BINOMIAL_ROWS[filter_size], dtype=np.float64)
    kernel = np.outer(row, row)
    return kernel / kernel.sum()


@keras.saving.register_keras_serializable(package="assemble_tf")
class BlurPool2D(keras.layers.Layer):
    """Blur with a binomial filter, then subsample (anti-aliased pooling).

    Every channel is filtered with the same normalized binomial kernel
    (depthwise), after reflect padding of `int((filter_size - 1) / 2)` pixels
    before and `filter_size - 1` in all, with a VALID convolution at
    `strides`: ceil(n / strides) outputs for a side of n pixels, as a
    strided "same" convolution. Size 1 is plain subsampling. A 56x56 map
    with size 3 becomes 28x28, a 25x25 one 13x13. The layer has no weights.

    Args:
        filter_size: int. Binomial filter side, 1 to 7 (default 3).
        strides: int. Subsampling factor (default 2).
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Reference:
        Zhang 2019, https://arxiv.org/abs/1904.11486.
    """

    def __init__(self, filter_size=3, strides=2, **kwargs):
        super().__init__(**kwargs)
        binomial_kernel(filter_size)  # validates
        self.filter_size = int(filter_size)
        # numpy's integers too, no bool (strides=True stayed in the config).
        self.strides = validation.check_positive_int("strides", strides)
        self.pad = (filter_size - 1) // 2  # before; k - 1 - pad after
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                "BlurPool2D needs a known channel count. "
                f"Received: input_shape={input_shape}"
            )
        for axis in (1, 2):
            if self.filter_size > 1 and input_shape[axis] is not None:
                self._check_reflectable(input_shape[axis], axis, input_shape)
        kernel = binomial_kernel(self.filter_size)
        self.kernel = np.tile(
            kernel[:, :, None, None], (1, 1, channels, 1)
        ).astype("float32")

    def call(self, inputs):
        x = inputs
        if self.filter_size > 1:
            static = x.shape[1] is not None and x.shape[2] is not None
            if static:
                # Both sides checked on the input's shape (before: the
                # width's error showed the shape after the height's pad).
                for axis in (1, 2):
                    self._check_reflectable(x.shape[axis], axis, x.shape)
                x = self._reflect(self._reflect(x, 1), 2)
            else:
                x = self._reflect_dynamic(x)
        kernel = keras.ops.cast(self.kernel, x.dtype)
        return keras.ops.depthwise_conv(
            x, kernel, strides=self.strides, padding="valid"
        )

    def _reflect_dynamic(self, x):
        """`_reflect` along H and W of sizes known only when the graph runs
        (TensorFlow: JAX traces every shape): the same padding, computed
        from the run-time sizes (before: `filter_size - 1 - pad` after
        the map whatever it read, and a 2-px map of a size-4 filter failed
        in MirrorPad, which a static shape of 2 px took)."""
        import tensorflow as tf

        sizes = tf.shape(x)[1:3]
        outputs = (sizes - 1) // self.strides + 1
        last = (outputs - 1) * self.strides + self.filter_size - 1
        after = tf.maximum(0, last - (sizes + self.pad - 1))
        needed = tf.maximum(self.pad, after) + 1
        check = tf.debugging.assert_greater_equal(
            sizes,
            needed,
            message=(
                # No quotes: TensorFlow escapes them in the message.
                f"BlurPool2D {self.name} (filter_size={self.filter_size})"
                " reflect-pads more pixels than the map has: use a larger "
                "image size or a smaller filter_size (anti_alias_size). "
                "Height and width, then the sizes they need:"
            ),
        )
        with tf.control_dependencies([check]):
            pads = tf.stack(
                [[0, 0], [self.pad, after[0]], [self.pad, after[1]], [0, 0]]
            )
        return tf.pad(x, pads, mode="REFLECT")

    def _padding_after(self, n):
        """Positions after the end the strided filter reads (size n)."""
        outputs = (n - 1) // self.strides + 1
        last = (outputs - 1) * self.strides + self.filter_size - 1
        return max(0, last - (n + self.pad - 1))

    def _check_reflectable(self, n, axis, shape):
        """Reflection pads at most n - 1 pixels (TensorFlow's REFLECT pad,
        the original's, refuses more); slicing past the edge gave another
        shape than `compute_output_shape`, silently."""
        pad = max(self.pad, self._padding_after(n))
        if pad > n - 1:
            raise ValueError(
                f"BlurPool2D {self.name!r} (filter_size={self.filter_size}) "
                f"reflect-pads {pad} pixels, which needs maps of at least "
                f"{pad + 1} pixels; received {n} along axis {axis} (input "
                f"shape {tuple(shape)}). Use a larger image size or a "
                "smaller filter_size (anti_alias_size)."
            )

    def _reflect(self, x, axis):
        """`x` reflect-padded along `axis` (static size) by `self.pad`
        before and by as many positions after as the strided filter reads.
        """
        n, p = x.shape[axis], self.pad
        after = self._padding_after(n)

        def rows(start, stop):  # x[start:stop] along axis, reversed
            index = [slice(None)] * 4
            index[axis] = slice(start, stop)
            part = x[tuple(index)]
            return part if stop - start == 1 else keras.ops.flip(part, axis)

        parts = [rows(1, p + 1), x] if p else [x]
        if after:
            parts.append(rows(n - 1 - after, n - 1))
        return keras.ops.concatenate(parts, axis=axis)

    def compute_output_shape(self, input_shape):
        def out(size):
            if size is None:
                return None
            return (size - 1) // self.strides + 1

        n, h, w, c = input_shape
        return (n, out(h), out(w), c)

    def macs(self, input_shape):
        """Multiply-adds for one example of `input_shape` (H, W, C)."""
        _, h, w, c = self.compute_output_shape((None, *input_shape))
        return h * w * c * self.filter_size**2

    def get_config(self):
        config = super().get_config()
        config.update(
            {"filter_size": self.filter_size, "strides": self.strides}
        )
        return config
