"""absl flag helpers in the shape of TF Model Garden `official/utils/flags`.

Binaries define their flags through functions and read them once; library
code never touches `FLAGS` (tensorflow/models official/utils/flags/
guidelines.md). Only flags the user set explicitly override a preset.
"""

import errno
import functools
import os
import re
import sys

from absl import app, flags
from absl import logging as absl_logging

from official.utils.logs import startup
from official.utils.misc import heap, interrupts, validation
from official.utils.misc.validation import OptionError

# Modules whose flags a binary's --help lists (absl's own are left to
# --helpfull).
PROJECT_MODULES = ("flags.", "official.")
_HELP_ARGS = ("--help", "-help", "-h", "-?", "--helpshort", "--helpfull")


def help_wrap(text):
    """Flag help as one paragraph: absl wraps it for `--help` itself, so
    text wrapped here would be broken again mid-sentence."""
    return " ".join(text.split())


def explicitly_set(flag_values, names):
    """Returns `{name: value}` for the flags in `names` the user set."""
    return {
        name: flag_values[name].value
        for name in names
        if name in flag_values and flag_values[name].present
    }


def parse_int_list(flag_name, text, length=None, example="3,4,6,3"):
    """Parses "3,4,6,3" into a tuple of ints, naming the flag (and a value
    it takes, `example`) on error."""
    if text is None:
        return None
    items = str(text).split(",") if str(text).strip() else []
    try:
        # "1,,2" is no list of integers (a value was left out), nor "1,2,".
        values = tuple(int(v) for v in items)
    except ValueError:
        raise flags.ValidationError(
            f"--{flag_name} takes comma-separated integers, e.g. {example}. "
            f"Received: --{flag_name}={text}"
        ) from None
    if length is not None and len(values) != length:
        raise flags.ValidationError(
            f"--{flag_name} needs {length} integers. "
            f"Received: --{flag_name}={text}"
        )
    return values


def register_int_list_validator(flag_name, length, example="3,4,6,3"):
    """Rejects a malformed comma-separated list at parse time."""

    def check(text):
        parse_int_list(flag_name, text, length, example)
        return True

    flags.register_validator(flag_name, check)


def clean_errors(
    main,
    errors=(ValueError, FileNotFoundError, FileExistsError, PermissionError),
    flag_names=None,
):
    """Wraps an absl `main` so expected errors print one message, no trace.

    The message should name the flag or file and the fix: an `OptionError`
    (also a `MissingPathError`, a FileNotFoundError) prints its options as
    their flags (`as_flag(names=flag_names)`; `flag_names`: {option: flag}
    for options whose flag is named otherwise). The exit code is 2; so
    for an output on a read-only or full disk (any error: the folder and
    the fix, `_storage_error`).
    Ctrl-C prints one line (the interrupt's own text, e.g. how to resume)
    and exits 130; a job that stopped on SIGTERM (`interrupts.Terminated`)
    likewise, exit 143.
    """

    @functools.wraps(main)
    def wrapped(argv):
        try:
            # Warnings the library prints mid-run name flags too.
            with validation.options_as_flags(flag_names):
                return main(argv)
        except interrupts.Terminated as e:
            # SIGTERM, after the job saved what a rerun goes on from.
            text = interrupts.terminated_message(e)
            print(f"Terminated. {text}".rstrip(), file=sys.stderr)
            sys.exit(interrupts.TERMINATED_EXIT_CODE)
        except KeyboardInterrupt as e:
            # Ctrl-C: one line (a long job may say how to resume), the
            # shell's exit code for SIGINT.
            print(f"Interrupted. {e}".rstrip(), file=sys.stderr)
            sys.exit(130)
        except Exception as e:
            # An option's own error names it and its folder already
            # (before: a PathNotWritableError on a read-only disk became
            # "cannot write the outputs", naming neither).
            text = None if isinstance(e, OptionError) else _storage_error(e)
            if text is None:
                if not isinstance(e, errors):
                    raise
                text = _expected_error(e, flag_names)
            print(f"ERROR: {text}", file=sys.stderr)
            sys.exit(2)

    return wrapped


def _expected_error(error, flag_names):
    """The one-line text of an expected error (`clean_errors`)."""
    if isinstance(error, OptionError):
        return error.as_flag(names=flag_names)
    if isinstance(error, PermissionError) and error.filename:
        # Before: a traceback (an unreadable class folder).
        return (
            f"{error.filename}: permission denied; make it readable (and "
            "writable, for an output) or choose another path."
        )
    return str(error)


_FREE_SPACE = (
    "free some space (a rerun goes on from what was saved) or write to "
    "another folder"
)
# errno -> (what happened, the fix), for outputs a job cannot write.
_STORAGE_ERRORS = {
    errno.EROFS: ("read-only file system", "write to another folder"),
    errno.ENOSPC: ("no space left on the device", _FREE_SPACE),
    errno.EDQUOT: ("disk quota exceeded", _FREE_SPACE),
}
# The same, as TensorFlow's C++ file system reports them (an `OpError`,
# e.g. ResourceExhaustedError while writing a checkpoint).
_STORAGE_MESSAGES = {
    "Read-only file system": errno.EROFS,
    "No space left on device": errno.ENOSPC,
    "Disk quota exceeded": errno.EDQUOT,
}


def _storage_error(error):
    """One line for an output that cannot be written (a read-only or full
    disk), naming the folder and the fix, else None. Before: a traceback
    ending in `OSError: [Errno 30] Read-only file system:
    '<run>/.config.json.tmp-22467'`."""
    code, path = getattr(error, "errno", None), getattr(error, "filename", None)
    if not isinstance(error, OSError):
        code = next(
            (c for text, c in _STORAGE_MESSAGES.items() if text in str(error)),
            None,
        )
        # TensorFlow: "{{function_node ...device_/job:...}} <path>; No
        # space left on device [Op:SaveV2]".
        texts = "|".join(_STORAGE_MESSAGES)
        # The path as given, relative too (before: from its first "/":
        # "full/b/x.tmp" was named "/b").
        found = re.search(rf"([^\s;{{}}]+); (?:{texts})", str(error))
        path = found.group(1) if found else None
    if code not in _STORAGE_ERRORS:
        return None
    what, fix = _STORAGE_ERRORS[code]
    if path:
        # A temporary name of an atomic write says less than its folder:
        # ours (`.name.tmp-PID`), TensorFlow's (`ckpt-2_temp/part-...`).
        path = os.fspath(path)
        tf_temp = re.fullmatch(r"(.*)/[^/]+_temp/[^/]+", path)
        if tf_temp:
            path = tf_temp.group(1)
        elif ".tmp" in os.path.basename(path):
            path = os.path.dirname(path)
        return f"cannot write {path}: {what}; {fix}."
    return f"cannot write the outputs: {what}; {fix}."


def adopt_project_flags(flag_values=flags.FLAGS, main_module=None):
    """Makes every flag defined by the project's flag modules (flags/,
    official/) a key flag of the main module, so `--help` lists them (absl
    lists only the main module's own flags there).

    Returns the number of flags adopted.
    """
    main_module = main_module or sys.argv[0]
    count = 0
    for module, module_flags in flag_values.flags_by_module_dict().items():
        if module == main_module or not module.startswith(PROJECT_MODULES):
            continue
        for flag in module_flags:
            flag_values.register_key_flag_for_module(main_module, flag)
            count += 1
    return count


def parse_flags(argv, flag_values=flags.FLAGS):
    """absl's flag parsing with the binaries' error format.

    A bad or missing flag prints one `ERROR:` line (absl's own message,
    which names the flag) and exits 2, as every other expected error does;
    absl would print `FATAL Flags parsing error` and a usage hint, exit 1.
    `--help` still prints the help (absl raises SystemExit for it).
    """
    try:
        rest = flag_values(argv)
    except flags.Error as e:
        print(f"ERROR: {_plain_flag_error(e)}", file=sys.stderr)
        sys.exit(2)
    if len(rest) > 1:
        print(
            f"ERROR: {_unexpected(argv, rest[1], flag_values)}", file=sys.stderr
        )
        sys.exit(2)
    both = _alias_and_original(flag_values)
    if both:
        print(f"ERROR: {both}", file=sys.stderr)
        sys.exit(2)
    return rest


_ALIAS_HELP = re.compile(r"^Alias for --(\w+)\.$")


def _alias_and_original(flag_values):
    """The message for a flag given both by its name and by an alias
    (absl's `DEFINE_alias`: the last one given won, and the other was
    dropped without a word, e.g. `--preset=resnet50
    --presets=assemble_resnet50` timed one model), or None."""
    for name in flag_values:
        flag = flag_values[name]
        match = _ALIAS_HELP.match(flag.help or "")
        if not (match and flag.present and name == flag.name):
            continue
        original = flag_values[match.group(1)]
        if original.present > flag.present:  # it counts the alias's too
            return (
                f"--{name} is another name of --{original.name}: give one "
                "of them (both were given)."
            )
    return None


def _unexpected(argv, word, flag_values):
    """The message for an argument that is not a flag. The binaries take
    flags only: absl leaves such words to the program, and every `main`
    dropped them, so `--overwrite false` ran with --overwrite (before)."""
    message = (
        f"unexpected argument {word!r}: the binaries take flags only "
        "(--name=value)"
    )
    at = argv.index(word) if word in argv else 0
    name = argv[at - 1].lstrip("-").partition("=")[0] if at > 1 else ""
    flag = flag_values[name] if name in flag_values else None
    if flag is not None and isinstance(flag, flags.BooleanFlag):
        return (
            f"{message}; a boolean is written --{name}=false or "
            f"--no{name}, not --{name} {word}."
        )
    return message + "."


# absl's message for a flag marked required and not given (one line per
# flag when several are missing).
_REQUIRED = re.compile(
    r"flag --(\w+)=None: Flag --\1 must have a value other than None\."
)


def _plain_flag_error(error):
    """absl's message, with its required-flag lines as the project writes
    them: "--export_dir is required; see --help." (absl: "flag
    --export_dir=None: Flag --export_dir must have a value other than
    None.", one such line per missing flag)."""
    message = str(error)
    lines = message.strip().splitlines()
    missing = [_REQUIRED.fullmatch(line.strip()) for line in lines]
    if not lines or not all(missing):
        return message
    names = [f"--{m.group(1)}" for m in missing]
    if len(names) == 1:
        return f"{names[0]} is required; see --help."
    return f"{', '.join(names[:-1])} and {names[-1]} are required; see --help."


READS_ANY_RUN = "it reads runs trained under any backend."


def require_tensorflow_backend(binary, why=READS_ANY_RUN):
    """Raises a one-line `ValueError` unless Keras runs on TensorFlow: a
    TensorFlow-only binary under an exported KERAS_BACKEND=jax (likely
    after training under JAX) failed with a traceback. `why`: the
    sentence after the fix (what the binary's output is good for, or the
    alternative under that backend)."""
    import keras

    backend = keras.config.backend()
    if backend != "tensorflow":
        raise ValueError(
            f"{binary} runs under TensorFlow, and KERAS_BACKEND={backend} "
            f"is set: run it with KERAS_BACKEND unset (or =tensorflow); {why}"
        )


# Flags whose paths go through TensorFlow's file system layer (gfile,
# tfds), which reads gs:// and other URLs; `tpu` names a TPU or its
# grpc:// address.
URL_FLAGS = ("data_dir", "tfrecord_pattern", "tfds_data_dir", "tpu")


def check_no_urls(flag_values):
    """Refuses a URL given to a flag other than `URL_FLAGS`
    (`validation.check_local_path`): before, --model_dir=gs://bucket/run
    trained into a local folder ./gs:/bucket/run."""
    from official.utils.misc.validation import check_local_path

    for name, flag in flag_values._flags().items():
        if flag.present and name not in URL_FLAGS:
            check_local_path(name, flag.value)


def checked_main(main, tensorflow_only=False):
    """`main` after the checks of the parsed flags every binary makes: no
    URL where a local path goes (`check_no_urls`); with `tensorflow_only`,
    the TensorFlow backend (`require_tensorflow_backend`). SIGTERM stops
    it as Ctrl-C does (`clean_errors` prints one line, exit 143) where the
    job does not handle it itself (a training loop saves first): before,
    SIGTERM during a run's start-up exited 143 without a word."""

    def checked(argv):
        if tensorflow_only:
            name = os.path.basename(argv[0]).removesuffix(".py")
            why = tensorflow_only if isinstance(tensorflow_only, str) else None
            require_tensorflow_backend(f"tools.{name}", why or READS_ANY_RUN)
        check_no_urls(flags.FLAGS)
        with interrupts.sigterm_raises(""):
            result = main(argv)
            # A Ctrl-C or SIGTERM that code on its way swallowed (a tf.data
            # finalizer, a Keras layer's call): the job stops as asked
            # (before: it ran to the end and exited 0).
            interrupts.check()
            return result

    return checked


def run(main, argv=None, flag_names=None, tensorflow_only=False):
    """`app.run` for the project's binaries.

    Quiets TensorFlow's start-up block and absl's INFO lines unless `-v N`
    asks for them, makes `--help` list the binary's flags (and exit 0),
    and prints expected errors as one line (`clean_errors`, with
    `flag_names`: {option: flag} where the flag is named otherwise). With
    `tensorflow_only`, another Keras backend is such an error (a string:
    its last sentence, `require_tensorflow_backend`'s `why`).
    """
    argv = sys.argv if argv is None else argv
    interrupts.install()
    startup.quiet_tensorflow_startup(argv)
    heap.freeze_after_import("keras")
    adopt_project_flags()

    def quiet_main(args):
        if not flags.FLAGS["verbosity"].present:
            # absl raises an unset verbosity to INFO after parsing; keep
            # warnings and errors only (TensorFlow logs every checkpoint
            # shard at INFO).
            absl_logging.set_verbosity(absl_logging.WARNING)

        checked = checked_main(main, tensorflow_only)
        return clean_errors(checked, flag_names=flag_names)(args)

    try:
        app.run(quiet_main, argv=argv, flags_parser=parse_flags)
    except SystemExit as e:
        # absl exits 1 after printing the help that was asked for.
        if e.code == 1 and any(a in _HELP_ARGS for a in argv[1:]):
            raise SystemExit(0) from None
        raise
