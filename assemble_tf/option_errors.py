"""Option errors whose message names more than one option.

`official.utils.misc.validation.OptionError` names the one option at
fault (`{field}`). `OptionsError` also names `others`, each written
`{name}` in the template: library users read "`preset` needs `weights`",
a binary prints "--preset needs --weights" (`as_flag`, through
`official.utils.flags.core.clean_errors`).
"""

from official.utils.misc.validation import OptionError


class OptionsError(OptionError):
    """An `OptionError` also naming `others` (`{name}` in the template).

    Args:
        field: the option at fault (`{field}` in the template).
        template: the message, with `{field}`, `{name}` of each of
            `others` and `{key}` of each of `values`.
        others: names of the other options the message mentions.
        **values: the other values of the message.
    """

    def __init__(self, field, template, others, **values):
        self.others = tuple(others)
        names = {name: f"`{name}`" for name in self.others}
        super().__init__(field, template, **names, **values)

    def as_flag(self, flag=None):
        """The message with every option named as its `--flag`."""
        values = {**self.values, **{n: f"--{n}" for n in self.others}}
        return self.template.format(field=f"--{flag or self.field}", **values)
