"""Append-only JSONL history: one run record per line, fsynced, under a lock.

Readers tolerate a torn last line (a crash mid-append): it is skipped and counted, and the next
append starts on a fresh line so the torn fragment never merges with a good record (the pattern
of Optuna's journal file storage). A torn line anywhere else means corruption and is reported.

``read_runs`` is what readers use: every record typed as a
:class:`~autolearn.core.run_record.RunRecord`; a line that is JSON but not a valid run record
(a field of the wrong type, a newer schema) is skipped and reported with its line number and
the field at fault, beside the corrupt lines, so no reader crashes on one bad record.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from autolearn.adapters.atomic import FILE_MODE, ensure_dir
from autolearn.adapters.files import open_regular, read_regular
from autolearn.core.run_record import RunRecord
from autolearn.core.timestamps import TimestampError, parse_utc
from autolearn.errors import StateError

__all__ = [
    "MAX_HISTORY_BYTES",
    "HistoryFile",
    "HistoryRead",
    "RunsRead",
    "json_safe",
    "strict_json",
]

# Years of ten-minute runs stay far below this; a larger file is not ours (or /dev/zero).
MAX_HISTORY_BYTES = 1 << 30


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as strings ("nan", "inf"): records stay strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def strict_json(record: Any) -> str:
    """One compact line of strict JSON (no NaN/Infinity tokens, which jq and others reject)."""
    return json.dumps(
        json_safe(record), sort_keys=True, separators=(",", ":"), default=str, allow_nan=False
    )


def _write_all(fd: int, size_before: int, data: bytes) -> None:
    """Write every byte or none: a short write is undone so no torn record is left behind."""
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


@dataclass(frozen=True, slots=True)
class HistoryRead:
    records: list[dict[str, Any]]
    torn_last_line: bool
    corrupt_lines: list[int]


@dataclass(frozen=True, slots=True)
class RunsRead:
    """The history's records typed; ``malformed`` is ``(line, why)`` of each one skipped."""

    runs: list[RunRecord]
    torn_last_line: bool
    corrupt_lines: list[int]
    malformed: list[tuple[int, str]]

    @property
    def unreadable_lines(self) -> list[int]:
        """Corrupt and malformed lines together, in file order (the torn last line aside)."""
        return sorted([*self.corrupt_lines, *(line for line, _ in self.malformed)])


class HistoryFile:
    """The decision history at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: dict[str, Any]) -> None:
        """Append one record durably (JSON, sorted keys, one line)."""
        line = strict_json(record)
        if "\n" in line:
            raise StateError("history record must serialise to one line")
        ensure_dir(self.path.parent)
        # Never through a link (it could point into a tracked file), never into a FIFO.
        fd = open_regular(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            prefix = b""
            if size > 0:
                os.lseek(fd, size - 1, os.SEEK_SET)
                if os.read(fd, 1) != b"\n":
                    prefix = b"\n"  # seal a torn last line so it stays a separate bad line
            _write_all(fd, size, prefix + line.encode() + b"\n")
            os.fsync(fd)
        except OSError as exc:
            raise StateError(f"cannot append to history {self.path}: {exc.strerror}") from exc
        finally:
            os.close(fd)

    def read(self) -> HistoryRead:
        """All records; a torn last line is skipped and flagged, other bad lines are listed."""
        numbered, torn_last, corrupt = self._scan()
        return HistoryRead([record for _, record in numbered], torn_last, corrupt)

    def read_runs(self) -> RunsRead:
        """All records typed; malformed ones are skipped and listed, like corrupt lines."""
        numbered, torn_last, corrupt = self._scan()
        runs: list[RunRecord] = []
        malformed: list[tuple[int, str]] = []
        for line, record in numbered:
            try:
                runs.append(RunRecord.from_json(record))
            except StateError as exc:
                malformed.append((line, str(exc)))
        return RunsRead(runs, torn_last, corrupt, malformed)

    def _scan(self) -> tuple[list[tuple[int, dict[str, Any]]], bool, list[int]]:
        """``(line number, record)`` of each JSON object, the torn flag, the corrupt lines."""
        raw = read_regular(self.path, limit=MAX_HISTORY_BYTES)
        if raw is None:
            return [], False, []
        lines = raw.split(b"\n")
        records: list[tuple[int, dict[str, Any]]] = []
        corrupt: list[int] = []
        torn_last = False
        last_index = len(lines) - 1
        for index, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not an object")
            except (ValueError, RecursionError):  # RecursionError: nested absurdly deep
                if index == last_index:
                    torn_last = True  # no trailing newline: the crash happened mid-append
                else:
                    corrupt.append(index + 1)
                continue
            records.append((index + 1, record))
        return records, torn_last, corrupt

    def size(self) -> int:
        """Bytes in the file now (0 when it does not exist yet)."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise StateError(f"cannot stat history {self.path}: {exc.strerror}") from exc

    def read_from(self, offset: int) -> list[dict[str, Any]]:
        """Whole records that start at or after byte ``offset`` (all of them if it is stale)."""
        data = read_regular(self.path, limit=MAX_HISTORY_BYTES)
        if data is None:
            return []
        start = offset if 0 <= offset <= len(data) else 0  # truncated or rotated: read all
        raw = data[start:]
        out = []
        for line in raw.split(b"\n"):
            try:
                record = json.loads(line) if line.strip() else None
            except (ValueError, RecursionError):
                continue  # a torn fragment: not a record
            if isinstance(record, dict):
                out.append(record)
        return out

    def since(self, cutoff: datetime | None) -> Iterator[dict[str, Any]]:
        """Records whose ``at`` is at or after ``cutoff`` (all when ``None``)."""
        for record in self.read().records:
            if cutoff is None:
                yield record
                continue
            try:
                at = parse_utc(str(record.get("at", "")))
            except TimestampError:
                continue
            if at >= cutoff:
                yield record
