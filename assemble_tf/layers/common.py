"""Shared helpers for Assemble-TF layers: initializers and validation.

Initializers follow clovaai/assembled-cnn `nets/model_helper.py`: convolutions
use TF1 `variance_scaling_initializer()` defaults (scale 1.0, fan_in,
truncated normal), not He scale 2.0; the dense head uses glorot-uniform.
"""

import math
import numbers

import keras
import numpy as np


def conv_initializer():
    """Variance scaling, scale 1.0, fan_in, truncated normal (TF1 default)."""
    return keras.initializers.VarianceScaling(
        scale=1.0, mode="fan_in", distribution="truncated_normal"
    )


def _is_number(value):
    """A real number that is no bool (True passed as 1 before)."""
    return isinstance(value, numbers.Real) and not isinstance(
        value, (bool, np.bool_)
    )


def check_probability(name, value):
    """Raises ValueError naming `name` unless 0 < value <= 1."""
    if not _is_number(value) or not 0.0 < float(value) <= 1.0:
        raise ValueError(
            f"`{name}` must be a number in (0, 1]. Received: {name}={value!r}"
        )


def check_number(name, value, low=0.0, low_included=False, high=math.inf):
    """Returns `value` as a float, or raises ValueError naming `name`
    unless it is a finite number above `low` (or equal to it, with
    `low_included`) and below `high` (before: NaN or inf was taken and gave
    NaN, all-zero or never-dropped outputs)."""
    ok = _is_number(value) and math.isfinite(value) and value < high
    ok = ok and (value >= low if low_included else value > low)
    if not ok:
        bound = f">= {low:g}" if low_included else f"> {low:g}"
        if high < math.inf:
            bound += f" and < {high:g}"
        raise ValueError(
            f"`{name}` must be a finite number {bound}. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def check_int_choice(name, value, choices):
    """Returns `value` as an int, or raises ValueError naming `name` unless
    it is an integer (numpy's too; no bool, no float: 3.0 == 3 and True ==
    1 passed before) among `choices` (integers >= 1 alone:
    `validation.check_positive_int`)."""
    integer = isinstance(value, numbers.Integral) and not isinstance(
        value, (bool, np.bool_)
    )
    if not integer or value not in choices:
        raise ValueError(
            f"`{name}` must be one of {tuple(choices)}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def check_bool(name, value):
    """Returns `value` as a bool, or raises ValueError naming `name` unless
    it is True or False (before: bool("no") switched a feature on)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(
            f"`{name}` must be True or False. Received: {name}={value!r}"
        )
    return bool(value)
