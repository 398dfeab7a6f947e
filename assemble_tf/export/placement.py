"""Where an export is written: a temporary folder beside the target, renamed
into place only once verified.

`export_saved_model` writes to `.export_<pid>@<host>.<random>` beside the
target, then renames it into place with the umask's permissions (not the
temporary folder's 0700), never over a folder that appeared meanwhile
unless `overwrite` (Linux' renameat2 RENAME_NOREPLACE; with `overwrite`,
RENAME_EXCHANGE, so that TF Serving polling the version folder never finds
it missing). A failure never leaves a half export, and the temporary folder
a killed export left goes with the next export beside it
(`remove_stale_exports`).
"""

import ctypes
import errno
import os
import re
import shutil
import socket
import tempfile

from official.utils.misc import file_utils
from official.utils.misc.validation import (
    PathExistsError,
    PathNotWritableError,
    check_creatable_path,
    not_writable,
)


def temp_export_dir(export_dir, log):
    """A new temporary folder beside `export_dir` to write the export to.

    Makes the parent folder and first removes the temporary folders of
    dead exports there (`remove_stale_exports`), logging each.

    Returns:
        The temporary folder's path (`.export_<pid>@<host>.<random>`).
    """
    parent = os.path.dirname(export_dir)
    # Named as the flag (before: "[Errno 17] File exists: <parent>" where a
    # file sits in the way, which sent users to --overwrite).
    check_creatable_path("export_dir", export_dir)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise PathNotWritableError(
            "export_dir",
            "{field}={path} cannot be created ({reason}); export to a "
            "folder you can write to.",
            errno_code=e.errno,
            path=export_dir,
            reason=e.strerror or e,
        ) from None
    for stale in remove_stale_exports(parent):
        log(f"Removed {stale}, the temporary folder of a dead export.")
    try:
        return tempfile.mkdtemp(prefix=temp_prefix(), dir=parent)
    except OSError as e:  # named by the temporary folder, unknown to users
        raise not_writable("export_dir", export_dir, parent, e) from None


def move_into_place(tmp, export_dir, overwrite):
    """Renames the verified export `tmp` to `export_dir`, with the umask's
    permissions (not the temporary folder's 0700).

    Raises:
        PathExistsError: `export_dir` exists and not `overwrite` (also
            when it appeared during the export).
    """
    os.chmod(tmp, 0o777 & ~_umask())
    if overwrite and os.path.exists(export_dir):
        check_replaceable(export_dir, overwrite)
        # Swapped, then the old one removed: TF Serving, polling the
        # version folder, never finds it missing (it was deleted, then
        # the new one renamed: a poll in between unloaded the version).
        _exchange(tmp, export_dir)
        shutil.rmtree(tmp)
        return
    _rename_no_replace(tmp, export_dir)


def _renameat2(src, dst, flags):
    """Linux' renameat2(src, dst, flags): 0, or the errno (ENOSYS where
    the C library has no renameat2)."""
    libc = ctypes.CDLL(None, use_errno=True)
    rename = getattr(libc, "renameat2", None)
    if rename is None:
        return errno.ENOSYS
    result = rename(
        _AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags
    )
    return 0 if result == 0 else ctypes.get_errno()


def _exchange(a, b):
    """Swaps the folders `a` and `b` in one step: Linux' renameat2(
    RENAME_EXCHANGE) where available, else `b` renamed aside, `a` renamed
    to `b`, and the old `b` renamed to `a` (an instant without `b`)."""
    code = _renameat2(a, b, _RENAME_EXCHANGE)
    if code == 0:
        return
    if code not in (errno.EINVAL, errno.ENOSYS):  # unsupported: below
        raise OSError(code, os.strerror(code), b)
    aside = a + ".old"
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)


TEMP_NAME = re.compile(r"\.export_(\d+)@(.*)\.[^.]+$")


def temp_prefix():
    return f".export_{os.getpid()}@{socket.gethostname()}."


def remove_stale_exports(parent):
    """Removes the temporary folders of dead exports from `parent`.

    A temporary export folder is named `.export_<pid>@<host>.<random>`;
    one of this host whose process no longer runs was left by a killed
    export and is removed (folders of other hosts, which may share the
    file system, are kept).

    Returns:
        The removed folders' paths.
    """
    removed = []
    host = socket.gethostname()
    for name in sorted(os.listdir(parent)):
        match = TEMP_NAME.match(name)
        path = os.path.join(parent, name)
        if (
            match
            and match.group(2) == host
            and not file_utils.pid_alive(int(match.group(1)))
            and os.path.isdir(path)
        ):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def check_replaceable(export_dir, overwrite):
    """Raises unless `overwrite` and `export_dir` is a SavedModel or an
    empty folder: `--overwrite` once replaced any folder (a training run,
    a dataset) or failed on a file with a traceback."""
    if not overwrite:
        raise _exists_error(export_dir)
    if os.path.isdir(export_dir):
        names = sorted(os.listdir(export_dir))
        if not names or {"saved_model.pb", "saved_model.pbtxt"} & set(names):
            return
        what = f"a folder holding {', '.join(names[:4])}"
        what += ", ..." if len(names) > 4 else ""
    else:
        what = "a file"
    raise PathExistsError(
        "export_dir",
        "{field}={path} is {what}, not a SavedModel: {overwrite} replaces "
        "only a SavedModel or an empty folder. Choose another {field}.",
        others=("overwrite",),
        path=export_dir,
        what=what,
    )


def _exists_error(export_dir):
    return PathExistsError(
        "export_dir",
        "{field}={path} exists; pass {overwrite} to replace it.",
        others=("overwrite",),
        path=export_dir,
    )


_RENAME_NOREPLACE = 1


_RENAME_EXCHANGE = 2


_AT_FDCWD = -100


def _rename_no_replace(src, dst):
    """Renames `src` to `dst`, failing if `dst` exists (even empty).

    Linux' renameat2(RENAME_NOREPLACE) where available, else a check and
    `os.rename` (which refuses a non-empty `dst`).

    Raises:
        PathExistsError (a FileExistsError): `dst` exists.
    """
    code = _renameat2(src, dst, _RENAME_NOREPLACE)
    if code == 0:
        return
    if code == errno.EEXIST:
        raise _exists_error(dst)
    if code not in (errno.EINVAL, errno.ENOSYS):  # unsupported: below
        raise OSError(code, os.strerror(code), dst)
    if os.path.lexists(dst):
        raise _exists_error(dst)
    try:
        os.rename(src, dst)
    except OSError as e:
        if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise _exists_error(dst) from e
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
