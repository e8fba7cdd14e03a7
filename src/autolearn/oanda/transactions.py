"""OANDA v20 transactions -> closed and partial ``Trade`` rows, resumably.

Functional core: ``map_transactions`` and ``missing_openings`` turn raw transaction JSON into
``Trade`` values. They are pure (no I/O, no clock) and total: any junk lands in ``rejected``
with its id and a reason, never in an exception. Imperative shell: ``ingest_transactions``
pages through ``transactions/sinceid`` with a ``V20Client``, fetches unknown openings, upserts
into a ``TradeSink`` and moves the cursor. It does not decide anything about the trades.

Mapping (one row per closed or reduced trade in an ``ORDER_FILL``, like QuantRabbit's
position_manager, original-system.md 2.1):

- ``tradeOpened`` remembers the opening (price, time, signed units, client extensions);
- each ``tradesClosed[]`` entry is a ``CLOSED`` row and ``tradeReduced`` a ``PARTIAL`` row,
  keyed ``(broker_trade_id=tradeID, close_tx_id=fill id)``; ``units`` is the size closed;
- ``pl_pips = (close - entry) * side / pip_size(instrument)`` in exact decimals;
- ``pl_account = realizedPL`` only; financing is left out on purpose (see ``_close_row``);
- ``broker_close_reason`` = the fill's ``reason`` (``UNKNOWN`` when absent);
- pocket, strategy and config version come from the opening's client extensions
  (``autolearn.oanda.tags`` documents the convention and the QuantRabbit fallbacks).

Resume and duplicates: cursor ``oanda:<account>:last_tx`` holds the last transaction id fully
processed, and ``oanda:<account>:open_trades`` the openings seen but not yet fully closed (a
small JSON object, pruned on full close). Each page is sorted by id, de-duplicated and cut at
the cursor, so re-delivery, overlapping pages and out-of-order pages never duplicate a row
(and the sink's upsert is idempotent anyway) and never skip one. A close whose opening
predates our first transaction is completed with ``GET trades/{id}``.

A malformed transaction (missing field, bad number, naive time, unknown opening...) is
reported with its id and reason and the cursor still moves past it. That is deliberate: OANDA
never rewrites a transaction, so a poison transaction would fail identically on every run and
wedge ingest forever, silently starving every learning loop of newer trades. Reporting it (in
the report, the log and the exit summary) lets a human repair that one trade by hand while
the rest keeps flowing; learning from slightly fewer trades is safe, learning from none is not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

from autolearn.adapters.logs import get_logger
from autolearn.core.model import Trade, TradeState, pip_size
from autolearn.core.plausibility import TradeLimits, implausible_trade
from autolearn.errors import BrokerRejected, LedgerError
from autolearn.ledger._base import UpsertCounts
from autolearn.oanda._fields import (
    Malformed,
    int_id,
    norm_id,
    read_decimal,
    read_id,
    read_instrument,
    read_price,
    read_tags,
    read_time,
    read_units,
    show,
)
from autolearn.oanda.client import V20Client
from autolearn.oanda.openings import Opening, dump_openings, load_openings, opening_from_trade

__all__ = [
    "SOURCE",
    "MappedTransactions",
    "OandaIngestReport",
    "RejectedTransaction",
    "TradeSink",
    "ingest_transactions",
    "last_tx_cursor",
    "map_transactions",
    "missing_openings",
    "open_trades_cursor",
]

SOURCE = "oanda"
_CURSOR_RE = re.compile(r"^[0-9]{1,19}$")
_FULL_PAGE = 1000  # OANDA's sinceid cap: a shorter page holds everything up to lastTransactionID

_log = get_logger(__name__)  # structlog loads on the first line logged


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectedTransaction:
    """A transaction that could not be mapped, with the reason (field path and value)."""

    tx_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MappedTransactions:
    """The pure result of mapping one page.

    ``openings`` is a new dict (the input is never mutated). ``last_id`` is the highest valid
    transaction id above ``after_id`` in the page, mapped or rejected: where the cursor goes.
    """

    trades: tuple[Trade, ...]
    openings: dict[str, Opening]
    rejected: tuple[RejectedTransaction, ...]
    last_id: str | None
    processed: int
    duplicates: int
    ignored: int


# -- functional core ---------------------------------------------------------------------------


def map_transactions(
    raw: Sequence[object],
    openings: Mapping[str, Opening],
    *,
    after_id: str = "0",
    lookup_failures: Mapping[str, str] | None = None,
) -> MappedTransactions:
    """Map one page of raw transactions (any order, any junk) to trades; never raises.

    Args:
        raw: transactions as delivered; ids <= ``after_id`` are already processed (dropped).
        openings: openings known before this page, by trade id.
        after_id: the cursor (last transaction id fully processed).
        lookup_failures: trade id -> why ``GET trades/{id}`` could not supply the opening,
            quoted in the reason of a close that still lacks it.
    """
    ordered, rejected, duplicates = _order(raw, int_id(after_id))
    known = dict(openings)
    trades: list[Trade] = []
    ignored = 0
    for _, tx_id, tx in ordered:
        kind = tx.get("type")
        if not isinstance(kind, str) or not kind:
            rejected.append(RejectedTransaction(tx_id=tx_id, reason=f"type: {show(kind)}"))
            continue
        if kind != "ORDER_FILL":
            ignored += 1  # orders, cancels, financing...: nothing closed here
            continue
        try:
            rows, known = _map_fill(tx_id, tx, known, lookup_failures or {})
        except ValueError as exc:  # Malformed and the Trade value's own checks
            rejected.append(RejectedTransaction(tx_id=tx_id, reason=str(exc)))
            continue
        except ArithmeticError as exc:  # decimal Overflow & co. on absurd magnitudes
            reason = f"number out of range ({type(exc).__name__})"
            rejected.append(RejectedTransaction(tx_id=tx_id, reason=reason))
            continue
        trades.extend(rows)
    return MappedTransactions(
        trades=tuple(trades),
        openings=known,
        rejected=tuple(rejected),
        last_id=ordered[-1][1] if ordered else None,
        processed=len(ordered),
        duplicates=duplicates,
        ignored=ignored,
    )


def missing_openings(
    raw: Sequence[object], openings: Mapping[str, Opening], *, after_id: str = "0"
) -> list[str]:
    """Trade ids closed or reduced in this page whose opening is neither known nor in the page."""
    ordered, _, _ = _order(raw, int_id(after_id))
    seen = set(openings)
    missing: list[str] = []
    for _, _, tx in ordered:
        if tx.get("type") != "ORDER_FILL":
            continue
        for reduce in _reduces(tx):
            trade_id = norm_id(reduce.get("tradeID"))
            if trade_id and trade_id not in seen and trade_id not in missing:
                missing.append(trade_id)
        opened = tx.get("tradeOpened")
        if isinstance(opened, Mapping):
            trade_id = norm_id(opened.get("tradeID"))
            if trade_id:
                seen.add(trade_id)
    return missing


def _order(
    raw: Sequence[object], after: int
) -> tuple[list[tuple[int, str, Mapping[str, object]]], list[RejectedTransaction], int]:
    """Valid transactions above ``after``, sorted by id, first copy of each id kept."""
    rejected: list[RejectedTransaction] = []
    by_id: dict[int, Mapping[str, object]] = {}
    duplicates = 0
    for position, tx in enumerate(raw):
        if not isinstance(tx, Mapping):
            rejected.append(
                RejectedTransaction(
                    tx_id=f"#{position}", reason=f"not an object: {type(tx).__name__}"
                )
            )
            continue
        tx_id = norm_id(tx.get("id"))
        if tx_id is None:
            rejected.append(
                RejectedTransaction(
                    tx_id=f"#{position}", reason=f"id is not a TransactionID: {show(tx.get('id'))}"
                )
            )
            continue
        number = int(tx_id)
        if number <= after or number in by_id:
            duplicates += 1  # already processed in an earlier page or run, or repeated
            continue
        by_id[number] = tx
    ordered = [(number, str(number), by_id[number]) for number in sorted(by_id)]
    return ordered, rejected, duplicates


def _map_fill(
    tx_id: str,
    tx: Mapping[str, object],
    openings: dict[str, Opening],
    lookup_failures: Mapping[str, str],
) -> tuple[list[Trade], dict[str, Opening]]:
    """Rows of one ORDER_FILL and the openings after it; all or nothing per transaction."""
    instrument = read_instrument(tx, "")
    at = read_time(tx, "time", "")
    reason = tx.get("reason")
    close_reason = reason if isinstance(reason, str) and reason else "UNKNOWN"
    known = dict(openings)
    rows: list[Trade] = []
    closed = tx.get("tradesClosed", [])
    if not isinstance(closed, list):
        raise Malformed(f"tradesClosed: expected a list, got {show(closed)}")
    entries = [(f"tradesClosed[{i}]", c, TradeState.CLOSED) for i, c in enumerate(closed)]
    if tx.get("tradeReduced") is not None:
        entries.append(("tradeReduced", tx["tradeReduced"], TradeState.PARTIAL))
    for where, entry, state in entries:
        if not isinstance(entry, Mapping):
            raise Malformed(f"{where}: expected an object, got {show(entry)}")
        trade_id = read_id(entry, "tradeID", where)
        opening = known.get(trade_id)
        if opening is None:
            why = lookup_failures.get(trade_id, "not fetched")
            raise Malformed(f"{where}.tradeID {trade_id}: opening unknown ({why})")
        if opening.instrument != instrument:
            raise Malformed(
                f"{where}.tradeID {trade_id}: instrument {instrument} differs from the "
                f"opening's {opening.instrument}"
            )
        rows.append(_close_row(tx_id, at, close_reason, entry, where, opening, state))
        if state is TradeState.CLOSED:
            known.pop(trade_id)  # fully closed: nothing more will refer to it
    opened = tx.get("tradeOpened")
    if opened is not None:
        if not isinstance(opened, Mapping):
            raise Malformed(f"tradeOpened: expected an object, got {show(opened)}")
        trade_id = read_id(opened, "tradeID", "tradeOpened")
        known[trade_id] = Opening(
            trade_id=trade_id,
            instrument=instrument,
            price=read_price(opened, "price", "tradeOpened"),
            opened_at=at,
            units=read_units(opened, "units", "tradeOpened"),
            tags=read_tags(opened.get("clientExtensions"), tx.get("clientOrderID")),
        )
    return rows, known


def _close_row(
    tx_id: str,
    at: datetime,
    close_reason: str,
    entry: Mapping[str, object],
    where: str,
    opening: Opening,
    state: TradeState,
) -> Trade:
    close_price = read_price(entry, "price", where)
    pips = (
        (close_price - opening.price)
        * opening.side.sign
        / Decimal(str(pip_size(opening.instrument)))
    )
    # pl_account is realizedPL alone. OANDA's realizedPL excludes financing; we keep it that way
    # because (1) pl_pips is price-only too, so the two agree on sign and the guards judge the
    # strategy's exits, not overnight carry; (2) QuantRabbit's trades.db `realized_pl` is the
    # same field, so a trade imported from there and from OANDA lands identical (no flip-flop
    # "updated" rows); (3) v20 books most financing in DAILY_FINANCING transactions that are
    # not per-trade anyway. The financing of the close is validated but not stored (the
    # ledger has no column for it).
    read_decimal(entry, "financing", where, required=False)
    return Trade(
        broker_trade_id=opening.trade_id,
        close_tx_id=tx_id,
        instrument=opening.instrument,
        pocket=opening.tags.pocket,
        strategy=opening.tags.strategy,
        side=opening.side,
        units=abs(read_units(entry, "units", where)),
        entry_price=float(opening.price),
        close_price=float(close_price),
        entry_at=opening.opened_at,
        close_at=at,
        pl_pips=float(pips),
        pl_account=float(read_decimal(entry, "realizedPL", where)),
        broker_close_reason=close_reason,
        config_version=opening.tags.config_version,
        client_order_id=opening.tags.client_order_id,
        state=state,
        source=SOURCE,
    )


def _reduces(tx: Mapping[str, object]) -> list[Mapping[str, object]]:
    closed = tx.get("tradesClosed")
    entries = [c for c in closed if isinstance(c, Mapping)] if isinstance(closed, list) else []
    reduced = tx.get("tradeReduced")
    if isinstance(reduced, Mapping):
        entries.append(reduced)
    return entries


# -- imperative shell -------------------------------------------------------------------------


class TradeSink(Protocol):
    """The slice of ``autolearn.ledger._base.Ledger`` the importer writes to.

    ``upsert_trades`` must be idempotent by ``(broker_trade_id, close_tx_id)``; cursors are
    small named strings that survive restarts.
    """

    def upsert_trades(self, trades: Iterable[Trade]) -> UpsertCounts: ...

    def get_cursor(self, name: str) -> str | None: ...

    def set_cursor(self, name: str, value: str) -> None: ...


def last_tx_cursor(account_id: str) -> str:
    """Name of the cursor holding the last transaction id fully processed."""
    return f"oanda:{account_id}:last_tx"


def open_trades_cursor(account_id: str) -> str:
    """Name of the cursor holding openings not yet fully closed (JSON)."""
    return f"oanda:{account_id}:open_trades"


@dataclass(frozen=True, slots=True, kw_only=True)
class OandaIngestReport:
    """What one ``ingest_transactions`` run did."""

    account_id: str
    started_after_id: str
    last_transaction_id: str
    broker_last_transaction_id: str
    fetched: int
    duplicates: int
    ignored: int
    trades: UpsertCounts
    rejected: tuple[RejectedTransaction, ...]
    pages: int
    retries: int
    openings_fetched: int
    notes: tuple[str, ...]
    finished_at: datetime

    @property
    def trades_written(self) -> int:
        return self.trades.inserted + self.trades.updated + self.trades.unchanged

    @property
    def is_caught_up(self) -> bool:
        return int_id(self.last_transaction_id) >= int_id(self.broker_last_transaction_id)

    def format(self) -> str:
        """A short human summary (one line per fact, then one per rejected transaction)."""
        lines = [
            f"OANDA account {self.account_id}: transactions {self.started_after_id} -> "
            f"{self.last_transaction_id} (broker at {self.broker_last_transaction_id}"
            f"{'' if self.is_caught_up else ', more to fetch'})",
            f"  fetched {self.fetched} in {self.pages} page(s), {self.retries} retr"
            f"{'y' if self.retries == 1 else 'ies'}, {self.duplicates} duplicate(s) skipped, "
            f"{self.ignored} non-fill ignored",
            f"  trades: {self.trades.inserted} inserted, {self.trades.updated} updated, "
            f"{self.trades.unchanged} unchanged; {self.openings_fetched} opening(s) fetched",
            f"  rejected: {len(self.rejected)}",
        ]
        lines += [f"    tx {r.tx_id}: {r.reason}" for r in self.rejected]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def ingest_transactions(
    client: V20Client,
    account_id: str,
    sink: TradeSink,
    *,
    now: datetime | None = None,
    initial_since_id: str = "0",
    max_pages: int | None = None,
    limits: TradeLimits | None = None,
) -> OandaIngestReport:
    """Import every ORDER_FILL after the cursor into ``sink``; resumable page by page.

    Each page is committed (trades, then openings, then the cursor) before the next is
    fetched, so a crash or ``BrokerUnavailable`` mid-run loses nothing and the next run
    resumes at the last committed page. Raises ``BrokerUnavailable``/``BrokerRejected`` from
    the client, ``LedgerError`` for an unreadable cursor; ``now`` stamps the report and is
    what "in the future" is judged against (a fill outside ``limits`` is rejected, reported
    and passed by the cursor like any malformed transaction).
    """
    wall_now = now if now is not None else datetime.now(UTC)
    limits = limits or TradeLimits()
    cursor_name = last_tx_cursor(account_id)
    start = sink.get_cursor(cursor_name) or initial_since_id
    if not _CURSOR_RE.match(start):
        raise LedgerError(
            f"cursor {cursor_name} holds {start!r}, not a transaction id: set it to the last "
            "imported transaction id (or delete it to re-import from the start)"
        )
    openings, notes = load_openings(sink.get_cursor(open_trades_cursor(account_id)))
    retries_before = client.retries
    since, broker_last = start, start
    counts = UpsertCounts()
    rejected: list[RejectedTransaction] = []
    fetched = duplicates = ignored = pages = fetched_openings = 0
    while max_pages is None or pages < max_pages:
        page = client.transactions_since(account_id, since)
        pages += 1
        fetched += len(page.transactions)
        broker_last = page.last_transaction_id
        found, failures = _fetch_openings(client, account_id, page.transactions, openings, since)
        fetched_openings += len(found)
        result = map_transactions(
            page.transactions, {**openings, **found}, after_id=since, lookup_failures=failures
        )
        plausible, implausible = _split_plausible(result.trades, wall_now, limits)
        result = replace(result, rejected=(*result.rejected, *implausible))
        # Commit order: rows, then openings, then the cursor. A crash in between replays the
        # page next run, which is harmless (idempotent upsert, openings re-derived/fetched).
        counts += sink.upsert_trades(plausible)
        sink.set_cursor(open_trades_cursor(account_id), dump_openings(result.openings))
        openings = result.openings
        duplicates += result.duplicates
        ignored += result.ignored
        rejected += result.rejected
        for item in result.rejected:
            _log.warning("oanda_transaction_rejected", tx_id=item.tx_id, reason=item.reason)
        if result.last_id is None:
            if _only_unusable(page.transactions, result, since, broker_last):
                # Nothing usable past the cursor, only reported rows whose ids are malformed,
                # and the page was complete: everything up to the broker's last id has been
                # seen. Move past it, or every rerun would re-fetch the same poison rows.
                sink.set_cursor(cursor_name, broker_last)
                since = broker_last
            break  # nothing new in this page: caught up (or the server is not advancing)
        sink.set_cursor(cursor_name, result.last_id)
        since = result.last_id
        if int_id(since) >= int_id(broker_last):
            break
    report = OandaIngestReport(
        account_id=account_id,
        started_after_id=start,
        last_transaction_id=since,
        broker_last_transaction_id=broker_last,
        fetched=fetched,
        duplicates=duplicates,
        ignored=ignored,
        trades=counts,
        rejected=tuple(rejected),
        pages=pages,
        retries=client.retries - retries_before,
        openings_fetched=fetched_openings,
        notes=tuple(notes),
        finished_at=wall_now,
    )
    _log.info(
        "oanda_ingest_finished",
        account_id=account_id,
        last_transaction_id=since,
        fetched=fetched,
        inserted=counts.inserted,
        updated=counts.updated,
        unchanged=counts.unchanged,
        rejected=len(rejected),
        pages=pages,
        retries=report.retries,
    )
    return report


def _only_unusable(
    page: Sequence[object], result: MappedTransactions, since: str, broker_last: str
) -> bool:
    """True when a complete page held only rejected rows (no valid id) past ``since``."""
    return (
        bool(result.rejected) and 0 < len(page) < _FULL_PAGE and int_id(broker_last) > int_id(since)
    )


def _split_plausible(
    trades: Sequence[Trade], now: datetime, limits: TradeLimits
) -> tuple[list[Trade], list[RejectedTransaction]]:
    kept: list[Trade] = []
    refused: list[RejectedTransaction] = []
    for trade in trades:
        found = implausible_trade(trade, now, limits)
        if found:
            reason = "implausible: " + "; ".join(f.describe() for f in found)
            refused.append(RejectedTransaction(tx_id=trade.close_tx_id, reason=reason))
        else:
            kept.append(trade)
    return kept, refused


def _fetch_openings(
    client: V20Client,
    account_id: str,
    raw: Sequence[object],
    openings: Mapping[str, Opening],
    since: str,
) -> tuple[dict[str, Opening], dict[str, str]]:
    """Openings of trades opened before our first transaction, via ``GET trades/{id}``.

    A trade OANDA does not know (404) or returns malformed becomes a reason quoted by the
    rejected close; a transient failure propagates (``BrokerUnavailable``: skip the cycle).
    """
    found: dict[str, Opening] = {}
    failures: dict[str, str] = {}
    for trade_id in missing_openings(raw, openings, after_id=since):
        try:
            opening = opening_from_trade(client.trade(account_id, trade_id))
        except (BrokerRejected, ValueError, ArithmeticError) as exc:
            failures[trade_id] = f"GET trades/{trade_id}: {exc}"
            continue
        if opening.trade_id != trade_id:
            failures[trade_id] = f"GET trades/{trade_id} answered trade {opening.trade_id}"
            continue
        found[trade_id] = opening
    return found, failures
