"""The reconcile run: fetch the broker's closed trades, read the ledger, compare, record.

Imperative shell around ``reconcile.compare``. Under the ``reconcile`` lock (a second run
records ``lock_busy`` and returns), it pages ``trades?state=CLOSED`` newest first through the
``V20Client`` until trades opened more than ``max_hold`` before the period (a trade is listed by
its opening id, so one opened before the period may still have closed inside it), looks up by id
any ledger trade the pages did not explain, reads the ledger rows of the period (reaching back
to the earliest opening, for earlier partial closes, and forward without limit: a close after now
is reported), and appends one run record (``decision`` ``clean`` or ``mismatch``, counts, the
first findings) to the history, and its state (``last_run_at``, ``last_clean_at``...) to
``mechanisms/reconcile.json``.

With ``repair`` (``autolearn reconcile --repair``), a run that finds missing or differing
trades fetches each of them by id (``reconcile.repair``: ``trades/{id}`` and its fills), upserts
the rows, then compares again; the one record holds the verdict of the re-check, the findings
before the repair (``repair.before``) and what was fetched and written (``repair``).

A broker that cannot be reached is recorded (``broker_unavailable``) and re-raised, so the CLI
exits 75 and the timer tries again; ``last_clean_at`` is kept, so ``status`` degrades only when
no clean run happened within its window.

Must not: read the clock (``now`` is a parameter) or the environment (the token is inside the
client), write the ledger except through a requested repair, write any knob, or let the
token reach a record.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from autolearn.adapters.state import StateStore
from autolearn.core.model import Trade
from autolearn.core.timestamps import format_utc
from autolearn.errors import BrokerRejected, BrokerUnavailable, ConfigError
from autolearn.mechanism import base_record, run_locked
from autolearn.oanda._fields import read_time
from autolearn.reconcile.compare import (
    BrokerTrade,
    Finding,
    Reconciliation,
    Tolerances,
    parse_broker_trades,
    reconcile,
    unmatched_ledger_ids,
)
from autolearn.reconcile.repair import TradeUpserter, plan_repair, repair_trades

__all__ = ["BrokerReader", "LedgerReader", "ReconcileConfig", "run_reconcile"]

MECHANISM = "reconcile"


class BrokerReader(Protocol):
    """The slice of ``V20Client`` reconcile reads."""

    def iter_closed_trades(
        self, account_id: str, *, count: int = 500, before_id: str | None = None
    ) -> Iterator[dict[str, object]]: ...

    def trade(self, account_id: str, trade_specifier: str) -> dict[str, object]: ...

    def transaction(self, account_id: str, transaction_id: str) -> dict[str, object]: ...


class LedgerReader(Protocol):
    """The slice of ``SqlLedger`` reconcile reads."""

    def trades(
        self,
        *,
        closed_since: datetime | None = None,
        closed_until: datetime | None = None,
        pocket: str | None = None,
        strategy: str | None = None,
        instrument: str | None = None,
    ) -> list[Trade]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileConfig:
    """What one run compares and how much of it the record keeps."""

    period: timedelta = timedelta(days=7)
    max_hold: timedelta = timedelta(days=30)  # how far before the period openings are paged
    instruments: frozenset[str] | None = None  # None: those the broker traded in the period
    tolerances: Tolerances = field(default_factory=Tolerances)
    recorded_findings: int = 20  # the record keeps the first N (the count is always complete)
    max_lookups: int = 200  # ledger trades looked up one by one, at most
    max_repairs: int = 200  # trades a repair fetches by id, at most (the rest: next run)

    def __post_init__(self) -> None:
        if self.period <= timedelta(0) or self.max_hold < timedelta(0):
            raise ConfigError(
                f"reconcile: period must be > 0 and max_hold >= 0, got {self.period} and "
                f"{self.max_hold}"
            )


def run_reconcile(
    *,
    store: StateStore,
    broker: BrokerReader,
    ledger: LedgerReader,
    account_id: str,
    config: ReconcileConfig,
    now: datetime,
    run_id: str | None = None,
    repair: TradeUpserter | None = None,
) -> dict[str, Any]:
    """One reconcile run; returns its record (already appended to the history).

    ``repair`` is the ledger to write repaired rows to (``--repair``); ``None`` only compares.

    Raises:
        BrokerUnavailable: the broker could not be reached (recorded first).
        BrokerRejected: the broker refused (bad token or account); nothing recorded.
    """
    base = base_record(MECHANISM, now, shadow=False, run_id=run_id)
    base["account"] = account_id
    return run_locked(
        store, base, lambda: _locked(store, broker, ledger, account_id, config, now, base, repair)
    )


def _locked(
    store: StateStore,
    broker: BrokerReader,
    ledger: LedgerReader,
    account_id: str,
    config: ReconcileConfig,
    now: datetime,
    base: dict[str, Any],
    repair: TradeUpserter | None,
) -> dict[str, Any]:
    since = now - config.period
    state = store.read_mechanism(MECHANISM)
    repaired: dict[str, Any] | None = None
    try:
        result, lookups, rows = _compare(broker, ledger, account_id, config, since, now)
        ids = plan_repair(result.findings, config.max_repairs) if repair is not None else []
        if repair is not None and ids:
            report = repair_trades(broker, repair, account_id, ids, rows)
            before = result
            result, lookups, _ = _compare(broker, ledger, account_id, config, since, now)
            repaired = report.to_json() | {
                "before": {
                    "findings_total": len(before.findings),
                    "counts": before.counts(),
                    "findings": [f.to_json() for f in before.findings[: config.recorded_findings]],
                },
            }
    except BrokerUnavailable as exc:
        record = base | {
            "decision": "broker_unavailable",
            "reasons": [f"broker_unavailable: {exc}"],
            "applied": False,
        }
        store.record(record)
        store.write_mechanism(
            MECHANISM,
            state | {"last_attempt_at": format_utc(now), "last_attempt": "broker_unavailable"},
        )
        raise
    counts = result.counts()
    decision = "clean" if result.clean else "mismatch"
    reasons = [f"{k}:{n}" for k, n in counts.items() if n] or ["clean"]
    if repaired is not None:
        reasons.insert(0, f"repaired:{len(repaired['repaired'])}")
    record = base | {
        "decision": decision,
        "reasons": reasons,
        "applied": False,
        "period": {"since": format_utc(since), "until": format_utc(now)},
        "instruments": list(result.instruments),
        "metrics": {
            "broker_trades": result.broker_trades,
            "ledger_trades": result.ledger_trades,
            "ledger_rows": result.ledger_rows,
            "matched": result.matched,
            "lookups": lookups,
            **counts,
        },
        "findings_total": len(result.findings),
        "findings": [f.to_json() for f in result.findings[: config.recorded_findings]],
        **({"repair": repaired} if repaired is not None else {}),
    }
    store.record(record)
    at = format_utc(now)
    store.write_mechanism(
        MECHANISM,
        state
        | {
            "account": account_id,
            "run_id": record["run_id"],
            "last_run_at": at,
            "last_attempt_at": at,
            "last_attempt": decision,
            "last_decision": decision,
            "findings": len(result.findings),
            "counts": counts,
            **({"last_clean_at": at} if result.clean else {"last_mismatch_at": at}),
            **({"last_repair_at": at} if repaired is not None else {}),
        },
    )
    return record


def _compare(
    broker: BrokerReader,
    ledger: LedgerReader,
    account_id: str,
    config: ReconcileConfig,
    since: datetime,
    now: datetime,
) -> tuple[Reconciliation, int, list[Trade]]:
    raw = _fetch_closed(broker, account_id, since - config.max_hold)
    trades, unreadable = parse_broker_trades(raw)
    in_period = [t for t in trades if t.close_time is not None and since <= t.close_time <= now]
    # no upper bound: a ledger close after now is wrong and must be reported, not skipped
    read_from = min([since, *(t.open_time for t in in_period)])
    rows = ledger.trades(closed_since=read_from)
    unmatched = unmatched_ledger_ids(
        trades, rows, since=since, until=now, instruments=config.instruments
    )
    looked_up, lookup_problems = _look_up(
        broker, account_id, unmatched[: config.max_lookups], trades
    )
    trades += looked_up
    earlier = min([read_from, *(t.open_time for t in looked_up)])
    if earlier < read_from:  # a looked-up trade opened earlier: its first partial rows too
        rows = ledger.trades(closed_since=earlier)
    result = reconcile(
        trades,
        rows,
        since=since,
        until=now,
        instruments=config.instruments,
        tolerances=config.tolerances,
        unreadable=[*unreadable, *lookup_problems],
    )
    return result, len(looked_up) + len(lookup_problems), rows


def _fetch_closed(broker: BrokerReader, account_id: str, opened_after: datetime) -> list[object]:
    """Closed trades, newest opening first, until one opened before ``opened_after``."""
    out: list[object] = []
    for obj in broker.iter_closed_trades(account_id):
        out.append(obj)
        try:
            opened = read_time(obj, "openTime", "trade")
        except ValueError:
            continue  # reported as unreadable by the parser; keep paging
        if opened < opened_after:
            break
    return out


def _look_up(
    broker: BrokerReader, account_id: str, ids: Sequence[str], known: Sequence[BrokerTrade]
) -> tuple[list[BrokerTrade], list[Finding]]:
    """The broker's view of ledger trades the pages did not list; unknown ones are left out."""
    raw: list[object] = []
    seen = {t.trade_id for t in known}
    for trade_id in ids:
        if trade_id in seen or not (trade_id.isascii() and trade_id.isdigit()):
            continue  # not an OANDA trade id (a paper or hand-made row): extra as it stands
        try:
            raw.append(broker.trade(account_id, trade_id))
        except BrokerRejected:
            continue  # 404 NO_SUCH_TRADE: the broker does not know it -> extra
    trades, problems = parse_broker_trades(raw)
    return trades, problems
