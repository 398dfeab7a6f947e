"""Shared helpers for Assemble-TF layers: initializers and validation.

Initializers follow clovaai/assembled-cnn `nets/model_helper.py`: convolutions
use TF1 `variance_scaling_initializer()` defaults (scale 1.0, fan_in,
truncated normal), not He scale 2.0; the dense head uses glorot-uniform.
"""

import keras


def conv_initializer():
    """Variance scaling, scale 1.0, fan_in, truncated normal (TF1 default)."""
    return keras.initializers.VarianceScaling(
        scale=1.0, mode="fan_in", distribution="truncated_normal"
    )


def check_probability(name, value):
    """Raises ValueError naming `name` unless 0 < value <= 1."""
    if not isinstance(value, (int, float)) or not 0.0 < float(value) <= 1.0:
        raise ValueError(
            f"`{name}` must be a number in (0, 1]. Received: {name}={value!r}"
        )
