"""absl flag helpers in the shape of TF Model Garden `official/utils/flags`.

Binaries define their flags through functions and read them once; library
code never touches `FLAGS` (tensorflow/models official/utils/flags/
guidelines.md). Only flags the user set explicitly override a preset.
"""

import textwrap

from absl import flags


def help_wrap(text, width=76, indent="  "):
    """Wraps flag help so `--help` stays readable."""
    return textwrap.fill(
        textwrap.dedent(text).strip(), width=width, subsequent_indent=indent
    )


def explicitly_set(flag_values, names):
    """Returns `{name: value}` for the flags in `names` the user set."""
    return {
        name: flag_values[name].value
        for name in names
        if name in flag_values and flag_values[name].present
    }


def parse_int_list(flag_name, text, length=None):
    """Parses "3,4,6,3" into a tuple of ints, naming the flag on error."""
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise flags.ValidationError(
            f"--{flag_name} takes comma-separated integers, e.g. 3,4,6,3. "
            f"Received: --{flag_name}={text}"
        ) from None
    if length is not None and len(values) != length:
        raise flags.ValidationError(
            f"--{flag_name} needs {length} integers. "
            f"Received: --{flag_name}={text}"
        )
    return values


def register_int_list_validator(flag_name, length):
    """Rejects a malformed comma-separated list at parse time."""

    def check(text):
        parse_int_list(flag_name, text, length)
        return True

    flags.register_validator(flag_name, check)


def clean_errors(main, errors=(ValueError, FileNotFoundError, FileExistsError)):
    """Wraps an absl `main` so expected errors print one message, no trace.

    The message should name the flag or file and the fix; the exit code is 2.
    """
    import functools
    import sys

    @functools.wraps(main)
    def wrapped(argv):
        try:
            return main(argv)
        except errors as e:
            print(f"ERROR: {e}", file=sys.stderr)
            sys.exit(2)

    return wrapped
