"""DropBlock: structured dropout of contiguous regions of a feature map.

Ghiasi et al., "DropBlock: A regularization method for convolutional
networks", NeurIPS 2018, https://arxiv.org/abs/1810.12890. Assemble-ResNet
(Lee et al. 2020, https://arxiv.org/abs/2001.06268) applies it in S3 and S4
with block size 7, gamma scales 0.25 and 1.0, and a keep probability decayed
linearly from 1.0 to 0.9. Numerics follow clovaai/assembled-cnn
`nets/blocks.py: dropblock`:

    gamma = gamma_scale * (1 - keep_prob) / bs^2 * (H W) / ((H-bs+1)(W-bs+1))

Bernoulli(gamma) seeds on the (H-bs+1) x (W-bs+1) grid are padded back to
H x W and grown into bs x bs blocks by a stride-1 max-pool; the kept
activations are rescaled by numel(mask) / sum(mask) over the whole mask.

Where we differ from the original, on purpose: masks are drawn per example, as
in the DropBlock paper, with `shared_mask=True` for the original's one mask
per batch; the block is clipped to the map, so maps smaller than the block
(or not square) work; the keep probability is read from a variable that a
schedule updates (`set_keep_prob`) rather than baked into the graph.

The mask is `keras.ops` / `keras.random` and trains on every backend. Under
TensorFlow the keep probability is a `tf.Variable` (checkpointed, assigned
by the train step); a pure JAX step passes it in instead, traced, through
`keep_prob_override` (the noise comes from the layer's `SeedGenerator`,
whose state `stateless_call` threads through the step).
"""

import contextlib

import keras
import numpy as np
from keras import ops

from assemble_tf.layers import common
from official.utils.misc import validation


@contextlib.contextmanager
def keep_prob_override(layers, keep_prob):
    """Makes `layers` (DropBlock2D) use `keep_prob` (a number or a traced
    scalar) while the block runs: how a stateless step feeds its schedule."""
    for layer in layers:
        object.__setattr__(layer, "_keep_prob_override", keep_prob)
    try:
        yield
    finally:
        for layer in layers:
            object.__setattr__(layer, "_keep_prob_override", None)


def _replica_id():
    """This replica's index under a TensorFlow strategy of several
    replicas (in its replica context), else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync < 2:
        return None
    return context.replica_id_in_sync_group


def _seed_padding(block_h, block_w):
    """NHWC paddings that bring the seed grid back to H x W (numbers or
    tensors), the block's extra row / column at the top / left."""
    pad_h, pad_w = block_h - 1, block_w - 1
    return [
        [0, 0],
        [pad_h - pad_h // 2, pad_h // 2],
        [pad_w - pad_w // 2, pad_w // 2],
        [0, 0],
    ]


@keras.saving.register_keras_serializable(package="assemble_tf")
class DropBlock2D(keras.layers.Layer):
    """Drops bs x bs blocks of an NHWC feature map during training.

    Under TensorFlow the keep probability lives in a scalar `tf.Variable`
    (not a weight, so it does not count as a parameter and is not saved in
    `.weights.h5`); change it with `set_keep_prob`, or for a whole model with
    `assemble_tf.layers.set_dropblock_keep_prob` (under JAX a jitted step
    passes it with `keep_prob_override`). At inference, and whenever the
    keep probability is 1, the layer is the identity.

    Args:
        keep_prob: float. Initial keep probability in (0, 1] (default 1.0).
        block_size: int. Side of a dropped block (default 7).
        gamma_scale: float. Multiplier of the seed rate (default 1.0).
        shared_mask: bool. One mask for the whole batch, as the original,
            instead of one per example (default False).
        seed: int or None. Seed of the layer's random stream (default None).
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Reference:
        Ghiasi et al. 2018, https://arxiv.org/abs/1810.12890.
    """

    def __init__(
        self,
        keep_prob=1.0,
        block_size=7,
        gamma_scale=1.0,
        shared_mask=False,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        common.check_probability("keep_prob", keep_prob)
        validation.check_positive_int("block_size", block_size)
        self.keep_prob = float(keep_prob)
        self.block_size = block_size
        # inf zeroed the whole map, NaN never dropped (before: taken).
        self.gamma_scale = common.check_number(
            "gamma_scale", gamma_scale, low_included=True
        )
        if not isinstance(shared_mask, (bool, np.bool_)):
            # Before: bool("no") turned the shared mask on.
            raise ValueError(
                "`shared_mask` must be True or False. "
                f"Received: shared_mask={shared_mask!r}"
            )
        self.shared_mask = bool(shared_mask)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.input_spec = keras.layers.InputSpec(ndim=4)
        self.keep_prob_variable = None
        self._keep_prob_value = self.keep_prob
        self._keep_prob_override = None
        self._traced_keep_prob = None

    def build(self, input_shape):
        if keras.backend.backend() != "tensorflow":
            return  # the keep probability is a Python number or passed in
        import tensorflow as tf

        # A raw tf.Variable: tracked for tf.train.Checkpoint and SavedModel,
        # but not a Keras weight, so parameter counts stay exact.
        # The value set last (before: a `set_keep_prob` before the first
        # call was lost, and the layer dropped at the constructor's).
        self.keep_prob_variable = tf.Variable(
            self._keep_prob_value,
            trainable=False,
            dtype="float32",
            name="keep_prob",
        )

    def set_keep_prob(self, value):
        """Sets the keep probability used from the next call on.

        Under JAX a train step Keras has already jitted keeps the value it
        traced: set it with `set_dropblock_keep_prob(model, value)`, which
        rebuilds that step.
        """
        common.check_probability("keep_prob", value)
        self._keep_prob_value = float(value)
        if self.keep_prob_variable is not None:
            self.keep_prob_variable.assign(float(value))

    def current_keep_prob(self):
        """The keep probability the next training call uses."""
        if self._keep_prob_override is not None:
            return self._keep_prob_override
        if self.keep_prob_variable is not None:
            return self.keep_prob_variable
        return self._keep_prob_value

    def drop_mask(self, inputs, keep_prob=None):
        """Returns the binary keep mask (1 = kept) for `inputs`."""
        if keep_prob is None:
            keep_prob = self.current_keep_prob()
        h, w = inputs.shape[1], inputs.shape[2]
        if h is None or w is None:
            return self._dynamic_mask(inputs, keep_prob)
        c = inputs.shape[3]
        bs_h, bs_w = min(self.block_size, h), min(self.block_size, w)
        seed_h, seed_w = h - bs_h + 1, w - bs_w + 1
        gamma = (
            self.gamma_scale
            * (1.0 - ops.cast(keep_prob, "float32"))
            / float(bs_h * bs_w)
            * float(h * w)
            / float(seed_h * seed_w)
        )
        batch = 1 if self.shared_mask else ops.shape(inputs)[0]
        uniform = self._uniform((batch, seed_h, seed_w, c))
        seeds = ops.cast(uniform < gamma, "float32")
        seeds = ops.pad(seeds, _seed_padding(bs_h, bs_w))
        # A stride-1 SAME max-pool grows every seed into a bs x bs block.
        dropped = ops.max_pool(
            seeds, pool_size=(bs_h, bs_w), strides=1, padding="same"
        )
        return 1.0 - dropped

    def _uniform(self, shape):
        """Uniform draws in [0, 1) of `shape` from the layer's generator;
        in each replica of a TensorFlow strategy, that replica's own.

        The generator's state is a mirrored variable that every replica
        advances alike: before, every replica drew the masks of the
        others (N GPUs, an N-th of the distinct masks), as the Mixup
        draws did before `tf_step._replica_seed`.
        """
        replica = _replica_id()
        if replica is None:
            return keras.random.uniform(shape, seed=self.seed_generator)
        import tensorflow as tf

        seed = tf.random.experimental.stateless_fold_in(
            tf.cast(self.seed_generator.next(), tf.int64), replica
        )
        return tf.random.stateless_uniform(shape, seed=seed)

    def _dynamic_mask(self, inputs, keep_prob):
        """`drop_mask` for maps of unknown height or width (TensorFlow
        graphs only; JAX shapes are always static)."""
        import tensorflow as tf

        shape = tf.shape(inputs)
        n, h, w, c = shape[0], shape[1], shape[2], shape[3]
        bs_h = tf.minimum(self.block_size, h)
        bs_w = tf.minimum(self.block_size, w)
        seed_h, seed_w = h - bs_h + 1, w - bs_w + 1
        gamma = (
            self.gamma_scale
            * (1.0 - tf.cast(keep_prob, "float32"))
            / tf.cast(bs_h * bs_w, "float32")
            * tf.cast(h * w, "float32")
            / tf.cast(seed_h * seed_w, "float32")
        )
        batch = 1 if self.shared_mask else n
        uniform = self._uniform(tf.stack([batch, seed_h, seed_w, c]))
        seeds = tf.cast(uniform < gamma, "float32")
        seeds = tf.pad(seeds, _seed_padding(bs_h, bs_w))
        dropped = tf.nn.dilation2d(
            seeds,
            filters=tf.zeros(tf.stack([bs_h, bs_w, c])),
            strides=[1, 1, 1, 1],
            padding="SAME",
            data_format="NHWC",
            dilations=[1, 1, 1, 1],
        )
        return 1.0 - dropped

    def _drop(self, inputs, keep_prob):
        mask = self.drop_mask(inputs, keep_prob)
        size = ops.cast(ops.size(mask), "float32")
        scale = size / (ops.sum(mask) + 1e-8)
        return inputs * ops.cast(mask * scale, inputs.dtype)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        keep = self.current_keep_prob()
        if isinstance(keep, float):
            # What a traced step (Keras' jitted one under JAX) bakes in:
            # `set_dropblock_keep_prob` rebuilds it when it differs.
            self._traced_keep_prob = keep
            return inputs if keep >= 1.0 else self._drop(inputs, keep)
        if keras.backend.backend() == "tensorflow":
            return ops.cond(
                keep < 1.0,
                lambda: self._drop(inputs, keep),
                lambda: ops.copy(inputs),
            )
        # No branch in a traced JAX step (the seed state must leave it):
        # at keep_prob = 1 no seed falls and the scale is exactly 1.
        return self._drop(inputs, keep)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "keep_prob": self.keep_prob,
                "block_size": self.block_size,
                "gamma_scale": self.gamma_scale,
                "shared_mask": self.shared_mask,
                "seed": self.seed,
            }
        )
        return config
