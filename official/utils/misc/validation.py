"""Argument checks shared by the library: one message format everywhere."""

import numbers


def check_positive_int(name, value):
    """Returns `value` as an int, or raises naming `name` and the value.

    Raises:
        ValueError: `value` is not an integer (a bool is not one) or < 1.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < 1
    ):
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )
    return int(value)
