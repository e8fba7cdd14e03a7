"""Follow a ``trades.db`` the bot keeps writing: import only what is new since the last run.

``autolearn ingest --follow logs/trades.db`` (a timer every minute) reads the bot's own SQLite
file read-only while its position manager writes it (WAL, ``INSERT OR REPLACE``), converts rows
exactly as ``importers.quantrabbit`` does, upserts them into the ledger, and then advances a
watermark stored in ``<state_dir>/mechanisms/follow.json`` (one entry per resolved DB path).

The watermark is the largest ``(close time, ticket_id, transaction_id)`` imported, never a row
id (ids regress after a restore or compaction, and old DBs have NULL ``id``). Every run reads:

- the rows whose ``close_time`` text is on or after the watermark's date minus ``lookback``
  (an index range: the date prefix is the same in every timestamp format the original wrote,
  ``T`` or space, with or without fraction), parsed and compared in Python, so mixed formats
  order correctly; keys already imported inside that window (kept in the state) are skipped;
- and every row SQLite's ``rowid`` says was inserted since the last run (``rowid >`` the
  largest seen): a row written late, whose close time lies before the watermark (it went "back
  in time"), or re-inserted by ``INSERT OR REPLACE`` is still imported. If the largest rowid
  went down (a restored or vacuumed file) the whole table is read once.

Nothing is skipped: the watermark moves only after the ledger committed, only over accepted
rows. A row rejected for its content (a naive timestamp, a zero ``units``) is reported with its
reason in that run's report and read again only while its close time is inside the window or
once the bot rewrites it (``INSERT OR REPLACE`` gives it a new rowid); a row dated in the future
is rejected until its time has come, then imported. Nothing is imported twice: keys inside the
window are remembered and the ledger upsert is idempotent (a re-read row is ``unchanged``).

Refused, with the watermark untouched:

- a database locked by its writer beyond ``busy_timeout_s`` -> ``LedgerUnavailable`` (exit 75,
  the timer retries);
- a half-written or corrupt file, a missing table or column -> ``InputError`` (exit 65);
- a row of an unknown schema version (``version`` not v1/v2/v3) -> ``InputError`` naming it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from autolearn.core.model import Trade
from autolearn.core.plausibility import TradeLimits
from autolearn.core.timestamps import TimestampError, format_utc, parse_utc, to_epoch_us
from autolearn.errors import InputError, LedgerUnavailable, StateError
from autolearn.importers.quantrabbit import (  # the same row reader, over a subset of rows
    _DB_ENTRY_COLUMNS,
    _V3_MARKERS,
    _Check,
    _decode_or_keep_bytes,
    _Layout,
    _require_columns,
    _RowRejected,
    _to_trade,
)
from autolearn.importers.report import ImportReport, ReportBuilder

if TYPE_CHECKING:
    from autolearn.adapters.state import StateStore
    from autolearn.ledger._base import Ledger, UpsertCounts

__all__ = [
    "KNOWN_VERSIONS",
    "FollowResult",
    "Watermark",
    "follow_trades_db",
    "read_watermark",
    "run_follow",
    "select_new",
]

KNOWN_VERSIONS = frozenset({"", "v1", "v2", "v3"})
FOLLOW_MECHANISM = "follow"


@dataclass(frozen=True, slots=True, kw_only=True)
class Watermark:
    """Where the last run stopped, for one followed file."""

    close_at: datetime | None = None
    ticket: str = ""
    tx: str = ""
    max_rowid: int = 0
    # (ticket_id, transaction_id) -> close time (epoch us) of every row imported inside the
    # window a later run re-reads: what tells a re-read row from a new one with an old rowid
    recent: Mapping[tuple[str, str], int] = field(default_factory=dict)

    @property
    def key(self) -> tuple[datetime, str, str] | None:
        return None if self.close_at is None else (self.close_at, self.ticket, self.tx)

    def to_json(self) -> dict[str, Any]:
        return {
            "close_at": format_utc(self.close_at) if self.close_at else None,
            "ticket_id": self.ticket,
            "transaction_id": self.tx,
            "max_rowid": self.max_rowid,
            "recent": sorted([a, b, us] for (a, b), us in self.recent.items()),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], where: str) -> Watermark:
        try:
            close = doc.get("close_at")
            return cls(
                close_at=parse_utc(str(close)) if close else None,
                ticket=str(doc.get("ticket_id", "")),
                tx=str(doc.get("transaction_id", "")),
                max_rowid=int(doc.get("max_rowid", 0)),
                recent={(str(a), str(b)): int(us) for a, b, us in doc.get("recent", [])},
            )
        except (TypeError, ValueError, TimestampError) as exc:
            raise StateError(
                f"{where}: malformed follow watermark ({exc}); remove the entry to re-import "
                "(the ledger upsert is idempotent: nothing is duplicated)"
            ) from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class FollowResult:
    """One follow run: the import report, the new watermark and what happened."""

    report: ImportReport
    watermark: Watermark
    late: int = 0  # accepted rows that closed before the previous watermark
    already: int = 0  # rows read again inside the window, already imported
    notes: tuple[str, ...] = field(default_factory=tuple)


def _connect(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    if not path.is_file():
        raise InputError(f"{path}: no such file; pass the bot's logs/trades.db")
    try:
        conn = sqlite3.connect(
            f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, timeout=busy_timeout_s
        )
    except sqlite3.Error as exc:
        raise InputError(f"{path}: cannot open as SQLite: {exc}") from exc
    conn.text_factory = _decode_or_keep_bytes
    return conn


def _translate(path: Path, exc: sqlite3.Error, busy_timeout_s: float) -> Exception:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return LedgerUnavailable(
            f"{path}: locked by its writer for more than {busy_timeout_s:g} s ({text}); nothing "
            "imported, the watermark is unchanged; the next run retries"
        )
    return InputError(
        f"{path}: not a readable SQLite database ({text}): half-written, truncated or corrupt? "
        "Nothing imported, the watermark is unchanged"
    )


def _layout(conn: sqlite3.Connection, path: Path) -> _Layout:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "trades" not in tables:
        raise InputError(f"{path}: no 'trades' table (found: {sorted(tables)}); not a trades.db?")
    columns = frozenset(r[1] for r in conn.execute("PRAGMA table_info(trades)"))
    layout = _Layout(
        format_name=f"quantrabbit-sqlite-{'v3' if columns & _V3_MARKERS else 'v2'}",
        columns=columns,
        entry_columns=_DB_ENTRY_COLUMNS,
        default_instrument=None,
    )
    _require_columns(path, layout)
    return layout


def _rows(
    conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]
) -> Iterable[tuple[int, dict[str, Any]]]:
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description][1:]
    for r in cursor:
        yield int(r[0]), dict(zip(names, r[1:], strict=True))


def select_new(
    conn: sqlite3.Connection, mark: Watermark, lookback: timedelta
) -> tuple[dict[int, dict[str, Any]], int, str | None, int]:
    """(rows to consider by rowid, the table's max rowid, a note, rows already imported).

    Inside the window only the keys are read first (an index range plus the key columns); the
    full rows are fetched for the keys not imported yet and for every rowid above the last.
    """
    top = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM trades").fetchone()[0]
    if mark.close_at is None or top < mark.max_rowid:
        note = None
        if mark.close_at is not None:
            note = (
                f"the largest rowid went down ({mark.max_rowid} -> {top}: a restored or "
                "vacuumed file); the whole table was read (already imported rows unchanged)"
            )
        return dict(_rows(conn, "SELECT rowid, * FROM trades", ())), int(top), note, 0
    since = (mark.close_at - lookback).date().isoformat()
    keyed = [
        (int(r), t, x)
        for r, t, x in conn.execute(
            "SELECT rowid, ticket_id, transaction_id FROM trades WHERE close_time >= ?", (since,)
        )
        if r <= mark.max_rowid  # newer rowids are read whole below
    ]
    wanted = [
        r for r, t, x in keyed if _raw_key({"ticket_id": t, "transaction_id": x}) not in mark.recent
    ]
    rows: dict[int, dict[str, Any]] = {}
    for i in range(0, len(wanted), 500):
        chunk = tuple(wanted[i : i + 500])
        marks = ",".join("?" * len(chunk))  # only placeholders are joined into the SQL
        sql = f"SELECT rowid, * FROM trades WHERE rowid IN ({marks})"  # noqa: S608
        rows.update(_rows(conn, sql, chunk))
    rows.update(_rows(conn, "SELECT rowid, * FROM trades WHERE rowid > ?", (mark.max_rowid,)))
    return rows, int(top), None, len(keyed) - len(wanted)


def _check_versions(path: Path, rows: Mapping[int, Mapping[str, Any]]) -> None:
    unknown = sorted(
        (rowid, str(row.get("version")))
        for rowid, row in rows.items()
        if str(row.get("version") or "").strip() not in KNOWN_VERSIONS
    )
    if unknown:
        shown = ", ".join(f"rowid {r} version {v!r}" for r, v in unknown[:5])
        raise InputError(
            f"{path}: {len(unknown)} rows of an unknown schema version ({shown}); autolearn "
            f"reads {sorted(v for v in KNOWN_VERSIONS if v)}: upgrade autolearn. Nothing "
            "imported, the watermark is unchanged"
        )


def follow_trades_db(
    path: Path,
    mark: Watermark,
    *,
    now: datetime,
    lookback: timedelta = timedelta(days=1),
    busy_timeout_s: float = 5.0,
    limits: TradeLimits | None = None,
) -> tuple[FollowResult, list[Trade]]:
    """The new trades of ``path`` since ``mark`` and the watermark to store once they are in.

    The caller upserts the trades into the ledger and only then stores ``result.watermark``.
    """
    conn = _connect(path, busy_timeout_s)
    try:
        layout = _layout(conn, path)
        rows, top, note, skipped = select_new(conn, mark, lookback)
    except sqlite3.Error as exc:
        raise _translate(path, exc, busy_timeout_s) from exc
    finally:
        conn.close()
    _check_versions(path, rows)
    check = _Check.of(now, limits)
    builder = ReportBuilder(source=str(path), format_name=f"{layout.format_name}-follow")
    if note:
        builder.note(note)
    accepted: list[Trade] = []
    keys: set[tuple[str, str]] = set()
    already, late = skipped, 0
    considered = 0
    for rowid in sorted(rows):
        row = rows[rowid]
        fresh = rowid > mark.max_rowid
        if not fresh and _raw_key(row) in mark.recent:
            already += 1  # re-read inside the window: imported by an earlier run (not parsed)
            continue
        try:
            trade, _ = _to_trade(row, layout)
            check.plausible(trade, row, layout)
        except _RowRejected as rej:
            considered += 1
            builder.reject(row=rowid, column=rej.column, value=rej.value, reason=rej.reason)
            continue
        key = (trade.broker_trade_id, trade.close_tx_id)
        if key in mark.recent and not fresh:
            already += 1  # re-read inside the window: imported by an earlier run
            continue
        considered += 1
        if key in keys:
            builder.reject(
                row=rowid, column="ticket_id", value=key[0], reason="duplicate key in this read"
            )
            continue
        keys.add(key)
        order = (trade.close_at, trade.broker_trade_id, trade.close_tx_id)
        if mark.key is not None and order < mark.key and key not in mark.recent:
            late += 1
        builder.accept(trade)
        accepted.append(trade)
    if late:
        builder.note(f"{late} rows closed before the previous watermark (written late); imported")
    report = builder.build(rows_read=considered)
    return FollowResult(
        report=report,
        watermark=_advance(mark, accepted, top, lookback),
        late=late,
        already=already,
        notes=(note,) if note else (),
    ), accepted


def _raw_key(row: Mapping[str, Any]) -> tuple[str, str]:
    """``(ticket_id, transaction_id)`` as the converted trade will carry them (cheap pre-check)."""

    def text(value: object) -> str:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return "" if value is None else str(value).strip()

    return text(row.get("ticket_id")), text(row.get("transaction_id"))


def _advance(mark: Watermark, trades: list[Trade], top: int, lookback: timedelta) -> Watermark:
    best = mark.key
    for t in trades:
        order = (t.close_at, t.broker_trade_id, t.close_tx_id)
        if best is None or order > best:
            best = order
    if best is None:
        return Watermark(max_rowid=top)
    # The next run re-reads from the day of ``best - lookback`` (select_new): remember the keys
    # from there on, forget older ones.
    start_day = (best[0] - lookback).date()
    start_us = to_epoch_us(datetime.combine(start_day, datetime.min.time(), UTC))
    recent = {k: us for k, us in mark.recent.items() if us >= start_us}
    for t in trades:
        us = to_epoch_us(t.close_at)
        if us >= start_us:
            recent[(t.broker_trade_id, t.close_tx_id)] = us
    return Watermark(close_at=best[0], ticket=best[1], tx=best[2], max_rowid=top, recent=recent)


def read_watermark(store: StateStore, path: Path) -> Watermark:
    """The stored watermark of ``path`` (by resolved path; empty before the first run)."""
    doc = (store.read_mechanism(FOLLOW_MECHANISM).get("sources") or {}).get(str(path.resolve()))
    where = f"{store.mechanisms_dir / 'follow.json'} [{path.resolve()}]"
    return Watermark.from_json(doc, where) if isinstance(doc, dict) else Watermark()


def run_follow(
    path: Path,
    store: StateStore,
    ledger: Ledger,
    *,
    now: datetime,
    lookback: timedelta = timedelta(days=1),
    busy_timeout_s: float = 5.0,
    limits: TradeLimits | None = None,
) -> tuple[FollowResult, UpsertCounts]:
    """One follow run: read what is new, upsert it, then store the watermark (in that order).

    Under the ``follow`` lock, so two timer runs never interleave; a crash between the upsert
    and the watermark write only makes the next run read the same rows again (``unchanged``).
    """
    with store.lock(FOLLOW_MECHANISM, timeout_s=0):
        mark = read_watermark(store, path)
        result, trades = follow_trades_db(
            path, mark, now=now, lookback=lookback, busy_timeout_s=busy_timeout_s, limits=limits
        )
        counts = ledger.upsert_trades(trades)
        state = store.read_mechanism(FOLLOW_MECHANISM)
        sources = dict(state.get("sources") or {})
        sources[str(path.resolve())] = result.watermark.to_json() | {
            "at": format_utc(now),
            "imported": counts.inserted + counts.updated,
            "late": result.late,
            "rejected": result.report.rejected_count,
        }
        store.write_mechanism(FOLLOW_MECHANISM, {"sources": sources})
    return result, counts
