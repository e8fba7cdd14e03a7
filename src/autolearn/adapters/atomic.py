"""Atomic file replacement: readers see the old file or the new one, never a torn one.

Recipe (pip's ``adjacent_tmp_file`` plus a directory sync): write a temp file in the same
directory, flush, fsync, ``os.replace`` over the target, fsync the directory. Files are created
``0o600`` (state may reveal positions and P/L) unless the caller asks for another ``mode``; the
mode is set on the temp file *before* the rename, so the target never exists, not even for a
moment, with a mode its readers cannot read (node_exporter's ``0o644`` metrics file). On any
failure the temp file is removed and the target is untouched; the error is a ``StateError``
that names the path and the OS reason (a full disk or a read-only directory included).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
import time
from pathlib import Path

from autolearn.errors import StateError

__all__ = [
    "FILE_MODE",
    "STALE_TEMP_S",
    "atomic_write_bytes",
    "ensure_dir",
    "fsync_dir",
    "remove_stale_temp_files",
]

FILE_MODE = 0o600
DIR_MODE = 0o700
# A temp file older than this was left by a killed writer (a write takes milliseconds).
STALE_TEMP_S = 600.0


def ensure_dir(path: Path) -> None:
    """Create ``path`` and any missing parents ``0o700``, whatever the umask.

    ``mkdir(parents=True)`` ignores ``mode`` for the parents it creates, so a state dir made as
    the parent of ``locks/`` under umask 0 would be world-writable. Existing directories are
    left as they are.
    """
    if path.is_dir():
        return
    missing = [path, *(p for p in path.parents if not p.exists())]
    try:
        for directory in reversed(missing):
            directory.mkdir(mode=DIR_MODE, exist_ok=True)
            directory.chmod(DIR_MODE)
    except OSError as exc:
        raise StateError(f"cannot create state directory {path}: {_reason(exc)}") from exc


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = FILE_MODE) -> None:
    """Replace ``path`` with ``data`` (file mode ``mode``) atomically and durably."""
    directory = path.parent
    ensure_dir(directory)
    tmp_name = ""
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # before the rename: never visible otherwise
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        tmp_name = ""
    except OSError as exc:
        raise StateError(
            f"cannot write {path}: {_reason(exc)}; the previous version is intact"
        ) from exc
    finally:
        if tmp_name:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
    try:
        fsync_dir(directory)
    except OSError as exc:
        # The new file is in place (readers see it) but its rename may not survive a power cut.
        raise StateError(
            f"wrote {path} but could not sync its directory: {_reason(exc)}; the new version "
            "is visible now and may be lost on a power failure"
        ) from exc


def remove_stale_temp_files(directory: Path, *, older_than_s: float = STALE_TEMP_S) -> int:
    """Delete ``.<name>.*.tmp`` files a killed writer left in ``directory``; returns how many.

    Only files older than ``older_than_s`` go, so a concurrent writer's live temp file (a few
    milliseconds old) is never touched; only regular files, never through a link.
    """
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0  # no directory yet, or unreadable: the write itself will report it
    now = time.time()
    for entry in entries:
        if not (entry.name.startswith(".") and entry.name.endswith(".tmp")):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and now - st.st_mtime > older_than_s:
                os.unlink(entry.path)
                removed += 1
        except OSError:
            continue  # removed meanwhile by another run
    return removed


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on device (free disk space, then re-run)"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{exc.strerror} (check the state directory's permissions and mount)"
    return exc.strerror or str(exc)
