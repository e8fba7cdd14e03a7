"""``Spool``: the bot's local, durable queue of ledger writes made while the database was down.

``TradeWriter`` appends a trade (or signal) here only after its retries against the database
failed with a transient error (issue 19 item 6: a dropped PostgreSQL connection lost 11 of
20,000 trades). One JSON line per value, appended under an exclusive ``flock``, fsynced before
``append`` returns: a ``kill -9`` right after keeps it. ``drain`` writes every line back, in
order, through the idempotent upserts and only then empties the file, so a crash in between
re-delivers values the ledger already holds (counted ``unchanged``), never loses or doubles one.

The file lives in the bot's state directory (never a git-tracked path, never through a
symlink). Readers tolerate a torn last line (a crash mid-append: that call never returned); a
line that cannot be decoded, or a value the ledger refuses for good (``InputError``, a
non-transient ``LedgerError``), is moved to ``<name>.rejected`` and logged instead of blocking
every later write.

An adapter: it knows files and rows, not trading decisions.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from autolearn.adapters.atomic import FILE_MODE, ensure_dir
from autolearn.adapters.files import append_all_or_none, open_regular
from autolearn.adapters.gitguard import ensure_state_dir_ignored
from autolearn.adapters.logs import get_logger
from autolearn.core.model import EntrySignal, ShadowSignal, Trade
from autolearn.errors import InputError, LedgerError, LedgerUnavailable, StateError
from autolearn.ledger._rows import (
    shadow_from_row,
    shadow_row,
    signal_from_row,
    signal_row,
    trade_from_row,
    trade_row,
)

__all__ = ["Kind", "Spool", "SpoolDrain", "spool_path"]

Kind = Literal["trade", "signal", "shadow"]
Value = Trade | EntrySignal | ShadowSignal
# Writes one run of same-kind values to the ledger; raises ``LedgerError`` when it cannot.
Writer = Callable[[Kind, Sequence[Value]], object]

# A spool holds an outage's worth of trades and signals; beyond this it is not ours.
MAX_SPOOL_BYTES = 256 * 1024 * 1024

_ENCODE: dict[str, Callable[[Any], dict[str, Any]]] = {
    "trade": trade_row,
    "signal": signal_row,
    "shadow": shadow_row,
}
_DECODE: dict[str, Callable[[Any], Value]] = {
    "trade": trade_from_row,
    "signal": signal_from_row,
    "shadow": shadow_from_row,
}


def spool_path(directory: Path, ledger_url: str, account: str = "") -> Path:
    """The spool of ``ledger_url`` (password redacted) in ``directory``: one file per ledger
    and account, so a bot pointed at another ledger (or another bot sharing the directory)
    never flushes the first one's trades into it. The one bot's ('') name is as before v4."""
    named = ledger_url if not account else f"{ledger_url}#account={account}"
    digest = hashlib.sha256(named.encode()).hexdigest()[:12]
    return directory / f"ledger-{digest}.jsonl"


@dataclass(frozen=True, slots=True)
class SpoolDrain:
    """What one ``drain`` did: values written back, and values moved aside as rejected."""

    written: int = 0
    rejected: int = 0


class Spool:
    """An append-only, fsynced file of ledger writes awaiting the database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rejected_path = path.with_name(path.name + ".rejected")
        self._log = get_logger("autolearn.ledger.spool")

    @classmethod
    def in_state_dir(cls, directory: Path, ledger_url: str, account: str = "") -> Spool:
        """The spool of ``ledger_url`` (and ``account``) under ``directory``, refused inside a
        git checkout unless git ignores it (``TrackedPathError``)."""
        ensure_state_dir_ignored(directory)
        return cls(spool_path(directory, ledger_url, account))

    def __repr__(self) -> str:
        return f"Spool({str(self.path)!r})"

    def is_empty(self) -> bool:
        """True when nothing waits (no file, or an empty one): one ``stat``, no lock."""
        try:
            return self.path.stat().st_size == 0
        except FileNotFoundError:
            return True
        except OSError as exc:
            raise StateError(f"cannot stat ledger spool {self.path}: {exc.strerror}") from exc

    def pending(self) -> int:
        """How many values wait (whole lines)."""
        with self._locked() as fd:
            return len(_read_lines(fd, self.path)[0])

    def append(self, kind: Kind, value: Value) -> None:
        """Append ``value`` durably (fsynced before returning)."""
        line = json.dumps(
            {"kind": kind, "row": _ENCODE[kind](value)},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        ).encode()
        with self._locked() as fd:
            size = os.fstat(fd).st_size
            prefix = b""
            if size > 0:
                os.lseek(fd, size - 1, os.SEEK_SET)
                if os.read(fd, 1) != b"\n":
                    prefix = b"\n"  # seal a torn last line so it stays a separate bad line
            try:
                os.lseek(fd, 0, os.SEEK_END)
                append_all_or_none(fd, size, prefix + line + b"\n")
                os.fsync(fd)
            except OSError as exc:
                raise StateError(
                    f"cannot append to ledger spool {self.path}: {exc.strerror}"
                ) from exc

    def drain(self, write: Writer) -> SpoolDrain:
        """Write every spooled value back in order (runs of one kind per ``write`` call), then
        empty the spool.

        Raises:
            LedgerUnavailable: the database is still unreachable; the spool is unchanged
                (values written before the failure are written again next time: idempotent).
        """
        with self._locked() as fd:
            lines, torn = _read_lines(fd, self.path)
            if not lines and not torn:
                return SpoolDrain()
            written = rejected = 0

            def reject(raw: bytes, why: str) -> None:
                nonlocal rejected
                self._reject(raw, why)
                rejected += 1

            for kind, run in _runs(lines, reject):
                try:
                    write(kind, [value for _, value in run])
                    written += len(run)
                except LedgerUnavailable:
                    raise
                except (InputError, LedgerError):  # one bad value must not block the rest
                    for raw, value in run:
                        try:
                            write(kind, [value])
                            written += 1
                        except LedgerUnavailable:
                            raise
                        except (InputError, LedgerError) as exc:
                            reject(raw, str(exc))
            if torn:  # its append never returned: the caller was told nothing was kept
                self._log.warning("ledger_spool_torn_line", path=str(self.path))
            try:
                os.ftruncate(fd, 0)
                os.fsync(fd)
            except OSError as exc:
                raise StateError(f"cannot empty ledger spool {self.path}: {exc.strerror}") from exc
        if written or rejected:
            self._log.info("ledger_spool_drained", written=written, rejected=rejected)
        return SpoolDrain(written=written, rejected=rejected)

    def _reject(self, raw: bytes, why: str) -> None:
        """Keep an undeliverable line aside (append-only, fsynced) and say why."""
        self._log.error("ledger_spool_rejected", path=str(self.rejected_path), error=why)
        fd = open_regular(self.rejected_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        try:
            append_all_or_none(fd, os.fstat(fd).st_size, raw.rstrip(b"\n") + b"\n")
            os.fsync(fd)
        except OSError as exc:
            raise StateError(f"cannot write {self.rejected_path}: {exc.strerror}") from exc
        finally:
            os.close(fd)

    @contextmanager
    def _locked(self) -> Iterator[int]:
        """The spool's descriptor under an exclusive ``flock`` (threads and processes)."""
        ensure_dir(self.path.parent)
        try:
            fd = open_regular(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except FileNotFoundError as exc:  # pragma: no cover - O_CREAT
            raise StateError(f"cannot open ledger spool {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # releases the lock


def _read_lines(fd: int, path: Path) -> tuple[list[bytes], bool]:
    """The spool's whole lines, and whether a torn last line (no newline) was skipped."""
    size = os.fstat(fd).st_size
    if size > MAX_SPOOL_BYTES:
        raise StateError(
            f"ledger spool {path} holds {size} bytes (> {MAX_SPOOL_BYTES}): not a spool this "
            "writer made; move it aside and flush its lines by hand"
        )
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    data = b"".join(chunks)
    parts = data.split(b"\n")
    torn = parts[-1] != b""  # the crash happened mid-append: that call never returned
    return [p for p in parts[:-1] if p.strip()], torn


def _runs(
    lines: list[bytes], reject: Callable[[bytes, str], None]
) -> Iterator[tuple[Kind, list[tuple[bytes, Value]]]]:
    """Consecutive decoded values of one kind, in file order; undecodable lines rejected."""
    kind: Kind = "trade"
    run: list[tuple[bytes, Value]] = []
    for raw in lines:
        try:
            record = json.loads(raw)
            this: Kind = record["kind"]
            value = _DECODE[this](record["row"])
        except (ValueError, KeyError, TypeError, LedgerError) as exc:
            reject(raw, f"undecodable spool line: {exc}")
            continue
        if this != kind and run:
            yield kind, run
            run = []
        kind = this
        run.append((raw, value))
    if run:
        yield kind, run
