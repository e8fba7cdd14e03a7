"""Repair: fetch the trades reconcile found missing or different from the broker, by id.

``ingest --oanda`` resumes from its cursor, so a trade behind the cursor is never fetched again;
this fetches each trade named by a ``missing`` or ``differs`` finding directly:

1. ``GET trades/{id}``: the v20 Trade object (its ``closingTransactionIDs``);
2. ``GET transactions/{id}`` for the opening fill (a v20 TradeID *is* the id of the
   ``ORDER_FILL`` that opened the trade) and for each closing transaction;
3. keeps only this trade's part of each fill (a fill may open or close other trades too) and maps
   them with the importer's own ``map_transactions``, so a repaired row is exactly the row
   ``ingest --oanda`` writes; when the opening fill cannot be read, the opening comes from the
   Trade object (``opening_from_trade``, as the importer does for old openings);
4. keeps the bot's own labels of a row the ledger already holds under the same key
   (``pocket``, ``strategy``, ``config_version``, ``client_order_id``, ``exit_reason``, the regime
   labels: reconcile does not check them and the broker does not know them);
5. upserts the rows (idempotent by ``(broker_trade_id, close_tx_id)``: a second repair writes
   nothing new).

It never deletes: an ``extra`` trade, or a row whose close transaction the broker does not list,
stays for a human to remove, and the re-check after the repair still reports it.

``plan_repair`` and ``trade_rows`` are pure; ``repair_trades`` is the shell (broker and ledger).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from autolearn.core.model import Trade
from autolearn.errors import BrokerRejected, InputError
from autolearn.ledger._base import UpsertCounts
from autolearn.oanda._fields import norm_id
from autolearn.oanda.openings import opening_from_trade
from autolearn.oanda.transactions import map_transactions
from autolearn.reconcile.compare import Finding, FindingKind

__all__ = ["RepairReport", "TradeFetcher", "plan_repair", "repair_trades", "trade_rows"]

_REPAIRABLE = (FindingKind.MISSING, FindingKind.DIFFERS)
_BOT_LABELS = (
    "pocket",
    "strategy",
    "config_version",
    "client_order_id",
    "exit_reason",
    "regime_macro",
    "regime_micro",
)


class TradeFetcher(Protocol):
    """The slice of ``V20Client`` a repair reads."""

    def trade(self, account_id: str, trade_specifier: str) -> dict[str, object]: ...

    def transaction(self, account_id: str, transaction_id: str) -> dict[str, object]: ...


class TradeUpserter(Protocol):
    """The slice of the ledger a repair writes (idempotent by key)."""

    def upsert_trades(self, trades: Iterable[Trade]) -> UpsertCounts: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RepairReport:
    """What one repair fetched and wrote, and what it could not repair (with why)."""

    requested: tuple[str, ...]
    repaired: tuple[str, ...]
    rows: UpsertCounts
    failed: tuple[tuple[str, str], ...]  # (trade id, why)
    requests: int

    def to_json(self) -> dict[str, Any]:
        return {
            "requested": list(self.requested),
            "repaired": list(self.repaired),
            "rows": {
                "inserted": self.rows.inserted,
                "updated": self.rows.updated,
                "unchanged": self.rows.unchanged,
            },
            "failed": [{"broker_trade_id": t, "why": why} for t, why in self.failed],
            "requests": self.requests,
        }


def plan_repair(findings: Sequence[Finding], limit: int) -> list[str]:
    """Trade ids to fetch: every missing or differing OANDA trade id, once, at most ``limit``."""
    ids: list[str] = []
    for f in findings:
        trade_id = f.broker_trade_id
        if f.kind in _REPAIRABLE and norm_id(trade_id) == trade_id and trade_id not in ids:
            ids.append(trade_id)
    return ids[:limit]


def _own_part(tx: Mapping[str, object], trade_id: str) -> dict[str, object]:
    """The fill with only what concerns ``trade_id`` (its opening, its closes)."""
    out = {k: v for k, v in tx.items() if k not in ("tradeOpened", "tradesClosed", "tradeReduced")}

    def mine(entry: object) -> bool:
        return isinstance(entry, Mapping) and norm_id(entry.get("tradeID")) == trade_id

    opened, reduced, closed = tx.get("tradeOpened"), tx.get("tradeReduced"), tx.get("tradesClosed")
    if mine(opened):
        out["tradeOpened"] = opened
    if mine(reduced):
        out["tradeReduced"] = reduced
    if isinstance(closed, list):
        out["tradesClosed"] = [c for c in closed if mine(c)]
    elif closed is not None:
        out["tradesClosed"] = closed  # passed on as it is: the mapper rejects it with its reason
    return out


def trade_rows(
    trade_id: str,
    trade: Mapping[str, object],
    fills: Sequence[Mapping[str, object]],
    existing: Mapping[tuple[str, str], Trade],
) -> tuple[list[Trade], list[str]]:
    """The ledger rows of one broker trade from its Trade object and fills; problems as text.

    ``fills`` are the opening fill (when it could be read) and the closing transactions;
    ``existing`` are ledger rows by key, whose bot labels are kept.
    """
    own = [_own_part(tx, trade_id) for tx in fills]
    has_opening = any("tradeOpened" in tx for tx in own)
    openings = {}
    problems: list[str] = []
    if not has_opening:
        try:
            opening = opening_from_trade(trade)
        except (ValueError, ArithmeticError) as exc:
            return [], [f"trade object: {exc}"]
        openings[trade_id] = opening
    mapped = map_transactions(own, openings)
    problems += [f"transaction {r.tx_id}: {r.reason}" for r in mapped.rejected]
    rows = [t for t in mapped.trades if t.broker_trade_id == trade_id]
    out = []
    for row in rows:
        before = existing.get((row.broker_trade_id, row.close_tx_id))
        if before is not None:
            row = dataclasses.replace(row, **{k: getattr(before, k) for k in _BOT_LABELS})
        out.append(row)
    return out, problems


def repair_trades(
    broker: TradeFetcher,
    ledger: TradeUpserter,
    account_id: str,
    trade_ids: Sequence[str],
    existing: Iterable[Trade],
) -> RepairReport:
    """Fetch each trade and its fills by id and upsert its rows; a 404 or bad object is noted.

    Raises:
        BrokerUnavailable: the broker could not be reached (rows already written stay: the
            upsert is idempotent, a later repair completes the rest).
    """
    by_key = {(t.broker_trade_id, t.close_tx_id): t for t in existing}
    counts = UpsertCounts()
    repaired: list[str] = []
    failed: list[tuple[str, str]] = []
    requests = 0
    for trade_id in trade_ids:
        try:
            trade = broker.trade(account_id, trade_id)
            requests += 1
            closing = trade.get("closingTransactionIDs")
            ids = [norm_id(i) for i in closing] if isinstance(closing, list) else []
            fills = []
            for tx_id in [trade_id, *(i for i in ids if i is not None)]:
                requests += 1
                try:
                    fills.append(broker.transaction(account_id, tx_id))
                except BrokerRejected:
                    if tx_id != trade_id:
                        raise  # a closing transaction the broker lists must exist
        except BrokerRejected as exc:
            failed.append((trade_id, str(exc)))
            continue
        rows, problems = trade_rows(trade_id, trade, fills, by_key)
        if problems or not rows:
            failed.append((trade_id, "; ".join(problems) or "the broker shows no close yet"))
        if rows:
            try:
                counts += ledger.upsert_trades(rows)
            except InputError as exc:  # the ledger refused a row (its plausibility limits)
                failed.append((trade_id, f"ledger refused: {exc}"))
                continue
            repaired.append(trade_id)
    return RepairReport(
        requested=tuple(trade_ids),
        repaired=tuple(repaired),
        rows=counts,
        failed=tuple(failed),
        requests=requests,
    )
