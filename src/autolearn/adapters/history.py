"""Append-only JSONL history: one run record per line, fsynced, under a lock; folded and rotated.

Readers tolerate a torn last line (a crash mid-append): it is skipped and counted, and the next
append starts on a fresh line so the torn fragment never merges with a good record (the pattern
of Optuna's journal file storage). A torn line anywhere else means corruption and is reported.

``read_runs`` is what readers use: every record typed as a
:class:`~autolearn.core.run_record.RunRecord`; a line that is JSON but not a valid run record
(a field of the wrong type, a newer schema) is skipped and reported with its line number and
the field at fault, beside the corrupt lines, so no reader crashes on one bad record.

Folding. A record that repeats an earlier one of its mechanism and decision (a tuner freezing
again) is written as a delta line against that earlier full line
(:mod:`autolearn.core.record_delta`): its own time, run id, mechanism and decision, plus what
changed. The writer checks that the
delta expands back to the record before writing it, and writes the record in full when the
delta is not much smaller. Every reader expands: ``read()`` returns exactly what was appended.

Rotation. Before an append, the active ``history.jsonl`` is rotated when it holds
``RotationPolicy.max_bytes`` or spans ``max_age`` (by the records' own ``at``, so a replay
rotates on its simulated clock): its summary is written, then it is renamed to
``history-YYYYMMDD-N.jsonl`` (atomic, under the lock); segments whose newest record is older
than ``retention`` before the newest record are deleted, never the last rotated one (its number
orders the segments). ``read()`` and ``read_runs()`` read every segment; ``read_runs_since``
and ``read_status`` open only the segments their window needs (see
:mod:`autolearn.adapters.history_segments`).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from autolearn.adapters.atomic import FILE_MODE, atomic_write_bytes, ensure_dir, fsync_dir
from autolearn.adapters.files import append_all_or_none, open_regular
from autolearn.adapters.history_segments import (
    MAX_HISTORY_BYTES,
    Scanned,
    Segment,
    SegmentSummary,
    applied_version,
    list_segments,
    load_summary,
    read_line_at,
    read_segment,
    record_at,
    summarize,
    typed_runs,
)
from autolearn.core.history_landmarks import newer_or_same
from autolearn.core.record_delta import (
    FOLD_KEY,
    HEADER_KEYS,
    delta_line,
    expand_delta,
    is_delta,
)
from autolearn.core.run_record import RunRecord
from autolearn.errors import StateError

__all__ = [
    "MAX_HISTORY_BYTES",
    "HistoryFile",
    "HistoryRead",
    "RotationPolicy",
    "RunsRead",
    "StatusRead",
    "json_safe",
    "strict_json",
]

_SEQ_SHIFT = 40  # position() = segment number << 40 | byte offset (a segment is < 1 GiB)
_BASE_SCAN_BYTES = 4 << 20  # how far back an append looks for its base line
_LAYOUT_RETRIES = 5
_T = TypeVar("_T")


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
    """One compact line of strict JSON (no NaN/Infinity tokens, which jq and others reject).

    The C encoder first; only a record holding a non-finite float takes the slow ``json_safe``
    walk (a third of an append's CPU otherwise). Keys are rendered as the encoder does (``true``
    for a boolean key, where ``json_safe`` would write ``True``; no record has one).
    """
    try:
        return json.dumps(
            record, sort_keys=True, separators=(",", ":"), default=str, allow_nan=False
        )
    except (ValueError, TypeError):  # a NaN or infinity ("nan", "inf"), or keys of mixed types
        return json.dumps(
            json_safe(record), sort_keys=True, separators=(",", ":"), default=str, allow_nan=False
        )


_DECODER = json.JSONDecoder()
_scanstring: Callable[[str, int], tuple[str, int]] = getattr(json.decoder, "scanstring")  # noqa: B009 (untyped in typeshed)


def _top_level(line: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A compact JSON object line (as ``strict_json`` writes it) parsed, with the exact text
    of each top-level value: one parse, and unchanged values are found by comparing text."""
    values: dict[str, Any] = {}
    texts: dict[str, str] = {}
    if line == "{}":
        return values, texts
    pos = 0
    while line[pos] != "}":
        key, colon = _scanstring(line, pos + 2)  # pos: the "{" or "," before it
        value, end = _DECODER.raw_decode(line, colon + 1)
        values[key], texts[key] = value, line[colon + 1 : end]
        pos = end
    return values, texts


def _canonical(value: Any) -> str:
    """``strict_json`` of a value read back from JSON (nothing to make safe: C speed)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class RotationPolicy:
    """When the active segment is rotated and how long rotated segments are kept."""

    max_bytes: int = 16 << 20
    max_age: timedelta = timedelta(days=1)
    retention: timedelta = timedelta(days=90)
    fold: bool = True  # write repeats as delta lines

    def __post_init__(self) -> None:
        if not 0 < self.max_bytes < MAX_HISTORY_BYTES:
            raise ValueError(f"max_bytes must be in (0, {MAX_HISTORY_BYTES}), got {self.max_bytes}")
        if self.max_age <= timedelta(0) or self.retention < self.max_age:
            raise ValueError(
                f"0 < max_age <= retention must hold, got {self.max_age} and {self.retention}"
            )


@dataclass(frozen=True, slots=True)
class HistoryRead:
    records: list[dict[str, Any]]
    torn_last_line: bool
    corrupt_lines: list[int]
    # unreadable lines of rotated segments, one text per segment ("history-...: line 3")
    segment_problems: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RunsRead:
    """The history's records typed; ``malformed`` is ``(line, why)`` of each one skipped.

    Line numbers are those of the active ``history.jsonl``; rotated segments' unreadable lines
    are in ``segment_problems``.
    """

    runs: list[RunRecord]
    torn_last_line: bool
    corrupt_lines: list[int]
    malformed: list[tuple[int, str]]
    segment_problems: list[str] = field(default_factory=list)

    @property
    def unreadable_lines(self) -> list[int]:
        """Corrupt and malformed lines together, in file order (the torn last line aside)."""
        return sorted([*self.corrupt_lines, *(line for line, _ in self.malformed)])


@dataclass(frozen=True, slots=True)
class StatusRead:
    """What ``status`` needs: the window's runs and every segment's landmark runs, in order.

    ``total_runs`` counts the valid run records of the whole history (``status`` prints it).
    """

    read: RunsRead
    total_runs: int


def _problem(
    segment: Segment, corrupt: Sequence[int], malformed: Sequence[tuple[int, str]] = ()
) -> list[str]:
    """The unreadable lines of a rotated segment as one text (none when it has none)."""
    parts = [f"corrupt lines {', '.join(map(str, corrupt))}"] if corrupt else []
    parts += [f"malformed line {line}: {why}" for line, why in malformed[:3]]
    if len(malformed) > 3:
        parts.append(f"+{len(malformed) - 3} more malformed")
    return [f"{segment.path.name}: {'; '.join(parts)}"] if parts else []


def _sealed(scanned: Scanned) -> list[int]:
    """A rotated segment's corrupt lines: its torn last line was sealed, so it counts too."""
    return sorted([*scanned.corrupt_lines, *([scanned.torn_line] if scanned.torn_line else [])])


class HistoryFile:
    """The decision history at ``path`` (the active segment) and its rotated segments."""

    def __init__(self, path: Path, policy: RotationPolicy | None = None) -> None:
        self.path = path
        self.policy = policy or RotationPolicy()
        # the active segment's inode -> the base line (offset, bytes) per mechanism and decision
        self._bases_inode: int | None = None
        self._bases: dict[str, tuple[int, bytes]] = {}
        # recent base lines, parsed, with the text of each top-level value
        self._parsed: dict[bytes, tuple[dict[str, Any], dict[str, str]]] = {}
        self._first_at: tuple[int, datetime | None] | None = None  # (inode, first at)

    # -- writing -----------------------------------------------------------------------------
    def append(self, record: dict[str, Any]) -> None:
        """Append one record durably (JSON, sorted keys, one line; a repeat as a delta line)."""
        line = strict_json(record)
        if "\n" in line:
            raise StateError("history record must serialise to one line")
        ensure_dir(self.path.parent)
        fd = self._open_locked()
        try:
            normal, texts = _top_level(line)
            st = os.fstat(fd)
            if st.st_size > 0 and self._should_rotate(fd, st.st_ino, st.st_size, normal):
                locked, fd = fd, -1
                fd = self._rotate_and_reopen(locked, record_at(normal))
                st = os.fstat(fd)
            size = st.st_size
            prefix = b""
            if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
                prefix = b"\n"  # seal a torn last line so it stays a separate bad line
            offset = size + len(prefix)
            data, is_base = self._encode(fd, st.st_ino, size, normal, line, texts)
            append_all_or_none(fd, size, prefix + data + b"\n")
            os.fsync(fd)
            self._remember(st.st_ino, offset, normal, data, is_base)
        except OSError as exc:
            raise StateError(f"cannot append to history {self.path}: {exc.strerror}") from exc
        finally:
            if fd >= 0:
                os.close(fd)

    def _open_locked(self) -> int:
        """The active segment, locked; reopened when a rotation renamed it while we waited."""
        for _ in range(100):
            # Never through a link (it could point into a tracked file), never into a FIFO.
            fd = open_regular(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, FILE_MODE)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass  # renamed by a rotation between our open and our lock: open the new one
            except OSError as exc:
                os.close(fd)
                raise StateError(f"cannot lock history {self.path}: {exc.strerror}") from exc
            os.close(fd)
        raise StateError(f"history {self.path} keeps being replaced under its lock")

    def _encode(
        self,
        fd: int,
        inode: int,
        size: int,
        normal: dict[str, Any],
        line: str,
        texts: dict[str, str],
    ) -> tuple[bytes, bool]:
        """The line to write and whether it is a full line (a base for later deltas)."""
        key = _fold_key(normal)
        if not self.policy.fold or key is None or "run_id" not in normal:
            return line.encode(), False
        base = self._find_base(fd, inode, size, normal, key)
        if base is None:
            return line.encode(), True
        offset, base_line = base
        view = self._parsed.get(base_line)
        if view is None:
            if len(self._parsed) >= 32:
                self._parsed.clear()
            view = self._parsed[base_line] = _top_level(base_line.decode())  # read-only
        base_doc, base_texts = view
        # Top-level values whose canonical text is the same are the same value, types and all:
        # only the others (and the header) are diffed and checked. The rest is most of a record.
        keys = {k for k, t in texts.items() if base_texts.get(k) != t}
        keys |= {k for k in base_doc if k not in normal} | {"run_id", *HEADER_KEYS}
        old = {k: base_doc[k] for k in keys if k in base_doc}
        new = {k: normal[k] for k in keys if k in normal}
        delta = delta_line(old, offset, new)
        text = _canonical(delta)
        if 2 * len(text) > len(line):
            return line.encode(), True  # changed too much: a new base is cheaper for what follows
        # lossless or not at all: the delta must expand back to exactly this record's text
        fresh = {k: json.loads(base_texts[k]) for k in old}
        try:
            expanded = expand_delta(fresh, delta)
        except (ValueError, TypeError, IndexError):  # the record's own keys fool the format
            return line.encode(), True
        if expanded.keys() != new.keys() or any(_canonical(expanded[k]) != texts[k] for k in new):
            return line.encode(), True
        return text.encode(), False

    def _remember(
        self, inode: int, offset: int, normal: dict[str, Any], data: bytes, is_base: bool
    ) -> None:
        if self._bases_inode != inode:
            self._bases, self._bases_inode = {}, inode
        key = _fold_key(normal)
        if is_base and key is not None:
            self._bases[key] = (offset, data)

    def _find_base(
        self, fd: int, inode: int, size: int, normal: dict[str, Any], key: str
    ) -> tuple[int, bytes] | None:
        """The full line a delta of ``normal`` is against: the base of the latest record of
        its mechanism and decision (the last repeat's base: never a chain of deltas)."""
        mechanism = normal["mechanism"]
        cached = self._bases.get(key) if self._bases_inode == inode else None
        # a line once written never moves; checked anyway (someone may have truncated the file)
        if cached is not None and os.pread(fd, len(cached[1]), cached[0]) == cached[1]:
            return cached
        needle = b'"mechanism":' + json.dumps(mechanism).encode()
        start = max(0, size - _BASE_SCAN_BYTES)
        tail = os.pread(fd, size - start, start)
        end = len(tail)
        while end > 0:
            begin = tail.rfind(b"\n", 0, end - 1) + 1
            if begin == 0 and start > 0:
                return None  # not found within the scan window: write a full line
            line = tail[begin:end].rstrip(b"\n")
            end = begin
            if needle not in line:
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if not isinstance(record, dict) or _fold_key(record) != key:
                continue
            if not is_delta(record):
                return start + begin, line
            fold = record[FOLD_KEY]
            base_offset = fold.get("base")
            if not isinstance(base_offset, int) or not 0 <= base_offset < size:
                return None
            base_line = read_line_at(self.path, base_offset)
            try:
                base = json.loads(base_line)
            except (ValueError, RecursionError):
                return None
            if not isinstance(base, dict) or is_delta(base):
                return None
            if base.get("run_id") != fold.get("base_run_id"):
                return None
            return base_offset, base_line
        return None

    # -- rotation ----------------------------------------------------------------------------
    def _should_rotate(self, fd: int, inode: int, size: int, normal: dict[str, Any]) -> bool:
        if size >= self.policy.max_bytes:
            return True
        at = record_at(normal)
        if at is None:
            return False
        if self._first_at is None or self._first_at[0] != inode:
            self._first_at = (inode, _first_record_at(os.pread(fd, 1 << 16, 0)))
        first = self._first_at[1]
        return first is not None and at - first >= self.policy.max_age

    def _rotate_and_reopen(self, locked: int, newest: datetime | None) -> int:
        """Rotate the active segment (``locked``: its descriptor, locked; closed here) and
        return the new active one, locked.

        Order: summary (atomic), rename (atomic), directory sync, then retention. A crash
        before the rename leaves an orphan summary (ignored, rewritten next time); after it,
        the segment is complete; retention deletes a segment before its summary.
        """
        try:
            summary = summarize(read_segment(self.path))
            segments = list_segments(self.path)
            target = self._rotate_locked(summary, segments)
        finally:
            os.close(locked)  # a writer waiting on the old file now finds it renamed
        latest = max((t for t in (newest, summary.max_at) if t is not None), default=None)
        if latest is not None and target is not None:
            self._apply_retention(segments, latest - self.policy.retention)
        return self._open_locked()

    def _rotate_locked(self, summary: SegmentSummary, segments: list[Segment]) -> Segment:
        seq = (segments[-1].seq + 1) if segments else 1
        day = summary.first_at.strftime("%Y%m%d") if summary.first_at else "undated"
        target = Segment(seq, self.path.with_name(f"{self.path.stem}-{day}-{seq}.jsonl"))
        if target.path.exists():
            raise StateError(f"cannot rotate history: {target.path} exists (not autolearn's?)")
        body = json.dumps(summary.to_json(), sort_keys=True, separators=(",", ":"))
        atomic_write_bytes(target.summary_path, body.encode() + b"\n")
        os.rename(self.path, target.path)
        fsync_dir(self.path.parent)
        self._bases_inode, self._bases, self._first_at = None, {}, None
        return target

    def _apply_retention(self, older: list[Segment], cutoff: datetime) -> None:
        """Delete the rotated segments (before the one just rotated) wholly older than cutoff."""
        for segment in older:
            summary = load_summary(segment)
            if summary.max_at is not None and summary.max_at < cutoff:
                segment.path.unlink(missing_ok=True)
                segment.summary_path.unlink(missing_ok=True)
        fsync_dir(self.path.parent)

    # -- reading -----------------------------------------------------------------------------
    def _layout(self) -> tuple[tuple[str, ...], int | None]:
        names = tuple(s.path.name for s in list_segments(self.path))
        try:
            return names, os.stat(self.path).st_ino
        except FileNotFoundError:
            return names, None
        except OSError as exc:
            raise StateError(f"cannot stat history {self.path}: {exc.strerror}") from exc

    def _consistent(self, read: Callable[[], _T]) -> _T:
        """``read()`` again while a rotation moved files under it (no record lost or doubled)."""
        for _ in range(_LAYOUT_RETRIES):
            before = self._layout()
            result = read()
            if self._layout() == before:
                return result
        raise StateError(f"history {self.path} kept rotating while being read; try again")

    def read(self) -> HistoryRead:
        """All records of every segment, oldest first; a torn last line is skipped and flagged."""

        def body() -> HistoryRead:
            records: list[dict[str, Any]] = []
            problems: list[str] = []
            for segment in list_segments(self.path):
                scanned = read_segment(segment.path)
                records += [r for _, _, r in scanned.records]
                problems += _problem(segment, _sealed(scanned))
            active = read_segment(self.path)
            records += [r for _, _, r in active.records]
            return HistoryRead(records, active.torn_last_line, active.corrupt_lines, problems)

        return self._consistent(body)

    def read_runs(self) -> RunsRead:
        """All records typed; malformed ones are skipped and listed, like corrupt lines."""
        return self._runs(None)

    def read_runs_since(self, cutoff: datetime) -> RunsRead:
        """Records at or after ``cutoff``, typed; opens only segments that reach ``cutoff``."""
        return self._runs(cutoff)

    def _runs(self, cutoff: datetime | None) -> RunsRead:
        def body() -> RunsRead:
            runs: list[RunRecord] = []
            problems: list[str] = []
            for segment in list_segments(self.path):
                if cutoff is not None:
                    summary = load_summary(segment)
                    if summary.max_at is None or summary.max_at < cutoff:
                        continue
                scanned = read_segment(segment.path)
                bad: list[tuple[int, str]] = []
                runs += _typed(scanned, cutoff, bad)
                problems += _problem(segment, _sealed(scanned), bad)
            active = read_segment(self.path)
            malformed: list[tuple[int, str]] = []
            runs += _typed(active, cutoff, malformed)
            return RunsRead(runs, active.torn_last_line, active.corrupt_lines, malformed, problems)

        return self._consistent(body)

    def read_status(self, cutoff: datetime) -> StatusRead:
        """The runs at or after ``cutoff`` and, of older segments, only their landmark runs.

        ``status`` computed from these gives what it gives from the whole history
        (:mod:`autolearn.core.history_landmarks`); old segments are opened only to read the
        few landmark lines.
        """

        def body() -> StatusRead:
            runs: list[tuple[int, int, RunRecord]] = []  # (segment order, offset, run)
            best: dict[str, tuple[datetime, int, int]] = {}  # key -> at, segment order, offset
            segments = list_segments(self.path)
            total = 0
            problems: list[str] = []
            for order, segment in enumerate(segments):
                summary = load_summary(segment)
                problems += _problem(segment, summary.corrupt_lines, summary.malformed)
                total += summary.runs
                if summary.max_at is not None and summary.max_at >= cutoff:
                    # whole: a record here older than the window may still be a landmark
                    scanned = read_segment(segment.path)
                    runs += [(order, o, r) for o, r in _valid(scanned)]
                    continue
                for key, (offset, at) in summary.landmarks.items():
                    known = best.get(key)
                    if known is None or newer_or_same(at, known[0]):
                        best[key] = (at, order, offset)
            wanted = sorted({(order, offset) for _, order, offset in best.values()})
            runs += [(o, off, r) for o, off in wanted if (r := self._run_at(segments[o], off))]
            active = read_segment(self.path)
            malformed: list[tuple[int, str]] = []
            mine = _typed(active, None, malformed)
            total += len(mine)
            runs.sort(key=lambda t: (t[0], t[1]))
            read = RunsRead(
                [r for _, _, r in runs] + mine,
                active.torn_last_line,
                active.corrupt_lines,
                malformed,
                problems,
            )
            return StatusRead(read, total)

        return self._consistent(body)

    def _run_at(self, segment: Segment, offset: int) -> RunRecord | None:
        """The run record whose line starts at ``offset`` of ``segment`` (expanded)."""
        try:
            record = json.loads(read_line_at(segment.path, offset))
            if is_delta(record):
                base = json.loads(read_line_at(segment.path, int(record[FOLD_KEY]["base"])))
                record = expand_delta(base, record)
            return RunRecord.from_json(record)
        except (ValueError, TypeError, LookupError, AttributeError, RecursionError, StateError):
            return None  # the summary is stale: the segment changed since (never ours)

    def last_applied_version(self) -> str | None:
        """The ``version_after`` of the last record that applied a change (None: never).

        The active segment is read; older ones answer from their summaries.
        """

        def body() -> str | None:
            for _, _, record in reversed(read_segment(self.path).records):
                version = applied_version(record)
                if version is not None:
                    return version
            for segment in reversed(list_segments(self.path)):
                version = load_summary(segment).last_applied_version
                if version is not None:
                    return version
            return None

        return self._consistent(body)

    def size(self) -> int:
        """Bytes in the active segment now (0 when it does not exist yet)."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise StateError(f"cannot stat history {self.path}: {exc.strerror}") from exc

    def position(self) -> int:
        """Where the next record goes, across rotations: ``read_from`` finds it from here."""
        segments = list_segments(self.path)
        seq = (segments[-1].seq + 1) if segments else 1
        return (seq << _SEQ_SHIFT) | self.size()

    def read_from(self, position: int) -> list[dict[str, Any]]:
        """Whole records at or after ``position`` (of :meth:`position`; a plain byte offset of
        the active segment, as older state files hold, is read generously: nothing is missed).
        """
        seq, offset = divmod(max(position, 0), 1 << _SEQ_SHIFT)
        segments = list_segments(self.path)
        if seq == 0:  # a legacy offset: the active segment's, or the last rotated one's
            seq = segments[-1].seq if segments else 1
        out: list[dict[str, Any]] = []
        for segment in segments:
            if segment.seq >= seq:
                start = offset if segment.seq == seq else 0
                out += [r for _, o, r in read_segment(segment.path).records if o >= start]
        active = read_segment(self.path)
        next_seq = (segments[-1].seq + 1) if segments else 1
        start = offset if next_seq == seq and offset <= active.size else 0
        out += [r for _, o, r in active.records if o >= start]
        return out

    def holds_run_near(self, position: int, run_id: str, *, lines: int = 16) -> bool:
        """Whether one of the ``lines`` records written from ``position`` (of :meth:`position`)
        is run ``run_id``: a few line reads, for the usual case of a record appended where it
        was due (``False`` is not proof of absence: scan with :meth:`read_from`)."""
        seq, offset = divmod(max(position, 0), 1 << _SEQ_SHIFT)
        segments = list_segments(self.path)
        next_seq = (segments[-1].seq + 1) if segments else 1
        found = [s.path for s in segments if s.seq == seq]
        path = self.path if seq in (0, next_seq) else (found[0] if found else None)
        if path is None:
            return False
        try:
            for _ in range(lines):
                line = read_line_at(path, offset)
                if not line:
                    return False
                if json.loads(line).get("run_id") == run_id:
                    return True
                offset += len(line) + 1
        except (OSError, ValueError, AttributeError, StateError):
            return False
        return False

    def since(self, cutoff: datetime | None) -> Iterator[dict[str, Any]]:
        """Records whose ``at`` is at or after ``cutoff`` (all when ``None``)."""
        if cutoff is None:
            yield from self.read().records
            return
        for run in self.read_runs_since(cutoff).runs:
            yield run.to_json()


def _typed(
    scanned: Scanned, cutoff: datetime | None, malformed: list[tuple[int, str]]
) -> list[RunRecord]:
    out = []
    for line, _, run in typed_runs(scanned):
        if isinstance(run, str):
            malformed.append((line, run))
        elif cutoff is None or (run.at is not None and run.at >= cutoff):
            out.append(run)
    return out


def _valid(scanned: Scanned) -> list[tuple[int, RunRecord]]:
    """``(offset, run)`` of the valid runs of ``scanned``."""
    return [(offset, run) for _, offset, run in typed_runs(scanned) if isinstance(run, RunRecord)]


def _fold_key(record: dict[str, Any]) -> str | None:
    """What a record repeats: its mechanism and decision (``None``: never folded)."""
    mechanism, decision = record.get("mechanism"), record.get("decision")
    if not isinstance(mechanism, str) or not isinstance(decision, str):
        return None
    return f"{mechanism}\x00{decision}"


def _first_record_at(head: bytes) -> datetime | None:
    """The ``at`` of the first dated record in ``head`` (the start of a segment)."""
    for line in head.split(b"\n")[:-1]:
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(record, dict):
            at = record_at(record)
            if at is not None:
                return at
    return None
