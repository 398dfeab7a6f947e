"""Atomic file writes: readers see the old file or the new one, never half.

The data goes to a hidden temporary file next to `path` (same file system),
which then replaces `path` with `os.replace`. Used by every binary that
resumes (TFRecord builder, ImageNet-C/P generators, evaluation caches).
`isfile`, `isdir`, `listdir` and `open_text` also read a URL (gs://...)
through TensorFlow's file system, for the TFRecord folders a run reads.
"""

import contextlib
import json
import os


def is_url(path):
    """Whether `path` is a URL (gs://bucket/x, ram://x): a file system that
    TensorFlow reads (`tf.io.gfile`), not the local one."""
    return isinstance(path, str) and "://" in path


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def isfile(path):
    """`os.path.isfile`, also for a URL (through `tf.io.gfile`)."""
    if is_url(path):
        gfile = _gfile()
        return gfile.exists(path) and not gfile.isdir(path)
    return os.path.isfile(path)


def isdir(path):
    """`os.path.isdir`, also for a URL (through `tf.io.gfile`)."""
    return _gfile().isdir(path) if is_url(path) else os.path.isdir(path)


def listdir(path):
    """`os.listdir`, also for a URL (through `tf.io.gfile`, whose folder
    names end in "/": here they do not)."""
    if is_url(path):
        return [name.rstrip("/") for name in _gfile().listdir(path)]
    return os.listdir(path)


def is_utf8(name):
    """Whether a file name (as `os.listdir` gives it: bytes that are not
    UTF-8 escaped as surrogates) is UTF-8, which TensorFlow's file system
    and the JSON summaries need."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown_name(name):
    """`name` printable: a byte of a name that is not UTF-8 shows as
    U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def left_out_of_class_folders(top, extensions):
    """What a reader of `top/<class>/<file>` images with `extensions`
    leaves out, relative to `top`, hidden files aside: files directly in
    `top`, then, class by class, subfolders, files of other extensions,
    names that are not files (a broken link, a named pipe) and names that
    are not UTF-8 (a class folder's, whose files are not read either)."""
    names = sorted(n for n in listdir(top) if not n.startswith("."))
    classes = [n for n in names if isdir(os.path.join(top, n))]
    left = [
        f"{shown_name(n)} (outside a class folder)"
        for n in names
        if n not in classes
    ]
    for cls in classes:
        if not is_utf8(cls):
            left.append(f"{shown_name(cls)}/ (name not UTF-8: rename it)")
            continue
        folder = os.path.join(top, cls)
        for name in sorted(listdir(folder)):
            path = os.path.join(folder, name)
            if name.startswith("."):
                continue
            if not is_utf8(name):
                left.append(f"{cls}/{shown_name(name)} (name not UTF-8)")
            elif isdir(path):
                left.append(f"{cls}/{name}/ (a subfolder)")
            elif not name.lower().endswith(extensions):
                left.append(f"{cls}/{name}")
            elif not isfile(path):
                left.append(f"{cls}/{name} (a broken link, or not a file)")
    return left


def open_text(path):
    """A text file to read (UTF-8, a byte-order mark dropped), local or a
    URL (through `tf.io.gfile`)."""
    if not is_url(path):
        return open(path, encoding="utf-8-sig")
    import io

    with _gfile().GFile(path, "rb") as f:
        return io.StringIO(f.read().decode("utf-8-sig"), newline=None)


# The names `atomic_write` writes under until a file is complete (a killed
# process leaves them): `.<name>.tmp-<pid>`.
ATOMIC_TEMP_GLOB = ".*.tmp-*"


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


def read_json(path, fix):
    """The JSON value in `path`.

    Raises:
        ValueError: not JSON: one line naming `path`, the parser's reason
            and `fix` (what the user can do).
    """
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); {fix}.") from None


def pid_alive(pid):
    """Whether process `pid` runs on this host (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_start(pid):
    """What tells process `pid` from a later one given the same number:
    "<boot id>:<start time in clock ticks>" on Linux (`/proc`), else None.

    A container restarted after preemption starts its job under the same
    low pid, on the same host name; the number alone named the killed job's
    lock as held.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            # Field 22 (starttime); the name in field 2 may hold spaces.
            start = f.read().rsplit(")", 1)[1].split()[19]
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f"{f.read().strip()}:{start}"
    except (OSError, IndexError, UnicodeDecodeError):
        return None


# The file a job holds while it writes into a folder (`folder_lock`).
LOCK_FILE = ".lock"


@contextlib.contextmanager
def folder_lock(folder, field, job, name=LOCK_FILE):
    """Holds `folder` (made if missing) for this process while the block
    runs: a second process that writes into it is refused (before: two
    extractions into one folder left shards of one teacher under the
    other's summary.json, and exited 0). A folder it made and the block
    left empty (a failed start) is removed with the lock.

    The lock is `folder/.lock`, made exclusively, naming the process and
    its job (`pid@host job`, then `started <process_start>` where known); a
    lock of this host whose process is gone (killed), or whose pid now
    belongs to a process started later, is taken over.

    Args:
        folder: the output folder.
        field: the option naming it, for the error.
        job: what writes it, e.g. "tools.extract_teacher_logits run".
        name: the lock file's name: jobs whose outputs in one folder do
            not collide hold locks of their own (e.g. one per report).

    Raises:
        OptionError: (`field`) another live process holds it.
    """
    from official.utils.misc.validation import check_creatable_path

    # A file in the way named as the option (before, in the ImageNet-C/P
    # generators and the builder: a NotADirectoryError traceback).
    check_creatable_path(field, folder)
    created = not os.path.exists(folder)
    os.makedirs(folder, exist_ok=True)
    try:
        with _lock_file(folder, field, job, name):
            yield
    finally:
        if created and os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)


def _gone(pid, started):
    """Whether the lock of process `pid` of this host, `started` as
    `process_start` said then (empty: not recorded), outlived it."""
    if not pid_alive(pid):
        return True
    now = process_start(pid)
    return bool(started and now and now != started.strip())


@contextlib.contextmanager
def _lock_file(folder, field, job, name=LOCK_FILE):
    """`folder_lock`'s lock file `name` in the existing `folder`."""
    import socket

    from official.utils.misc.validation import OptionError

    path = os.path.join(folder, name)
    host = socket.gethostname()
    me = f"{os.getpid()}@{host} {job}"
    start = process_start(os.getpid())
    if start:
        me += f"\nstarted {start}"
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                with open(path, encoding="utf-8") as f:
                    holder = f.read().strip()
            except FileNotFoundError:  # released meanwhile
                continue
            first, _, started = holder.partition("\nstarted ")
            process, _, their_job = first.partition(" ")
            pid, _, where = process.partition("@")
            if where == host and pid.isdigit() and _gone(int(pid), started):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)  # a killed process's
                continue
            raise OptionError(
                field,
                "{field}={path} is being written by {job} (process "
                "{process}): wait for it to end, or pick another {field}. If "
                "that process is gone, delete {lock}.",
                path=folder,
                job=f"another {their_job}" if their_job else "another job",
                process=process or "unknown",
                lock=path,
            ) from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(me)
        break
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            with open(path, encoding="utf-8") as f:
                mine = f.read().strip() == me
            if mine:
                os.remove(path)
