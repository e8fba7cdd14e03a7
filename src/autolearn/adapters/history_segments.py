"""The history's segments on disk: scanning one (delta lines expanded), its summary, its name.

The history is ``history.jsonl`` (the *active* segment, the only one appended to) plus rotated
segments ``history-YYYYMMDD-N.jsonl`` (``N`` counts up across the history's life and orders
them; the date is the first record's, for people). Each rotated segment has a summary
``history-YYYYMMDD-N.summary.json``, written before the rename and checked against the
segment's size when read (a stale or missing one is recomputed, never trusted): its record
count, time range, unreadable lines and landmarks (:mod:`autolearn.core.history_landmarks`),
so `status` and ``--since`` need not open old segments.

A delta line (:mod:`autolearn.core.record_delta`) names its base by byte offset in its own
segment, so every segment expands on its own. A delta whose base is missing or is not the run
it names is reported as a corrupt line, never guessed.

An adapter: reads files; writes only a summary (atomically) when asked by the rotation.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from autolearn.adapters.files import open_regular, read_regular
from autolearn.core.history_landmarks import landmark_keys, newer_or_same
from autolearn.core.record_delta import FOLD_KEY, expand_delta, is_delta
from autolearn.core.run_record import RunRecord
from autolearn.core.timestamps import TimestampError, format_utc, parse_utc
from autolearn.errors import StateError

__all__ = [
    "MAX_HISTORY_BYTES",
    "SUMMARY_SCHEMA",
    "Scanned",
    "Segment",
    "SegmentSummary",
    "applied_version",
    "list_segments",
    "load_summary",
    "read_line_at",
    "read_segment",
    "record_at",
    "scan_bytes",
    "summarize",
    "typed_runs",
]

# Years of ten-minute runs stay far below this; a larger file is not ours (or /dev/zero).
MAX_HISTORY_BYTES = 1 << 30
SUMMARY_SCHEMA = 1
_MAX_LINE_BYTES = 16 << 20  # one record line; a record is a few KB


@dataclass(frozen=True, slots=True)
class Segment:
    """One rotated segment file: its sequence number orders the history."""

    seq: int
    path: Path

    @property
    def summary_path(self) -> Path:
        return self.path.with_name(self.path.name.removesuffix(".jsonl") + ".summary.json")


def list_segments(active: Path) -> list[Segment]:
    """The rotated segments beside ``active`` (``history.jsonl``), oldest first."""
    pattern = re.compile(rf"^{re.escape(active.stem)}-(\d{{8}}|undated)-(\d+)\.jsonl$")
    try:
        names = os.listdir(active.parent)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StateError(f"cannot list {active.parent}: {exc.strerror}") from exc
    found = []
    for name in names:
        match = pattern.match(name)
        if match:
            found.append(Segment(int(match.group(2)), active.parent / name))
    return sorted(found, key=lambda s: s.seq)


def record_at(record: dict[str, Any]) -> datetime | None:
    """A record's ``at`` (UTC-aware), ``None`` when missing or unreadable."""
    at = record.get("at")
    if not isinstance(at, str):
        return None
    try:
        return parse_utc(at)
    except TimestampError:
        return None


@dataclass(slots=True)
class Scanned:
    """One segment read: ``(line, offset, record)`` of each record, expanded; what was skipped."""

    records: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)
    torn_last_line: bool = False
    corrupt_lines: list[int] = field(default_factory=list)
    size: int = 0
    torn_line: int = 0  # the torn last line's number (0: none)


def scan_bytes(raw: bytes) -> Scanned:
    """Every record of one segment's bytes, delta lines expanded against their base lines."""
    out = Scanned(size=len(raw))
    bases: dict[int, bytes] = {}  # offset -> full line, for the delta lines after it
    offset = 0
    lines = raw.split(b"\n")
    last_index = len(lines) - 1
    for index, line in enumerate(lines):
        start = offset
        offset += len(line) + 1
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except (ValueError, RecursionError):  # RecursionError: nested absurdly deep
            if index == last_index:
                out.torn_last_line = True  # no trailing newline: the crash happened mid-append
                out.torn_line = index + 1
            else:
                out.corrupt_lines.append(index + 1)
            continue
        if is_delta(record):
            base = bases.get(record[FOLD_KEY].get("base"))
            try:
                if base is None:
                    raise ValueError("its base line is not in this segment")
                record = expand_delta(json.loads(base), record)
            except (ValueError, TypeError, AttributeError, IndexError, KeyError):
                out.corrupt_lines.append(index + 1)
                continue
        else:
            bases[start] = line
        out.records.append((index + 1, start, record))
    return out


def read_line_at(path: Path, offset: int) -> bytes:
    """The line that starts at byte ``offset`` of ``path`` (without its newline)."""
    fd = open_regular(path, os.O_RDONLY)
    try:
        os.lseek(fd, offset, os.SEEK_SET)
        chunks: list[bytes] = []
        total = 0
        while total < _MAX_LINE_BYTES:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            cut = chunk.find(b"\n")
            if cut >= 0:
                chunks.append(chunk[:cut])
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    return b"".join(chunks)


@dataclass(frozen=True, slots=True, kw_only=True)
class SegmentSummary:
    """What a rotated segment holds, without its records (see the module docstring)."""

    size: int
    records: int  # JSON objects, delta lines expanded
    runs: int  # of which valid run records
    first_at: datetime | None
    max_at: datetime | None
    corrupt_lines: tuple[int, ...] = ()
    malformed: tuple[tuple[int, str], ...] = ()
    landmarks: dict[str, tuple[int, datetime]] = field(default_factory=dict)  # key -> offset, at
    last_applied_version: str | None = None  # of the segment's last applied record (file order)

    def to_json(self) -> dict[str, Any]:
        def at(value: datetime | None) -> str | None:
            return format_utc(value) if value else None

        return {
            "schema_version": SUMMARY_SCHEMA,
            "size": self.size,
            "records": self.records,
            "runs": self.runs,
            "first_at": at(self.first_at),
            "max_at": at(self.max_at),
            "corrupt_lines": list(self.corrupt_lines),
            "malformed": [list(m) for m in self.malformed],
            "landmarks": {k: [o, format_utc(a)] for k, (o, a) in sorted(self.landmarks.items())},
            "last_applied_version": self.last_applied_version,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SegmentSummary:
        """Raises ``ValueError``/``TypeError``/``KeyError`` on anything malformed."""
        if doc.get("schema_version") != SUMMARY_SCHEMA:
            raise ValueError(f"summary schema {doc.get('schema_version')!r}")

        def at(value: object) -> datetime | None:
            return parse_utc(str(value)) if value is not None else None

        return cls(
            size=int(doc["size"]),
            records=int(doc["records"]),
            runs=int(doc["runs"]),
            first_at=at(doc["first_at"]),
            max_at=at(doc["max_at"]),
            corrupt_lines=tuple(int(x) for x in doc["corrupt_lines"]),
            malformed=tuple((int(line), str(why)) for line, why in doc["malformed"]),
            last_applied_version=_opt_str(doc.get("last_applied_version")),
            landmarks={
                str(k): (int(v[0]), parse_utc(str(v[1]))) for k, v in doc["landmarks"].items()
            },
        )


def _opt_str(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"expected a string or null, got {value!r}")
    return value


def applied_version(record: dict[str, Any]) -> str | None:
    """The version a record applied (``None``: it applied nothing)."""
    version = record.get("version_after")
    return version if isinstance(version, str) and record.get("applied") is True else None


def typed_runs(scanned: Scanned) -> Iterator[tuple[int, int, RunRecord | str]]:
    """``(line, offset, run or why it is malformed)`` of each record of ``scanned``."""
    for line, offset, record in scanned.records:
        try:
            yield line, offset, RunRecord.from_json(record)
        except StateError as exc:
            yield line, offset, str(exc)


def summarize(scanned: Scanned) -> SegmentSummary:
    """The summary of one scanned segment (a torn last line counts as corrupt: it is sealed)."""
    runs = 0
    first_at: datetime | None = None
    max_at: datetime | None = None
    malformed: list[tuple[int, str]] = []
    landmarks: dict[str, tuple[int, datetime]] = {}
    for line, offset, run in typed_runs(scanned):
        if isinstance(run, str):
            malformed.append((line, run))
            continue
        runs += 1
        if run.at is None:
            continue
        first_at = first_at or run.at
        max_at = run.at if max_at is None else max(max_at, run.at)
        for key in landmark_keys(run):
            best = landmarks.get(key)
            if best is None or newer_or_same(run.at, best[1]):
                landmarks[key] = (offset, run.at)
    corrupt = list(scanned.corrupt_lines)
    if scanned.torn_last_line:
        corrupt.append(scanned.torn_line)
    versions = (applied_version(r) for _, _, r in reversed(scanned.records))
    return SegmentSummary(
        last_applied_version=next((v for v in versions if v is not None), None),
        size=scanned.size,
        records=len(scanned.records),
        runs=runs,
        first_at=first_at,
        max_at=max_at,
        corrupt_lines=tuple(sorted(corrupt)),
        malformed=tuple(malformed),
        landmarks=landmarks,
    )


def read_segment(path: Path) -> Scanned:
    """Scan the segment at ``path`` (empty when it does not exist)."""
    raw = read_regular(path, limit=MAX_HISTORY_BYTES)
    return scan_bytes(raw) if raw is not None else Scanned()


def load_summary(segment: Segment) -> SegmentSummary:
    """The segment's summary: the stored one when it matches the segment's size, else computed."""
    try:
        size = os.stat(segment.path).st_size
    except OSError as exc:
        raise StateError(f"cannot stat {segment.path}: {exc.strerror}") from exc
    stored = _stored_summary(segment)
    if stored is not None and stored.size == size:
        return stored
    return summarize(read_segment(segment.path))  # missing, damaged or stale: recomputed


def _stored_summary(segment: Segment) -> SegmentSummary | None:
    """The summary file's content; ``None`` when absent or unreadable (it is only a cache)."""
    try:
        raw = read_regular(segment.summary_path)
        return None if raw is None else SegmentSummary.from_json(json.loads(raw))
    except (ValueError, TypeError, KeyError, AttributeError, TimestampError, StateError):
        return None
