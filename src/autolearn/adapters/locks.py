"""Advisory file locks (``fcntl.flock``): one writer per mechanism, one for the merged view.

A flock dies with its process, so a SIGKILL or OOM never leaves a stale lock behind (the
original's ``O_EXCL`` lock file did, and autotune silently stopped: original-system.md 5.3).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from autolearn.adapters.atomic import FILE_MODE, ensure_dir
from autolearn.adapters.files import open_regular
from autolearn.errors import LockBusy, StateError

__all__ = ["file_lock"]


@contextmanager
def file_lock(path: Path, *, timeout_s: float = 0.0, poll_s: float = 0.01) -> Iterator[None]:
    """Hold an exclusive lock on ``path``; ``LockBusy`` when not acquired within ``timeout_s``."""
    ensure_dir(path.parent)
    try:
        fd = open_regular(path, os.O_RDWR | os.O_CREAT, FILE_MODE)  # never through a link
    except FileNotFoundError as exc:
        raise StateError(f"cannot open lock {path}: {exc.strerror}") from exc
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockBusy(f"{path.name} is held by another run") from None
                time.sleep(poll_s)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
