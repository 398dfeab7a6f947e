"""Normalised-softmax (cosine) classifier.

Zhai & Wu, "Classification is a Strong Baseline for Deep Metric Learning",
BMVC 2019, https://arxiv.org/abs/1811.12649 (NormSoftmax): the logits are
the cosine similarities between the embedding and one weight vector per
class, divided by a temperature T (0.05 in the paper), and are trained with
ordinary softmax cross-entropy. Both the embedding and the class weights are
L2-normalised, so every logit lies in [-1 / T, 1 / T]; the normalised
embedding is then a good retrieval feature under cosine distance.
"""

import keras

from assemble_tf.layers import common
from official.utils.misc import validation

# Floor of the squared L2 norm: a zero vector normalises to zero (finite).
_EPSILON = 1e-12


def _l2_normalize(x, axis):
    square_sum = keras.ops.sum(keras.ops.square(x), axis=axis, keepdims=True)
    return x * keras.ops.rsqrt(keras.ops.maximum(square_sum, _EPSILON))


@keras.saving.register_keras_serializable(package="assemble_tf")
class CosineClassifier(keras.layers.Layer):
    """Logits `cos(x, w_c) / temperature` of a (N, D) embedding.

    `normalize(x, axis=-1) @ normalize(kernel, axis=0) / temperature` with a
    bias-free kernel of shape (D, units). The product is computed in
    float32 under any dtype policy (the input is cast up; the kernel
    variable is float32); the output has the layer's compute dtype, so give
    the layer `dtype="float32"` for float32 logits under mixed precision
    (as `build_resnet(classifier="cosine")` does).

    Args:
        units: int. Number of classes (logits), >= 1.
        temperature: float. T > 0 dividing the cosines (default 0.05, as
            the paper); logits lie in [-1 / T, 1 / T].
        kernel_initializer: Initializer of the class weights (default
            "glorot_uniform"; only their directions matter).
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Reference:
        Zhai & Wu 2019, https://arxiv.org/abs/1811.12649.
    """

    def __init__(
        self,
        units,
        temperature=0.05,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        validation.check_positive_int("units", units)
        # inf: every logit 0 (build_resnet refused it, the layer took it).
        self.temperature = common.check_number("temperature", temperature)
        self.units = units
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units),
            initializer=self.kernel_initializer,
            # Read at full precision under mixed precision too.
            autocast=False,
            name="kernel",
        )

    def call(self, inputs):
        x = _l2_normalize(keras.ops.cast(inputs, "float32"), axis=-1)
        w = _l2_normalize(keras.ops.cast(self.kernel, "float32"), axis=0)
        logits = keras.ops.matmul(x, w) / self.temperature
        return keras.ops.cast(logits, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def macs(self, input_shape):
        """Multiply-adds for one example of `input_shape` (..., D)."""
        return input_shape[-1] * self.units

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "temperature": self.temperature,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
