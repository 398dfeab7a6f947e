"""Generalized-mean (GeM) pooling.

Radenovic et al., "Fine-tuning CNN Image Retrieval with No Human
Annotation", TPAMI 2018, https://arxiv.org/abs/1711.02512. clovaai/assembled-
cnn `nets/resnet_model.py` (pool_type='gem') uses a fixed p = 3 and clips the
inputs to [1e-6, 1e12]: (mean x^p)^(1/p). p = 1 is average pooling and large
p approaches max pooling.
"""

import keras

from assemble_tf.layers import common


@keras.saving.register_keras_serializable(package="assemble_tf")
class GeMPooling2D(keras.layers.Layer):
    """Global generalized-mean pooling of an NHWC map to (N, C).

    Args:
        p: float. The exponent (default 3.0).
        trainable_p: bool. Learn p as a weight (default False, as the
            original).
        epsilon: float. Lower clip of the inputs (default 1e-6).
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Reference:
        Radenovic et al. 2018, https://arxiv.org/abs/1711.02512.
    """

    def __init__(self, p=3.0, trainable_p=False, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        # epsilon <= 0: the power of a 0 (or negative) input, NaN or inf;
        # p NaN or inf: NaN outputs (before: taken); trainable_p="no" was
        # True.
        self.p = common.check_number("p", p)
        self.trainable_p = common.check_bool("trainable_p", trainable_p)
        self.epsilon = common.check_number("epsilon", epsilon)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        if self.trainable_p:
            self.p_weight = self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(self.p),
                name="p",
            )

    def call(self, inputs):
        p = self.p_weight if self.trainable_p else self.p
        p = keras.ops.cast(p, "float32")
        x = keras.ops.clip(
            keras.ops.cast(inputs, "float32"), self.epsilon, 1e12
        )
        pooled = keras.ops.mean(keras.ops.power(x, p), axis=(1, 2))
        return keras.ops.cast(keras.ops.power(pooled, 1.0 / p), inputs.dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "p": self.p,
                "trainable_p": self.trainable_p,
                "epsilon": self.epsilon,
            }
        )
        return config
