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

A variant is a list of `PathSpec`s (`path_specs`): the convolutions that
compute the two paths, each with its kernel size, dilation, how many paths
it computes (the Assemble conv: both, as one 2F-channel output) and how it
strides. One forward pass serves every variant: the paths side by side on
the channels, one attention, one weighted sum.

Speed (inference, measured on oneDNN CPUs, docs/benchmarks.md "Assemble-R50
in bfloat16"): the GAP is an average pool over the whole map (Keras' `mean`
upcasts bfloat16 to float32 first; 7x slower), and in bfloat16 under
TensorFlow the weighted sum is one batched matmul of U with the
block-diagonal matrix [diag(a1); diag(a2)] (oneDNN runs it on AMX, 4x faster
than the bfloat16 multiply and sum; in float32 the profile of the whole
model found it slower) wherever that matrix is at most half the size of U.
The softmax of two logits is a sigmoid of their difference. With `fold_bn`
(export) the BNs of the paths and of the attention are folded into their
convolutions (`assemble_tf.export.optimize`).
"""

import typing

import keras

from assemble_tf.layers import common
from assemble_tf.layers.batch_norm import BatchNorm
from assemble_tf.layers.conv import Conv2D
from official.utils.misc import validation

VARIANTS = ("assemble", "sknet")
NUM_PATHS = 2


class PathSpec(typing.NamedTuple):
    """One convolution (+ BN + ReLU) of an SK unit and the paths it feeds.

    Attributes:
        suffix: its layers are `conv<suffix>`, `bn<suffix>` and, when it
            pads, `pad<suffix>` (the layer attributes, hence the variable
            paths and the checkpoint names).
        kernel: int. Kernel size.
        dilation: int. Dilation rate.
        paths: int. Paths it computes: its output has `paths * F` channels,
            path after path (the Assemble grouping: one conv, two paths).
        strided: bool. With `strides=2`: pad explicitly and run a strided
            VALID conv (the original's `conv2d_fixed_padding`), or run at
            stride 1 and keep every other position.
    """

    suffix: str
    kernel: int
    dilation: int
    paths: int
    strided: bool


def path_specs(variant):
    """The convolutions of an SK variant, in creation order.

    Args:
        variant: str. One of `VARIANTS`.

    Returns:
        A tuple of `PathSpec`s whose `paths` sum to `NUM_PATHS`.
    """
    if variant == "assemble":  # one 3x3 conv to 2F, split in two
        return (PathSpec("", 3, 1, NUM_PATHS, strided=True),)
    # SKNet: 3x3 and dilated 3x3 (a 5x5 field), both at stride 1.
    return (
        PathSpec("_a", 3, 1, 1, strided=False),
        PathSpec("_b", 3, 2, 1, strided=False),
    )


@keras.saving.register_keras_serializable(package="assemble_tf")
class SelectiveKernel(keras.layers.Layer):
    """Selective Kernel unit: two paths fused by channel-wise attention.

    The output has `filters` channels, is non-negative and carries no BN or
    ReLU after it. With `strides=2` the "assemble" conv pads 1/1 explicitly
    and runs VALID, as the original; the "sknet" convs run at stride 1 and
    are subsampled, which for the dilated one equals a strided dilated conv
    with padding 2.

    Args:
        filters: int. Output channels F (the bottleneck width).
        strides: int. 1 or 2 (default 1).
        variant: str. "assemble" (one 3x3 conv to 2F split in two) or
            "sknet" (3x3 and dilated 3x3 convs) (default "assemble").
        reduction: int. Ratio r of the attention bottleneck (default 2).
        min_dim: int. Floor L of the attention width (default 32).
        bn_momentum: float. BatchNorm momentum (default 0.997).
        bn_epsilon: float. BatchNorm epsilon (default 1e-5).
        fold_bn: bool. Inference graph: every conv + BN pair (the paths',
            `fc1` + `attn_bn`) is one biased conv, which
            `assemble_tf.export.optimize.fold_batch_norm` fills (default
            False).
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
        fold_bn=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        validation.check_positive_int("filters", filters)
        strides = common.check_int_choice("strides", strides, (1, 2))
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
        # Before: bn_momentum=5 and bn_epsilon=-1 (which build_resnet
        # refuses) were taken, and fold_bn="no" folded.
        self.bn_momentum = common.check_number(
            "bn_momentum", bn_momentum, 0.0, True, 1.0
        )
        self.bn_epsilon = common.check_number("bn_epsilon", bn_epsilon)
        self.fold_bn = common.check_bool("fold_bn", fold_bn)
        self.attention_dim = max(int(filters / reduction), min_dim)
        self.specs = path_specs(variant)
        # Sub-layers in creation order (their order in `weights`); the
        # attribute names are the variable paths and checkpoint keys.
        for spec in self.specs:
            self._add_path_layers(spec)
        self.fc1 = self._pointwise(
            self.attention_dim, "fc1", use_bias=self.fold_bn
        )
        self.attn_bn = self._batch_norm("attn_bn")
        self.fc2 = self._pointwise(NUM_PATHS * filters, "fc2")

    def _batch_norm(self, name):
        if self.fold_bn:
            return None
        return BatchNorm(
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            dtype=self.dtype_policy,
            name=name,
        )

    def _pointwise(self, channels, name, use_bias=False):
        return keras.layers.Conv2D(
            channels,
            1,
            use_bias=use_bias,
            kernel_initializer=common.conv_initializer(),
            dtype=self.dtype_policy,
            name=name,
        )

    def _add_path_layers(self, spec):
        """Sets `pad<suffix>` (strided specs), `conv<suffix>`, `bn<suffix>`."""
        downsamples = spec.strided and self.strides == 2
        if spec.strided:  # the attribute exists (None at stride 1)
            pad = spec.dilation * (spec.kernel - 1) // 2
            setattr(
                self,
                f"pad{spec.suffix}",
                keras.layers.ZeroPadding2D(
                    pad, dtype=self.dtype_policy, name=f"pad{spec.suffix}"
                )
                if downsamples
                else None,
            )
        conv = Conv2D(
            spec.paths * self.filters,
            spec.kernel,
            strides=self.strides if downsamples else 1,
            padding="valid" if downsamples else "same",
            dilation_rate=spec.dilation,
            use_bias=self.fold_bn,
            kernel_initializer=common.conv_initializer(),
            dtype=self.dtype_policy,
            name=f"conv{spec.suffix}",
        )
        setattr(self, f"conv{spec.suffix}", conv)
        setattr(self, f"bn{spec.suffix}", self._batch_norm(f"bn{spec.suffix}"))

    def folded_pairs(self):
        """`{conv attribute: BN attribute}` of the pairs `fold_bn` fuses."""
        pairs = {f"conv{s.suffix}": f"bn{s.suffix}" for s in self.specs}
        pairs["fc1"] = "attn_bn"
        return pairs

    def _path_layers(self, spec):
        """`(pad or None, conv, bn or None)` of `spec`."""
        return (
            getattr(self, f"pad{spec.suffix}", None),
            getattr(self, f"conv{spec.suffix}"),
            getattr(self, f"bn{spec.suffix}"),
        )

    def build(self, input_shape):
        n = input_shape[0]
        for spec in self.specs:
            pad, conv, bn = self._path_layers(spec)
            shape = input_shape
            if pad is not None:
                pad.build(shape)
                shape = pad.compute_output_shape(shape)
            conv.build(shape)
            if bn is not None:
                bn.build(conv.compute_output_shape(shape))
        self.fc1.build((n, 1, 1, self.filters))
        if self.attn_bn is not None:
            self.attn_bn.build((n, 1, 1, self.attention_dim))
        self.fc2.build((n, 1, 1, self.attention_dim))

    def _paths(self, inputs, training):
        """U: the paths side by side on the channels, (N, H, W, 2F)."""
        outputs = []
        for spec in self.specs:
            pad, conv, bn = self._path_layers(spec)
            x = inputs if pad is None else pad(inputs)
            u = conv(x)
            if bn is not None:
                u = bn(u, training=training)
            u = keras.ops.relu(u)
            if self.strides == 2 and not spec.strided:
                u = u[:, ::2, ::2, :]
            outputs.append(u)
        if len(outputs) == 1:
            return outputs[0]
        return keras.ops.concatenate(outputs, axis=-1)

    def _attention(self, u, training):
        """Softmax weights of the paths, (N, 1, 1, 2, F), from U.

        The GAP of U1 + U2 is the sum of the halves of the pooled U: no
        slice of U is copied. The softmax of two logits is the sigmoid of
        their difference (no transposes around a softmax on axis 3).
        """
        f = self.filters
        pooled = _global_average(u)
        s = pooled[..., :f] + pooled[..., f:]
        z = self.fc1(s)
        if self.attn_bn is not None:
            z = self.attn_bn(z, training=training)
        z = keras.ops.relu(z)
        logits = self.fc2(z)
        difference = logits[..., :f] - logits[..., f:]
        return keras.ops.stack(
            [keras.ops.sigmoid(difference), keras.ops.sigmoid(-difference)],
            axis=3,
        )

    def path_weights(self, inputs, training=False):
        """Returns the paths U1, U2 and their softmax weights (N,1,1,2,F)."""
        if not self.built:
            self.build(tuple(inputs.shape))
        u = self._paths(inputs, training)
        f = self.filters
        return u[..., :f], u[..., f:], self._attention(u, training)

    def call(self, inputs, training=None):
        u = self._paths(inputs, training)
        return _weighted_sum(u, self._attention(u, training), self.filters)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        if self.strides == 2:
            h = None if h is None else (h + 1) // 2
            w = None if w is None else (w + 1) // 2
        return (n, h, w, self.filters)

    def macs(self, input_shape):
        """Multiply-adds for one example of `input_shape` (H, W, C)."""
        h, w, cin = input_shape
        _, out_h, out_w, f = self.compute_output_shape((None, *input_shape))
        total = f * self.attention_dim + self.attention_dim * NUM_PATHS * f
        for spec in self.specs:
            # A subsampled conv runs at the input resolution.
            positions = out_h * out_w if spec.strided else h * w
            total += positions * spec.kernel**2 * cin * spec.paths * f
        return total

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
                "fold_bn": self.fold_bn,
            }
        )
        return config


def _global_average(u):
    """GAP of U, (N, 1, 1, C): under TensorFlow in float32 or bfloat16 an
    average pool over the whole (static) map (oneDNN sums in float32, 7x
    faster than Keras' mean in bfloat16, which casts U up first), else a
    mean, which sums in float32. An average pool sums in its own dtype
    elsewhere: in float16 a 64x64 map of 20s summed to inf (every SK
    preset's logits were NaN under mixed_float16, both backends), and JAX's
    in bfloat16 averaged it to 8."""
    h, w = u.shape[1], u.shape[2]
    pooled = (
        h is not None
        and w is not None
        and keras.backend.backend() == "tensorflow"
        and keras.backend.standardize_dtype(u.dtype) in ("float32", "bfloat16")
    )
    if not pooled:
        return keras.ops.mean(u, axis=(1, 2), keepdims=True)
    return keras.ops.average_pool(u, (h, w), strides=1, padding="valid")


def _weighted_sum(u, a, f):
    """V = a1 U1 + a2 U2 for U (N, H, W, 2F) and weights a (N, 1, 1, 2, F).

    In bfloat16 under TensorFlow with a static map of at least 2F
    positions (the block-diagonal matrix no larger than U): one batched
    matmul, (N, HW, 2F) @ [diag(a1); diag(a2)] (N, 2F, F). Otherwise (in
    float32, where oneDNN's multiply and sum are fast, and under JAX, whose
    XLA fuses them) a reduction over a free (..., 2, F) view of U. Measured
    in bfloat16, batch 32: 64x64 map, F = 64: 3.3 ms against 13.2; 16x16,
    F = 128: 1.4 against 1.7; 16x16, F = 256: 3.2 against 2.7.
    """
    h, w = u.shape[1], u.shape[2]
    if (
        keras.backend.backend() == "tensorflow"
        and keras.backend.standardize_dtype(u.dtype) == "bfloat16"
        and h is not None
        and w is not None
        and h * w >= 2 * f
    ):
        diagonal = keras.ops.reshape(a, (-1, NUM_PATHS, f, 1)) * keras.ops.eye(
            f, dtype=a.dtype
        )
        diagonal = keras.ops.reshape(diagonal, (-1, NUM_PATHS * f, f))
        flat = keras.ops.reshape(u, (-1, h * w, NUM_PATHS * f))
        return keras.ops.reshape(
            keras.ops.matmul(flat, diagonal), (-1, h, w, f)
        )
    shape = keras.ops.shape(u)
    u = keras.ops.reshape(u, (-1, shape[1], shape[2], NUM_PATHS, f))
    return keras.ops.sum(u * a, axis=3)
