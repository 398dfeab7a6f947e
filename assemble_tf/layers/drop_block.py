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
Training needs the TensorFlow backend; under another Keras backend (JAX, for
the GPU inference figures) the layer builds and is the identity at
inference.
"""

import keras

from assemble_tf.layers import common


@keras.saving.register_keras_serializable(package="assemble_tf")
class DropBlock2D(keras.layers.Layer):
    """Drops bs x bs blocks of an NHWC feature map during training.

    The keep probability lives in a scalar `tf.Variable` (not a weight, so it
    does not count as a parameter and is not saved in `.weights.h5`); change
    it with `set_keep_prob`, or for a whole model with
    `assemble_tf.layers.set_dropblock_keep_prob`. At inference, and whenever
    the keep probability is 1, the layer is the identity.

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
        common.check_positive_int("block_size", block_size)
        if not isinstance(gamma_scale, (int, float)) or gamma_scale < 0:
            raise ValueError(
                "`gamma_scale` must be a non-negative number. "
                f"Received: gamma_scale={gamma_scale!r}"
            )
        self.keep_prob = float(keep_prob)
        self.block_size = block_size
        self.gamma_scale = float(gamma_scale)
        self.shared_mask = bool(shared_mask)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.input_spec = keras.layers.InputSpec(ndim=4)
        self.keep_prob_variable = None

    def build(self, input_shape):
        if keras.backend.backend() != "tensorflow":
            return  # inference only: the layer is the identity there
        import tensorflow as tf

        # A raw tf.Variable: tracked for tf.train.Checkpoint and SavedModel,
        # but not a Keras weight, so parameter counts stay exact.
        self.keep_prob_variable = tf.Variable(
            self.keep_prob,
            trainable=False,
            dtype="float32",
            name="keep_prob",
        )

    def set_keep_prob(self, value):
        """Sets the keep probability used from the next call on."""
        common.check_probability("keep_prob", float(value))
        self._require_tensorflow()
        self.keep_prob_variable.assign(float(value))

    def drop_mask(self, inputs):
        """Returns the binary keep mask (1 = kept) for `inputs`."""
        import tensorflow as tf

        shape = tf.shape(inputs)
        n, c = shape[0], shape[3]
        # Static sizes when known (the usual case: XLA-friendly max-pool);
        # dynamic ones otherwise.
        h = inputs.shape[1] if inputs.shape[1] is not None else shape[1]
        w = inputs.shape[2] if inputs.shape[2] is not None else shape[2]
        static = isinstance(h, int) and isinstance(w, int)
        if static:
            bs_h, bs_w = min(self.block_size, h), min(self.block_size, w)
        else:
            bs_h = tf.minimum(self.block_size, h)
            bs_w = tf.minimum(self.block_size, w)
        seed_h, seed_w = h - bs_h + 1, w - bs_w + 1
        gamma = (
            self.gamma_scale
            * (1.0 - self.keep_prob_variable)
            / tf.cast(bs_h * bs_w, "float32")
            * tf.cast(h * w, "float32")
            / tf.cast(seed_h * seed_w, "float32")
        )
        batch = 1 if self.shared_mask else n
        uniform = keras.random.uniform(
            tf.stack([batch, seed_h, seed_w, c]), seed=self.seed_generator
        )
        seeds = tf.cast(uniform < gamma, "float32")
        pad_h, pad_w = bs_h - 1, bs_w - 1
        seeds = tf.pad(
            seeds,
            [
                [0, 0],
                [pad_h - pad_h // 2, pad_h // 2],
                [pad_w - pad_w // 2, pad_w // 2],
                [0, 0],
            ],
        )
        # A stride-1 SAME max-pool grows every seed into a bs x bs block.
        if static:
            dropped = tf.nn.max_pool2d(
                seeds, ksize=(bs_h, bs_w), strides=1, padding="SAME"
            )
        else:
            dropped = tf.nn.dilation2d(
                seeds,
                filters=tf.zeros(tf.stack([bs_h, bs_w, c])),
                strides=[1, 1, 1, 1],
                padding="SAME",
                data_format="NHWC",
                dilations=[1, 1, 1, 1],
            )
        return 1.0 - dropped

    def _drop(self, inputs):
        import tensorflow as tf

        mask = self.drop_mask(inputs)
        scale = tf.cast(tf.size(mask), "float32") / (tf.reduce_sum(mask) + 1e-8)
        return inputs * tf.cast(mask * scale, inputs.dtype)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        self._require_tensorflow()
        import tensorflow as tf

        return tf.cond(
            self.keep_prob_variable < 1.0,
            lambda: self._drop(inputs),
            lambda: tf.identity(inputs),
        )

    def _require_tensorflow(self):
        if keras.backend.backend() != "tensorflow":
            raise NotImplementedError(
                f"{self.name}: DropBlock2D trains only under the TensorFlow "
                f"backend (KERAS_BACKEND={keras.backend.backend()!r}); "
                "use it for inference there, or set KERAS_BACKEND=tensorflow."
            )

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
