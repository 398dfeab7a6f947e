"""Flags defined from a table: one row per flag, one loop.

A binary's flags module keeps its flags as data, a tuple of rows

    ("integer", "batch_size", 64, "Images per batch.", {"lower_bound": 1})

`(kind, name, default, help[, options])`: `kind` picks absl's
`DEFINE_<kind>` (string, integer, float, bool, enum, list) and the optional
`options` are its further keyword arguments (`lower_bound`, `enum_values`).
"""

from absl import flags


def define_table(table, module_name):
    """Defines every flag of `table` on absl's global FLAGS.

    Args:
        table: rows `(kind, name, default, help[, options])`.
        module_name: the module that owns the flags in `--helpfull` (the
            flags module holding the table: its `__name__`).
    """
    for kind, name, default, help_text, *options in table:
        define = getattr(flags, f"DEFINE_{kind}")
        kwargs = options[0] if options else {}
        # `help` by keyword: DEFINE_enum's third argument is enum_values.
        define(name, default, help=help_text, module_name=module_name, **kwargs)
