"""Argument checks and option errors shared by the library."""

import contextlib
import copy
import errno
import math
import numbers
import os
import re


def check_positive_int(name, value):
    """Returns `value` as an int, or raises naming `name` and the value.

    Raises:
        ValueError: `value` is not an integer (a bool is not one) or < 1.
    """
    return _check_int(name, value, 1, "a positive integer")


def check_non_negative_int(name, value):
    """Returns `value` as an int, or raises naming `name` and the value.

    Raises:
        ValueError: `value` is not an integer (a bool is not one) or < 0.
    """
    return _check_int(name, value, 0, "an integer >= 0")


def _check_int(name, value, minimum, what):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
    ):
        raise ValueError(f"`{name}` must be {what}. Received: {name}={value!r}")
    return int(value)


# {option: flag name} while a binary runs (`options_as_flags`), else None.
_flag_names = None


@contextlib.contextmanager
def options_as_flags(names=None):
    """Within the block, `str()` of an `OptionError` is its `as_flag(names=
    names)` form: a binary's warnings (`OptionError`s not raised, printed
    mid-run by the library) name flags as its errors do (before: "batch_size"
    and "eval_preprocessing=..." where the user had typed `--batch_size`).

    Args:
        names: {option: flag name} for options whose flag is named
            otherwise.
    """
    global _flag_names
    before = _flag_names
    _flag_names = dict(names or {})
    try:
        yield
    finally:
        _flag_names = before


class OptionError(ValueError):
    """A missing or unusable option, named by its field.

    The library writes `{field}` where the option's name goes (and
    `{name}` for each of `others`, the other options the message
    mentions); library users read the fields (`str(e)`: "`source` is
    required ..."), the binaries print the flags that set them
    (`as_flag()`, the same with each option as its command-line flag;
    `official.utils.flags.core.clean_errors`), and so does `str(e)` while a
    binary runs (`options_as_flags`). Not raised, it is a warning that
    names options the same way.

    Args:
        field: the option at fault.
        template: the message, with `{field}`, `{name}` for each of
            `others` and `{key}` for each of `values`.
        others: names of other options the message mentions.
        **values: the other values of the message.
    """

    def __init__(self, field, template, others=(), **values):
        self.field = field
        self.template = template
        self.others = tuple(others)
        self.values = values
        names = {n: f"`{n}`" for n in self.others}
        super().__init__(template.format(field=f"`{field}`", **names, **values))

    def __str__(self):
        if _flag_names is not None:
            return self.as_flag(names=_flag_names)
        return super().__str__()

    def __reduce__(self):
        # Pickled (e.g. from a worker process) with its parts: subclasses
        # take other arguments than the message that `args` holds.
        state = (self.field, self.template, self.others, self.values)
        return _rebuild_option_error, (type(self), str(self), state)

    def as_flag(self, flag=None, names=None):
        """The message as a binary prints it: every option as its flag.

        Args:
            flag: the flag of the field (default: `names`' entry, else the
                field's own name).
            names: {option: flag name} of options whose flag is named
                otherwise (e.g. {"preset": "presets"}); the rest keep
                their names.
        """
        names = names or {}
        flags = {n: f"--{names.get(n, n)}" for n in self.others}
        field = flag or names.get(self.field, self.field)
        return self.template.format(field=f"--{field}", **flags, **self.values)

    def bare(self):
        """The message with every option by its bare name (`base_width=0
        is invalid ...`): for an error quoted inside another option's, e.g.
        a key of `model_overrides`."""
        names = {n: n for n in self.others}
        return self.template.format(field=self.field, **names, **self.values)

    def noted(self, text, **values):
        """This error with `text` (a template too: `{field}` and the
        error's others, plus `values`) appended: what the caller knows of
        the value, e.g. that it came from a preset."""
        error = self.renamed({}, **values)
        error.template = f"{self.template} {text}"
        return error.renamed({})

    def renamed(self, names, **values):
        """This error with options renamed ({option: new name}) and
        `values` replaced: the error of a library call made for an option
        the caller names otherwise (`build_model`'s `preset` is a
        teacher's `teacher_preset`)."""
        template = self.template
        for old, new in names.items():
            template = template.replace("{" + old + "}", "{" + new + "}")
        error = copy.copy(self)
        error.field = names.get(self.field, self.field)
        error.template = template
        error.others = tuple(names.get(n, n) for n in self.others)
        error.values = {**self.values, **values}
        quoted = {n: f"`{n}`" for n in error.others}
        error.args = (
            template.format(field=f"`{error.field}`", **quoted, **error.values),
        )
        return error


def _rebuild_option_error(cls, message, state):
    # OSError (FileNotFoundError ...) has its own __new__.
    base = OSError if issubclass(cls, OSError) else Exception
    error = base.__new__(cls)
    Exception.__init__(error, message)
    error.field, error.template, error.others, error.values = state
    return error


class MissingPathError(OptionError, FileNotFoundError):
    """An option names a file or folder that is not there: an
    `OptionError` (`str(e)` names the field, `as_flag()` its flag) that
    `except FileNotFoundError` also catches."""


class PathExistsError(OptionError, FileExistsError):
    """An option names an output that is already there (and nothing
    allows replacing it): an `OptionError` that `except FileExistsError`
    also catches, with `errno` EEXIST."""

    def __init__(self, field, template, others=(), **values):
        super().__init__(field, template, others, **values)
        self.errno = errno.EEXIST


class PathNotWritableError(OptionError, PermissionError):
    """An option names an output in a folder that cannot be written to:
    an `OptionError` (one line in the binaries) that `except
    PermissionError` also catches, with the failure's `errno`."""

    def __init__(self, field, template, others=(), errno_code=None, **values):
        super().__init__(field, template, others, **values)
        self.errno = errno_code


def check_choices(options, choices):
    """Raises `OptionError` for the first attribute of `options` that is
    set (not None) and not among its allowed values.

    Args:
        options: any object (an options dataclass).
        choices: {attribute name: allowed values}.
    """
    for name, allowed in choices.items():
        value = getattr(options, name)
        if value is not None and value not in allowed:
            raise OptionError(
                name,
                "{field}={value!r}: use one of {allowed}.",
                value=value,
                allowed=", ".join(map(str, allowed)),
            )


def check_distinct(options, names):
    """Raises `OptionError` for the first list attribute of `options` (in
    `names`) that holds an entry more than once (it would be done twice).
    """
    for name in names:
        _refuse_repeats(name, [str(v) for v in getattr(options, name) or ()])


def _refuse_repeats(field, values):
    """Raises `OptionError` (`field`) where `values` (strings) holds an
    entry more than once."""
    twice = sorted({v for v in values if values.count(v) > 1})
    if twice:
        raise OptionError(
            field,
            "{field}={values} names {twice} more than once.",
            values=",".join(values),
            twice=", ".join(twice),
        )


def split_names(field, value):
    """'a,b' or ('a', 'b') -> ('a', 'b'); '' or None -> ().

    Raises:
        OptionError: (`field`) an empty name, as in 'a,,b' or ',' (before:
            dropped, and `--corruptions=,` generated all 19), or a name
            given twice (done twice, or silently once).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return ()
    if isinstance(value, str):
        value = value.split(",")
    names = tuple(str(n).strip() for n in value)
    if not all(names):
        raise OptionError(
            field,
            "{field}={value} holds an empty name (a comma too many?); "
            "separate the names by single commas.",
            value=",".join(names),
        )
    _refuse_repeats(field, list(names))
    return names


def check_at_least(options, lowest):
    """Raises `OptionError` for the first attribute of `options` that is
    set (not None) and below its lowest value.

    Args:
        options: any object (an options dataclass).
        lowest: {attribute name: lowest allowed value}.
    """
    for name, low in lowest.items():
        value = getattr(options, name)
        if isinstance(value, float) and not math.isfinite(value):
            # Before: NaN and inf passed (--min_seconds=nan timed forever).
            raise OptionError(
                name,
                "{field}={value} must be a finite number of at least {low}.",
                value=value,
                low=low,
            )
        if value is not None and value < low:
            raise OptionError(
                name,
                "{field}={value} must be at least {low}.",
                value=value,
                low=low,
            )


def check_creatable(options, folders=(), files=()):
    """Refuses output paths that cannot be made because a file sits where
    a folder must be: found before the work, not after it.

    Args:
        options: an object with the named attributes (None values pass).
        folders: attributes naming output folders.
        files: attributes naming output files (their folders are checked).

    Raises:
        OptionError: naming the option and the file in the way.
    """
    for name in (*folders, *files):
        check_creatable_path(name, getattr(options, name), name in folders)


def check_creatable_path(field, path, folder=True):
    """`check_creatable` of one path: `field` names the option, `folder`
    says whether `path` is a folder to make (else a file, whose folder is
    checked). None or empty passes.

    Raises:
        OptionError: naming `field` and the file in the way.
    """
    import os

    if not path:
        return
    current = os.path.abspath(path)
    if not folder:
        current = os.path.dirname(current)
    while not os.path.exists(current):
        current = os.path.dirname(current)
    if not os.path.isdir(current):
        raise OptionError(
            field,
            "{field}={path} cannot be created: {file} is a file, not a folder.",
            path=path,
            file=current,
        )
    _probe_folder(field, path, current)


def _probe_folder(field, path, folder):
    """Makes and removes an empty folder in `folder`, the nearest existing
    one of `path`: whether the job can write there, found before the work
    (permission bits say nothing for root, and nothing of /proc or a
    read-only mount; before: "[Errno 2] No such file or directory:
    '/proc/out'" after a whole evaluation, or a NotADirectoryError
    traceback).

    Raises:
        PathNotWritableError: naming `field`, the folder and the reason.
    """
    import tempfile

    try:
        os.rmdir(tempfile.mkdtemp(prefix=".write-check-", dir=folder))
    except OSError as e:
        raise not_writable(field, path, folder, e) from None


def not_writable(field, path, folder, error):
    """The `PathNotWritableError` of an output `path` (of option `field`)
    for which no folder could be made in `folder` (`error`, an OSError)."""
    return PathNotWritableError(
        field,
        "{field}={path} cannot be written: no folder can be made in "
        "{folder} ({reason}); choose another {field}.",
        errno_code=error.errno,
        path=path,
        folder=folder,
        reason=error.strerror or error,
    )


def check_replaceable(options, names, field="output_dir"):
    """Refuses an output folder that holds any of `names` (an earlier
    run's report) unless `options.overwrite`: a benchmark's figures are
    measurements, and a rerun into the same folder replaced them without
    a word. Checked before the work.

    Args:
        options: an object with `field` and `overwrite` attributes.
        names: the files the job writes into the folder.
        field: the attribute naming the folder (None or empty passes).

    Raises:
        PathExistsError: naming `field`, the files and `overwrite`.
    """
    import os

    folder = getattr(options, field)
    if not folder or options.overwrite:
        return
    found = [n for n in names if os.path.exists(os.path.join(folder, n))]
    if found:
        raise PathExistsError(
            field,
            "{field}={folder} holds {found} of an earlier run; pass "
            "{overwrite} to replace them, or name another folder.",
            ["overwrite"],
            folder=folder,
            found=", ".join(found),
        )


def check_writable_folder(field, path, given=True):
    """`check_creatable_path` of a folder, and the folder (or the nearest
    one that exists) writable: a read-only disk is named before a job's
    work, not at its first write (tools.evaluate evaluated, then failed
    writing its plot). `given`: `path` is the option's value, not the
    default it stands for. URLs and None pass.

    Raises:
        OptionError: naming `field` and the folder.
    """
    import os

    if not path or "://" in path:
        return
    check_creatable_path(field, path)
    current = os.path.abspath(path)
    while not os.path.exists(current):
        current = os.path.dirname(current)
    if not os.access(current, os.W_OK):
        where = "{field}={path}: " if given else "The outputs go to {path}: "
        raise OptionError(
            field,
            where + "{folder} is not writable (a read-only disk, or no "
            "permission); pass {field} a folder that is.",
            path=path,
            folder=current,
        )


_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def check_local_path(field, path):
    """Refuses a URL (gs://bucket/run, s3://...) where the path is read or
    written with local file APIs: `os.makedirs("gs://bucket/run")` makes a
    local folder named "gs:", and a run trained into it is lost with the
    machine (it was, silently).

    Raises:
        OptionError: naming the option and the local alternatives.
    """
    match = _URL.match(path) if isinstance(path, str) else None
    if match:
        raise OptionError(
            field,
            "{field}={path}: a URL; this option takes a local path (files "
            "are read and written with local file APIs, and {scheme}:// "
            "would become a local folder named '{scheme}:'). Give a local "
            "folder, or mount the bucket (e.g. gcsfuse) and give its mount "
            "point; only the TFRecord inputs (data_dir, tfrecord_pattern) "
            "and tfds_data_dir may be URLs.",
            path=path,
            scheme=match.group(1),
        )


def unicode_twins(names, others=None):
    """The pairs of `names` (or of `names` and `others`) that differ only
    in Unicode normalization, as "'café' (caf\\xe9) and 'café'
    (cafe\\u0301)": they look the same and are different folders (macOS
    writes NFD, most tools NFC). '' when there is none."""
    import unicodedata

    def key(name):
        return unicodedata.normalize("NFC", name)

    pool = {}
    for name in others if others is not None else names:
        pool.setdefault(key(name), []).append(name)
    pairs = []
    for name in names:
        twins = [o for o in pool.get(key(name), []) if o != name]
        if twins and (others is not None or name < twins[0]):
            pairs.append(
                f"{name!r} ({ascii(name)[1:-1]}) and "
                f"{twins[0]!r} ({ascii(twins[0])[1:-1]})"
            )
    return "; ".join(pairs[:5]) + ("; ..." if len(pairs) > 5 else "")


def check_class_names(field, root, classes, lines_why, spaces_why):
    """Refuses class folder names that a class-name file (one class per
    line, read back stripped) cannot hold: a tab, a newline or another
    control character, or a space at either end.

    Args:
        field: the option naming `root`.
        root: the folder holding the class folders.
        classes: their names.
        lines_why: why one class per line matters (the message's
            parenthesis after "Rename them").
        spaces_why: what the stripped read-back broke.

    Raises:
        OptionError: naming `field`, `root` and every such name.
    """
    import unicodedata

    def control(name):
        return any(unicodedata.category(c) == "Cc" for c in name)

    for bad, what, why in (
        (
            [repr(n) for n in classes if control(n)],
            "hold a tab, a newline or another control character",
            lines_why,
        ),
        (
            [repr(n) for n in classes if n != n.strip()],
            "start or end with a space",
            spaces_why,
        ),
    ):
        if bad:
            raise OptionError(
                field,
                "{field}={root} has class folders whose names {what}: {bad}. "
                "Rename them ({why}).",
                root=root,
                what=what,
                bad=", ".join(bad[:20])
                + (f", ... and {len(bad) - 20} more" if len(bad) > 20 else ""),
                why=why,
            )
    twins = unicode_twins(classes)
    if twins:  # before: two classes of one name, without a word
        raise OptionError(
            field,
            "{field}={root} has class folders whose names differ only in "
            "their Unicode normalization: {twins}. They read as one name: "
            "rename one, or merge them.",
            root=root,
            twins=twins,
        )


def check_distinct_class_folders(field, root, classes):
    """Refuses two class folders of `root` that are one folder (a link to
    another class folder): its images would be read under both labels.

    Raises:
        OptionError: naming `field`, both classes and the folder.
    """
    import os

    seen = {}
    for name in classes:
        real = os.path.realpath(os.path.join(root, name))
        if real in seen:
            raise OptionError(
                field,
                "{field}={root}: the class folders {a} and {b} are one "
                "folder ({real}): its images would be read under both "
                "labels. Remove the link, or copy the images if both "
                "classes are meant.",
                root=root,
                a=repr(seen[real]),
                b=repr(name),
                real=real,
            )
        seen[real] = name


def first_line(error, limit=300):
    """The first line of an exception's message (TensorFlow's `message`
    without its op context where it has one), at most `limit` characters;
    the exception's type name when the message is empty."""
    text = (getattr(error, "message", None) or str(error)).strip()
    if not text:
        return type(error).__name__
    line = text.splitlines()[0]
    if len(line) <= limit:
        return line
    # At a word's end (before: cut mid-word, "... 'stem_1_").
    return line[: limit - 4].rsplit(" ", 1)[0] + " ..."
