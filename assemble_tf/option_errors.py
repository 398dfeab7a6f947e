"""Deprecated location of the multi-option error: use
`official.utils.misc.validation.OptionError(field, template, others)`."""

from official.utils.misc.validation import OptionError as OptionsError

__all__ = ["OptionsError"]
