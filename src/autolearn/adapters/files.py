"""Reading state files safely: never through a symlink, never a special file, never unbounded.

A state directory is writable by the service user and by clean-up jobs, so what sits at a
state path is not trusted: a symlink could redirect a read (or, for an append, a write) into a
git-tracked file; a FIFO or ``/dev/zero`` would hang or exhaust a reader. Every state file is
opened with ``O_NOFOLLOW | O_NONBLOCK``, must be a regular file, and is read up to a bound.
Failures are ``StateError`` naming the path, what is wrong and the fix.

An adapter: it knows files, not state; it never creates or deletes anything.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from autolearn.errors import StateError

__all__ = [
    "MAX_STATE_BYTES",
    "append_all_or_none",
    "describe_special",
    "open_regular",
    "read_regular",
    "refuse_linked_dirs",
]

# effective.json, snapshots, mechanism and control files are a few KB; 16 MiB is far beyond
# any legitimate one and small enough that a runaway file cannot exhaust a worker's memory.
MAX_STATE_BYTES = 16 * 1024 * 1024


def describe_special(mode: int) -> str:
    """A person's name for a non-regular file type."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: Path, flags: int, mode: int = 0o600) -> int:
    """``os.open`` without following a final symlink; the descriptor of a regular file.

    Raises:
        FileNotFoundError: nothing at ``path`` (and ``O_CREAT`` not given).
        StateError: a symlink, a special file, or any other OS failure.
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StateError(
                f"{path} is a symbolic link; autolearn never follows links in its state "
                "directory (a link can redirect a write into a tracked file). Fix: remove the "
                "link (restore the file with `autolearn recover --reason R` if it was "
                "effective.json)"
            ) from exc
        raise StateError(f"cannot open {path}: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StateError(
                f"{path} is {describe_special(st.st_mode)}, not a regular file; refusing to "
                "read or write it. Fix: remove it (autolearn recreates its own files)"
            )
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: Path, *, limit: int = MAX_STATE_BYTES, start: int = 0) -> bytes | None:
    """The bytes of the regular file at ``path``, ``None`` when it does not exist.

    ``start``: the bytes from that offset on (an append-only file read past what was read
    before); an offset beyond the end reads the whole file (it was truncated or replaced).

    Raises:
        StateError: a symlink, a special file, larger than ``limit`` bytes, or unreadable.
    """
    try:
        fd = open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        chunks: list[bytes] = []
        size = 0
        if start > 0 and start <= os.fstat(fd).st_size:
            size = os.lseek(fd, start, os.SEEK_SET)  # counted against the limit as if read
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    if size > limit:
        raise StateError(
            f"{path} is larger than {limit} bytes: not a state file autolearn wrote; "
            "restore the last good version with `autolearn recover --reason R` (it moves the "
            "file aside)"
        )
    return b"".join(chunks)


def refuse_linked_dirs(root: Path, path: Path) -> None:
    """Refuse ``path`` when a directory between ``root`` and it is a symlink (or not a directory).

    ``O_NOFOLLOW`` guards only the last component: ``snapshots -> ../../config`` would still
    land every snapshot inside the checkout. ``root`` itself may be a link (a state dir on
    another disk); what lies below it is autolearn's own and is never a link.
    """
    try:
        relative = path.parent.relative_to(root)
    except ValueError:
        return  # not under the state dir: the caller's own checks apply
    current = root
    for part in relative.parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return  # created below by the writer, as a real directory
        except OSError as exc:
            raise StateError(f"cannot inspect {current}: {exc.strerror}") from exc
        if not stat.S_ISDIR(mode):
            raise StateError(
                f"{current} is {describe_special(mode)}, not a directory; autolearn never "
                "follows links inside its state directory (a link can redirect writes into the "
                "checkout). Fix: replace it with a real directory"
            )


def append_all_or_none(fd: int, size_before: int, data: bytes) -> None:
    """Append every byte of ``data`` to ``fd`` (at ``size_before``) or none: a short write (a
    full disk) is truncated away, so an append-only log never keeps a torn record."""
    written = 0
    try:
        while written < len(data):
            count = os.write(fd, data[written:])
            if count <= 0:
                raise OSError(28, "short write")
            written += count
    except OSError:
        os.ftruncate(fd, size_before)
        raise
