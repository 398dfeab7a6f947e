"""Atomic file writes: readers see the old file or the new one, never half.

The data goes to a hidden temporary file next to `path` (same file system),
which then replaces `path` with `os.replace`. Used by every binary that
resumes (TFRecord builder, ImageNet-C/P generators, evaluation caches).
"""

import json
import os


def atomic_write(path, data):
    """Writes `data` (str as UTF-8, or bytes) to `path` atomically."""
    tmp = os.path.join(
        os.path.dirname(path) or ".",
        f".{os.path.basename(path)}.tmp-{os.getpid()}",
    )
    mode, kwargs = (
        ("w", {"encoding": "utf-8"}) if isinstance(data, str) else ("wb", {})
    )
    try:
        with open(tmp, mode, **kwargs) as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_json(path, value, **dump_kwargs):
    """`json.dumps(value, **dump_kwargs)` written atomically to `path`."""
    atomic_write(path, json.dumps(value, **dump_kwargs))


class OutputMismatchError(FileExistsError, ValueError):
    """An output folder holds results made with other options."""


def claim_output_dir(
    output_dir,
    options,
    labels=None,
    what="results",
    stray=None,
    file_name="options.json",
):
    """Creates `output_dir` recording `options`, or checks the record.

    A resumable job keeps the options that change its outputs in
    `output_dir/file_name`; a rerun with other values would mix two kinds
    of results in one folder and is refused, naming every difference.

    Args:
        output_dir: the folder (created if missing).
        options: {key: JSON value} of the options that change the outputs.
        labels: {key: name in messages}; default `--key`.
        what: what the folder holds, for messages ("videos", ...).
        stray: a glob relative to `output_dir` of outputs; any match in a
            folder without the options file is refused (another job's).
        file_name: where the options are recorded.

    Raises:
        FileExistsError: `output_dir` is a file.
        OutputMismatchError (a FileExistsError and a ValueError): the
            folder holds results of other options, or stray outputs.
    """
    import glob
    import json

    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise FileExistsError(
            f"--output_dir={output_dir} is a file, not a folder."
        )
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, file_name)
    if not os.path.exists(path):
        found = glob.glob(os.path.join(output_dir, stray)) if stray else []
        if found:
            raise OutputMismatchError(
                f"--output_dir={output_dir} already holds {what} "
                f"({found[0]}, ...) but no {file_name}; choose another "
                "--output_dir."
            )
        atomic_write_json(path, options, indent=1, sort_keys=True)
        return
    try:
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
    except ValueError:
        raise OutputMismatchError(
            f"--output_dir={output_dir}: {file_name} is not valid JSON; "
            "delete the folder or choose another --output_dir."
        ) from None
    labels = labels or {}
    diffs = [
        f"{labels.get(key, '--' + key)}: existing {old.get(key)}, now {value}"
        for key, value in options.items()
        if old.get(key) != value
    ]
    if diffs:
        raise OutputMismatchError(
            f"--output_dir={output_dir} holds {what} made with other "
            f"options ({'; '.join(diffs)}). Mixing them would corrupt the "
            "set: rerun with the same values to resume, or pass a new "
            "--output_dir."
        )
