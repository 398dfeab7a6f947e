"""Argument checks and option errors shared by the library."""

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


class OptionError(ValueError):
    """A missing or unusable option, named by its field.

    The library writes `{field}` where the option's name goes; library
    users read the field (`str(e)`: "`source` is required ..."), the
    binaries print the flag that sets it (`as_flag()`: "--source is
    required ..."; `official.utils.flags.core.clean_errors`).
    """

    def __init__(self, field, template, **values):
        self.field = field
        self.template = template
        self.values = values
        super().__init__(template.format(field=f"`{field}`", **values))

    def as_flag(self, flag=None):
        """The message with `--flag` (default: the field's own name)."""
        return self.template.format(
            field=f"--{flag or self.field}", **self.values
        )
