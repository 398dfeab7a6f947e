"""The skeleton of a resumable job over many inputs, and of its binary.

Shared by the TFRecord builder (`assemble_tf.data.builder`) and the
ImageNet-C / ImageNet-P generators (`assemble_tf.robustness.generate_c`,
`generate_p`), whose binaries are a `define_flags()` and a `main` calling
`main(job, argv, FLAGS)`:

* `JobOptions`: the base of a job's options, a frozen dataclass whose field
  names are the binary's flag names: `from_flags`, `validate` (raises an
  `OptionError` naming the field; the binaries print its flag) and
  `warnings` (values that work but mislead).
* `claim_output_dir`: the output folder and its record (`OutputRecord`:
  the options that change the outputs and a format version) that lets a
  rerun resume, or refuses one with other options.
* `run_tasks`: the bounded pool of spawned workers
  (`worker_pool.imap_bounded`) behind one progress bar.
* `write_summary`, `format_problems`, `print_summary`: `summary.json` and
  the console.
* `Job` and `main`: the binary's run of a job, from flags to console.

Nothing here imports TensorFlow.
"""

import dataclasses
import functools
import glob
import json
import os
import string
import sys
from collections.abc import Callable

from official.utils.misc import file_utils, interrupts, worker_pool
from official.utils.misc import progress as progress_lib
from official.utils.misc.validation import (  # noqa: F401 (re-export)
    MissingPathError,
    OptionError,
)

SUMMARY_FILE = "summary.json"

# --------------------------------------------------------------- errors


class OutputMismatchError(OptionError, FileExistsError):
    """`output_dir` is a file, or holds results of other options.

    Every other `{name}` of the template without a value is an option
    (`OptionError`'s `others`): `str(e)` names the field, `as_flag()`
    its flag.
    """

    def __init__(self, template, **values):
        others = sorted(
            {
                name
                for _, name, _, _ in string.Formatter().parse(template)
                if name and name != "field" and name not in values
            }
        )
        super().__init__("output_dir", template, others=others, **values)


class NothingWrittenError(ValueError):
    """Every input failed: the job wrote nothing (its summary says why)."""


def literal(value):
    """`value` as text to put in a message template (braces escaped)."""
    return str(value).replace("{", "{{").replace("}", "}}")


def named(option):
    """The template text naming `option` (`{option}`)."""
    return "{" + option + "}"


# --------------------------------------------------------------- options


class JobOptions:
    """The base of a job's options: a frozen dataclass (`@dataclass(frozen=
    True)` on the subclass) whose field names are the binary's flags."""

    def validate(self):
        """Raises `OptionError` naming the first missing or bad option."""

    def warnings(self):
        """`OptionError`s, not raised, of values that work but mislead; the
        binary prints each as one `WARNING:` line."""
        return ()

    @classmethod
    def from_flags(cls, values):
        """The validated options of parsed flags (`absl.flags.FLAGS`, or any
        object with the flag names as attributes); fields that are no flag
        keep their defaults."""
        fields = [f.name for f in dataclasses.fields(cls)]
        options = cls(
            **{
                name: getattr(values, name)
                for name in fields
                if hasattr(values, name)
            }
        )
        options.validate()
        return options


def require(options, *names):
    """Raises `OptionError` naming the first of `names` that is empty."""
    for name in names:
        if not getattr(options, name):
            raise OptionError(name, "{field} is required.")


# --------------------------------------------------------------- output


@dataclasses.dataclass(frozen=True)
class OutputRecord:
    """How a job's output folder records what made its outputs.

    Attributes:
        what: what the folder holds, for messages ("a set", "videos").
        format_version: the version of the job's output format; a folder of
            another version is refused like other options.
        file_name: the JSON record in the folder.
        stray: globs (relative to the folder) of outputs: any match in a
            folder without the record is another job's, refused.
        labels: {key: name in messages} of recorded values that are not
            options; the other keys are named as options (`{key}`).
        compare: `(old record, new record) -> [reason]` instead of the
            comparison key by key; each reason is a template naming options
            as `{name}` (values through `literal`).
        job: the job's name (e.g. "tools.make_imagenet_c"), recorded as
            "job": a folder another job recorded is refused as that job's,
            not as one of other options (a record without "job", from
            before, is compared as it is).
        noted: keys recorded for the job's own use and not compared (the
            ImageNet-C generator's input, which it warns about instead).
    """

    what: str
    format_version: int
    file_name: str = "options.json"
    stray: tuple = ()
    labels: dict = dataclasses.field(default_factory=dict)
    compare: Callable | None = None
    job: str | None = None
    noted: tuple = ()


def claim_output_dir(output_dir, record, spec, overwrite=None, keep=None):
    """Creates `output_dir` recording `record`, or checks the record there.

    A resumable job keeps the options that change its outputs (and
    `spec.format_version`) in `output_dir/spec.file_name`; a rerun with
    other values would mix two kinds of results in one folder and is
    refused, naming every difference.

    Args:
        output_dir: the folder (created if missing).
        record: {key: JSON value} of what changes the outputs.
        spec: an `OutputRecord`.
        overwrite: None for a job that never replaces its outputs; else the
            job's `overwrite` option: True takes a folder of other options
            or another job's (`keep` removes the outputs).
        keep: `old record (None: none, or unreadable) -> record to write`,
            called once the folder is accepted, before the record is
            written; it removes the outputs the new record does not cover.
            Default: `record`.

    Returns:
        The record written.

    Raises:
        OutputMismatchError (a FileExistsError and an OptionError naming
            `output_dir`): the folder is a file, holds results of other
            options, an unreadable record, or outputs without a record.
    """
    record = {"format_version": spec.format_version, **record}
    if spec.job:
        record["job"] = spec.job
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise OutputMismatchError(
            "{field}={output_dir} is a file, not a folder.",
            output_dir=output_dir,
        )
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, spec.file_name)
    old = _read_record(output_dir, spec, overwrite)
    if not overwrite:
        if old is None:
            _refuse_stray(output_dir, spec, overwrite)
        else:
            _refuse_other_options(output_dir, spec, old, record, overwrite)
    kept = keep(old) if keep else record
    kept = {**kept, "format_version": spec.format_version}
    if spec.job:
        kept["job"] = spec.job
    file_utils.atomic_write_json(path, kept, indent=1, sort_keys=True)
    return kept


def _remedy(overwrite, action):
    """The end of a refusal: `overwrite` when the job has it."""
    if overwrite is None:
        return ""
    return f"pass {{overwrite}} to {action}"


def _choose_another(overwrite):
    """ "[pass {overwrite} to replace them or ]choose another {field}"."""
    fix = _remedy(overwrite, "replace them")
    return (f"{fix} or choose" if fix else "choose") + " another {field}"


def _read_record(output_dir, spec, overwrite):
    """The folder's record, or None (none there, or unreadable and
    `overwrite`)."""
    path = os.path.join(output_dir, spec.file_name)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError:
        if overwrite:
            return None
        fix = _remedy(overwrite, "rebuild from scratch")
        raise OutputMismatchError(
            "{field}={output_dir}: {file} is not valid JSON; "
            + (fix or "delete the folder or choose another {field}")
            + ".",
            output_dir=output_dir,
            file=spec.file_name,
        ) from None


def _refuse_stray(output_dir, spec, overwrite):
    """Raises when a folder without the record holds outputs: this job's
    (`spec.stray`) or another job's (its `summary.json`; before, a
    generator wrote into a TFRecord dataset's folder and replaced the
    summary.json the training reads)."""
    import glob

    if os.path.exists(summary_path(output_dir)):
        raise OutputMismatchError(
            "{field}={output_dir} holds another job's outputs (its "
            "{summary}) but no {file}; "
            + _choose_another(overwrite)
            + " for {what}.",
            output_dir=output_dir,
            summary=SUMMARY_FILE,
            file=spec.file_name,
            what=spec.what,
        )
    found = sorted(
        path
        for pattern in spec.stray
        for path in glob.glob(os.path.join(output_dir, pattern))
    )
    if found:
        raise OutputMismatchError(
            "{field}={output_dir} already holds {what} ({found}, ...) but "
            "no {file}; " + _choose_another(overwrite) + ".",
            output_dir=output_dir,
            what=spec.what,
            found=found[0],
            file=spec.file_name,
        )


def _refuse_other_options(output_dir, spec, old, record, overwrite):
    """Raises naming every difference between `old` and `record`."""
    if old.get("job", spec.job) != spec.job:
        raise OutputMismatchError(
            "{field}={output_dir} holds the outputs of another job, "
            "python -m {job} (its {file} says so); "
            + _choose_another(overwrite)
            + " for {what}.",
            output_dir=output_dir,
            job=old["job"],
            file=spec.file_name,
            what=spec.what,
        )
    compare = spec.compare or functools.partial(_differences, spec.labels)
    reasons = compare(
        {k: v for k, v in old.items() if k not in spec.noted},
        {k: v for k, v in record.items() if k not in spec.noted},
    )
    if reasons:
        fix = _remedy(overwrite, "replace it")
        raise OutputMismatchError(
            "{field}={output_dir} holds {what} made with other options ("
            + "; ".join(reasons)
            + "). Mixing them would corrupt the set: rerun with the same "
            "values to resume, " + (fix + ", " if fix else "") + "or pass a "
            "new {field}.",
            output_dir=output_dir,
            what=spec.what,
        )


def _differences(labels, old, new):
    """`{key}: existing X, now Y` of every value of `new` that differs."""
    labels = {"format_version": "format_version", **labels}
    return [
        f"{literal(labels[key]) if key in labels else named(key)}: "
        f"existing {literal(old.get(key))}, now {literal(value)}"
        for key, value in new.items()
        if old.get(key) != value and key != "job"  # from before: no job
    ]


# --------------------------------------------------------------- work


def run_tasks(
    fn,
    tasks,
    workers,
    total=None,
    progress=True,
    initializer=None,
    size=None,
    reports_progress=False,
    resume="Rerun the same command to resume: finished outputs are kept.",
    workers_option="workers",
):
    """Yields `(task, fn(task))` as tasks finish, behind a progress bar.

    Args:
        fn: a picklable callable (with several workers) of one task.
        tasks: an iterable of picklable tasks, consumed lazily.
        workers: worker processes (spawned); <= 1 runs `fn` here, in order.
        total: images in all (the bar's length); None if unknown.
        progress: show the bar (tqdm, on stderr).
        initializer: run once in each worker before its first task.
        size: `task -> images`, how far a finished task moves the bar
            (default 1).
        reports_progress: in this process `fn(task, progress=callable)`
            moves the bar itself, image by image.
        resume: what a Ctrl-C says (how the job resumes).
        workers_option: the option that sets `workers` (named where a
            worker process dies).

    Raises:
        OptionError: a worker process died (killed, or out of memory):
            naming `workers_option` and how the job resumes.
        Whatever `fn` raised; the pending tasks are cancelled first.
    """
    from concurrent.futures.process import BrokenProcessPool

    with progress_lib.bar(
        total=total, unit="img", desc="images", progress=progress
    ) as bar:
        live = reports_progress and workers <= 1
        call = functools.partial(fn, progress=bar.update) if live else fn
        try:
            with interrupts.sigterm_raises(resume):
                for task, result in worker_pool.imap_bounded(
                    call, tasks, workers, initializer=initializer
                ):
                    # A SIGTERM or Ctrl-C swallowed on its way (in a
                    # finalizer): before, the job ran on to its end.
                    interrupts.check()
                    if not live:
                        bar.update(size(task) if size else 1)
                    yield task, result
        except BrokenProcessPool:
            # Before: a traceback that named neither the cause nor the
            # resume.
            raise OptionError(
                workers_option,
                "A worker process died (killed by a signal, or by the "
                "system for lack of memory) and the job stopped. {resume} "
                "If memory ran out, rerun with a lower {field} (here "
                "{value}).",
                resume=resume,
                value=workers,
            ) from None
        except KeyboardInterrupt as e:
            if str(e):
                raise
            # The binaries print it after "Interrupted." (before: that
            # word alone, though every such job resumes).
            raise KeyboardInterrupt(resume) from None


def remove_stale_temporaries(output_dir, folders, pattern):
    """Removes the files matching `pattern` in the class folders of each
    of `folders` (relative to `output_dir`): the files a killed run was
    writing under a hidden temporary name, which a rerun writes again.

    Returns:
        How many were removed.
    """
    removed = 0
    for folder in folders:
        for path in glob.glob(os.path.join(output_dir, folder, "*", pattern)):
            os.remove(path)
            removed += 1
    return removed


def summary_path(output_dir):
    """Where a job's summary goes."""
    return os.path.join(output_dir, SUMMARY_FILE)


def begin_summary(output_dir):
    """Removes `output_dir/summary.json` as a run starts: a folder with its
    options record and no summary is one a run is writing, or one killed
    before it finished (`write_summary` ends the run)."""
    path = summary_path(output_dir)
    if os.path.isfile(path):
        os.remove(path)


def write_summary(output_dir, summary):
    """Writes `summary` to `output_dir/summary.json` (atomically)."""
    path = summary_path(output_dir)
    file_utils.atomic_write_json(path, summary, indent=1)
    return path


# --------------------------------------------------------------- console


def format_problems(problems, line, limit, noun, total=None):
    """Console lines of the first `limit` problems (`line(problem)`), then
    how many more `summary.json` holds (`total` if more than listed)."""
    total = len(problems) if total is None else total
    lines = [f"  {line(problem)}" for problem in problems[:limit]]
    if total > limit:
        lines.append(f"  ... {total - limit} more {noun} in {SUMMARY_FILE}")
    return lines


def print_summary(text, files, summary=None):
    """Prints a job's summary lines, the files it wrote (`[(label, path)]`)
    and, when given, the summary dict as one JSON line (stdout)."""
    print(text)
    print(", ".join(f"{label}: {path}" for label, path in files))
    if summary is not None:
        print(json.dumps(summary))


def print_warnings(options):
    """Prints `options.warnings()` on stderr, one `WARNING:` line each."""
    for warning in options.warnings():
        print(f"WARNING: {warning.as_flag()}", file=sys.stderr)


# --------------------------------------------------------------- binary


@dataclasses.dataclass(frozen=True)
class Job:
    """A job as its binary runs it.

    Attributes:
        options: the `JobOptions` dataclass (fields = flags).
        run: `options -> summary dict`, also written to summary.json.
        format_summary: `summary -> console lines` (one string).
        files: (label, file name) of other files in `output_dir` to name
            after the summary (e.g. `("labels", "labels.txt")`).
    """

    options: type
    run: Callable[[object], dict]
    format_summary: Callable[[dict], str]
    files: tuple = ()


def _run_alone(job, options, program):
    """`job.run(options)` holding `output_dir` (`file_utils.folder_lock`):
    a second run into the folder is refused, naming the first (before: two
    ImageNet-C runs at once marked a severity complete that the other was
    still writing)."""
    name = os.path.basename(program).removesuffix(".py")  # or tools.NAME
    name = name if name.startswith("tools.") else f"tools.{name}"
    with file_utils.folder_lock(
        options.output_dir, "output_dir", f"{name} run"
    ):
        return job.run(options)


def main(job, argv, flag_values):
    """A job binary's `main`: its flags -> options (validated; warnings on
    stderr) -> the run -> the summary on stdout (also as JSON with a true
    `json` flag, where the binary has one). Errors are left to the
    binaries' `clean_errors` (one `ERROR:` line, exit 2)."""
    if len(argv) > 1:
        raise ValueError(
            f"Unexpected arguments {argv[1:]}; every option is a named "
            "flag, not a positional argument."
        )
    options = job.options.from_flags(flag_values)
    print_warnings(options)
    summary = _run_alone(job, options, argv[0])
    files = [("Summary", summary_path(options.output_dir))]
    files += [
        (label, os.path.join(options.output_dir, name))
        for label, name in job.files
    ]
    as_json = getattr(flag_values, "json", False)
    print_summary(
        job.format_summary(summary), files, summary if as_json else None
    )
    return summary
