"""The runtime API the bot calls before every entry: ``Gates.check_entry``.

    gates = Gates.open(ledger_url, state_dir, registry)            # once per worker
    verdict = gates.check_entry("TrendMA", "macro", Side.LONG, 151.23, now, open_positions)
    if verdict.allowed: units = round(base_units * verdict.size_multiplier)

The gates judge ENTRIES ONLY. Exits are never gated: do not call this before closing.

Order: policy knobs (``pockets.<p>[.strategies.<key>].allow_new`` / ``size_mult``, ``<key>``
the strategy name escaped by ``core.knob_names.strategy_key``, read through
``autolearn.runtime.Tuning``) -> perf guard -> stage tracker -> re-entry gate; every gate's
reasons are kept, the multipliers multiply. New trades are read from the ledger at most every
``refresh_s`` of the injected monotonic clock. ``check_entry`` never raises: an unreadable
ledger (any exception while reading it, e.g. a stored row that no longer decodes) answers per
``on_ledger_error`` (default: deny with ``ledger_unreadable``) on every call until a refresh
succeeds; any other failure per ``on_gate_error`` (default: deny with ``gate_error`` /
``invalid_input``).

This module is the shell around the pure gates: it owns the ledger connection and the clock.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from autolearn.adapters.logs import get_logger
from autolearn.adapters.state import StateStore
from autolearn.core.knob_names import strategy_knob_prefix
from autolearn.core.model import Side
from autolearn.core.plausibility import TradeLimits
from autolearn.core.registry import Registry
from autolearn.errors import AutolearnError, LedgerError, StateUnavailable
from autolearn.gates.aggregates import Aggregates
from autolearn.gates.config import (
    GatesConfig,
    LedgerErrorMode,
    PerfGuardRules,
    ReentryRule,
    load_gates_config,
)
from autolearn.gates.model import Gate, GateResult, OpenPosition, Reason, Verdict, combine
from autolearn.gates.perf_guard import evaluate_perf
from autolearn.gates.reentry import base_strategy, evaluate_reentry
from autolearn.gates.stage import evaluate_stage
from autolearn.ledger._base import CommitOrdered, Ledger
from autolearn.runtime import Tuning

if TYPE_CHECKING:
    from autolearn.adapters.shared_state import SharedState

__all__ = ["COMMIT_OVERLAP_MAX", "COMMIT_SWEEP_S", "Gates", "KnobReader"]

KnobReader = Callable[[str, Any], Any]
# Trades closing later than the entry's ``now`` plus this are not read yet (clock skew only).
FUTURE_TOLERANCE = TradeLimits().future_tolerance
# The overlap of commit-order reads: every this many seconds (gates clock) a refresh re-reads
# what was committed since the previous such sweep, at most COMMIT_OVERLAP_MAX sequence values
# back, de-duplicated by trade key (see ``Gates._read_committed``).
COMMIT_SWEEP_S = 10.0
COMMIT_OVERLAP_MAX = 5_000


def _defaults_only(_key: str, default: Any) -> Any:
    return default


class Gates:
    """The entry gates of one worker process. Thread-safe; ``check_entry`` never raises."""

    def __init__(
        self,
        *,
        ledger: Ledger | None,
        config: GatesConfig,
        knobs: KnobReader = _defaults_only,
        clock: Callable[[], float] = time.monotonic,
        ledger_opener: Callable[[], Ledger] | None = None,
        pockets: Collection[str] | None = None,
    ) -> None:
        self.config = config
        # The registry's pockets: any other name ("mirco", "MICRO", "micro ") is denied, never
        # normalised (a typo must not escape a block on the real pocket). None: not checked.
        self.pockets = frozenset(pockets) if pockets is not None else None
        self._ledger = ledger
        self._commit_ordered: tuple[Ledger, bool] | None = None  # see _is_commit_ordered
        self._opener = ledger_opener
        self._knobs = knobs
        self._clock = clock
        self._lock = threading.RLock()
        self.aggregates = Aggregates(config)
        self._bootstrapped = False
        # (gates clock, commit head) of the two last overlap reads (``_read_committed``)
        self._sweeps: tuple[tuple[float, int], tuple[float, int]] = ((-math.inf, 0),) * 2
        self._ledger_id = ""  # ``meta.ledger_id`` of the ledger read (a rebuilt one differs)
        self._refreshed_at = -math.inf
        self.ledger_error: str | None = None
        self._perf_rules: dict[tuple[str, str], PerfGuardRules] = {}
        self._reentry_rules: dict[str, ReentryRule] = {}
        self._log = get_logger("autolearn.gates")

    @classmethod
    def open(
        cls,
        ledger_url: str,
        state_dir: Path,
        registry: Registry,
        config_path: Path | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_s: float | None = None,
        tuning: Tuning | None = None,
        account: str = "",
        shared: SharedState | None = None,
    ) -> Gates:
        """The bot's constructor. A bad config raises ``ConfigError`` (at start-up, loudly);
        an unreachable ledger does not: entries then follow ``on_ledger_error``.

        ``tuning``: the worker's own reader of ``effective.json`` (``autolearn.connect`` passes
        it), so the gates and the bot see one version; without it the gates open their own.
        ``account``: the bot's key in a shared ledger: the gates count its trades only.
        ``shared``: the state every host shares (``AUTOLEARN_STATE_URL``): the operator's gate
        overrides, and the knobs of a ``Tuning`` opened here, come from there.
        """
        # local: the pure gates need no SQL. On a ready SQLite ledger the reader is sqlite3's
        # (a refresh reading a new trade: ~0.05 ms instead of SQLAlchemy's ~0.6 ms).
        from autolearn.ledger.sqlite_reader import open_reader

        store = StateStore(state_dir, registry, shared=shared)
        try:
            overrides = store.read_mechanism("gates").get("overrides") or None
        except StateUnavailable as exc:  # the server is down at start-up: the host's replica
            get_logger("autolearn.gates").error("gates_overrides_from_replica", error=str(exc))
            local = StateStore(state_dir, registry)
            overrides = local.read_mechanism("gates").get("overrides") or None
        config = load_gates_config(config_path, overrides)
        if refresh_s is not None:
            config = _with_refresh(config, refresh_s)
        if tuning is None:
            tuning = Tuning(state_dir, registry, shared=shared)

        def opener() -> Ledger:
            return open_reader(ledger_url, account=account)

        gates = cls(
            ledger=None,
            config=config,
            knobs=tuning.get,
            clock=clock,
            ledger_opener=opener,
            pockets=registry.pockets,
        )
        try:
            gates._ledger = opener()
        except LedgerError as exc:
            gates.ledger_error = str(exc)
        return gates

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()

    # -- the API ----------------------------------------------------------------------------
    def check_entry(
        self,
        strategy: str,
        pocket: str,
        side: Side | str,
        price: float,
        now: datetime,
        open_positions: Sequence[OpenPosition] = (),
        *,
        instrument: str | None = None,
    ) -> Verdict:
        """May the bot open this entry now, and at what size? Never raises.

        ``instrument``: the entry's market. Given, the re-entry gate measures the price
        distance from the last close in that instrument only; omitted, from the strategy's
        last close in any instrument (right only for a bot trading one instrument).
        """
        try:
            side = Side(side)
            _check_inputs(strategy, pocket, price, now, open_positions)
            if self.pockets is not None and pocket not in self.pockets:
                return _unknown_pocket(pocket, self.pockets)
            with self._lock:
                self._maybe_refresh(now)
                return self._decide(strategy, pocket, side, price, now, open_positions, instrument)
        except ValueError as exc:
            return self._failed("invalid_input", exc)
        except Exception as exc:  # the bot must never see an exception from here
            return self._failed("gate_error", exc)

    def refresh(self, now: datetime) -> int:
        """Read new trades now (bypassing ``refresh_s``); returns how many were new."""
        with self._lock:
            self._refreshed_at = -math.inf
            before = self.aggregates.trades_seen
            self._maybe_refresh(now)
            return self.aggregates.trades_seen - before

    # -- internals --------------------------------------------------------------------------
    def _maybe_refresh(self, now: datetime) -> None:
        tick = self._clock()
        if tick - self._refreshed_at < self.config.refresh_s:
            return
        self._refreshed_at = tick
        try:
            if self._ledger is None:
                if self._opener is None:
                    raise LedgerError("no ledger configured")
                self._ledger = self._opener()
            if getattr(self._ledger, "is_replaced", lambda: False)():
                self._reopen_replaced()
            # A row dated beyond now (+ skew) never moves the watermark (issue 13).
            horizon = now + FUTURE_TOLERANCE
            if self._is_commit_ordered(self._ledger):
                self._read_committed(self._ledger, now, horizon)
            else:
                self._read_in_close_order(self._ledger, now, horizon)
        except Exception as exc:
            # Any failure of the read, not only the expected LedgerError (a driver bug, a row
            # an older writer left undecodable), leaves the ledger unreadable. The error stays
            # set until a refresh succeeds, so every entry until then follows on_ledger_error;
            # _refreshed_at still advances so a broken ledger is retried every refresh_s, not
            # on every entry.
            detail = str(exc) if isinstance(exc, AutolearnError) else f"{type(exc).__name__}: {exc}"
            if self.ledger_error != detail:
                self._log.error("gates_ledger_unreadable", error=detail)
            self.ledger_error = detail
            return
        self.ledger_error = None

    def _is_commit_ordered(self, ledger: Ledger) -> TypeGuard[CommitOrdered]:
        """``isinstance(ledger, CommitOrdered)``, once per ledger object: a runtime protocol
        check walks the protocol's attributes (~11 us, a tenth of a fresh check_entry)."""
        if self._commit_ordered is None or self._commit_ordered[0] is not ledger:
            self._commit_ordered = (ledger, isinstance(ledger, CommitOrdered))
        return self._commit_ordered[1]

    def _read_in_close_order(self, ledger: Ledger, now: datetime, horizon: datetime) -> None:
        """A ledger with one writer in close order (the replay's): resume by close time."""
        if not self._bootstrapped:
            since = now - self.config.history_window
            self.aggregates.ingest(ledger.trades(closed_since=since), not_after=horizon)
            self._bootstrapped = True
        mark = self.aggregates.watermark
        if mark is None:
            self.aggregates.ingest(ledger.trades_after(None), not_after=horizon)
        else:
            # Range read from the watermark's close time, deduplicated by the full
            # (close_at, broker_trade_id, close_tx_id) key in ingest(): the same trades as
            # trades_after(mark), but SQLite answers its OR-expanded predicate with a
            # full index scan (O(ledger) per refresh), while this is an index search.
            self.aggregates.ingest(ledger.trades(closed_since=mark[0]), not_after=horizon)

    def _read_committed(self, ledger: CommitOrdered, now: datetime, horizon: datetime) -> None:
        """Read the trades committed since the last refresh (issue 19 item 1).

        Start-up: the history window and the head from one snapshot (every ``seq`` up to a
        committed head is in it: ``CommitOrdered``); then each refresh resumes after the
        highest ``seq`` read. The writers' lock makes that exact. The second line, should a row
        ever commit below a ``seq`` already read (a writer bypassing the lock): every
        ``COMMIT_SWEEP_S`` a refresh re-reads from the head seen two sweeps ago (at most
        ``COMMIT_OVERLAP_MAX`` values back), and ``ingest_committed`` drops what it counted;
        a row in flight for less than one sweep period is then never missed. Re-reading on
        every refresh instead would cost each ~25 us per row decoded again. A head below what
        was read (a restore) or another ``ledger_id`` (a rebuild, even in a file that reused
        the old one's inode) makes it read everything again.
        """
        floor = now - self.config.history_window
        tick = self._clock()
        if self._bootstrapped:
            agg = self.aggregates
            after = agg.commit_seq
            (_, older), newer = self._sweeps
            if tick - newer[0] >= COMMIT_SWEEP_S:
                after = max(older, agg.commit_seq - COMMIT_OVERLAP_MAX, 0)
                self._sweeps = (newer, (tick, agg.commit_seq))
            batch = ledger.read_committed(after=after)
            if batch.head >= agg.commit_seq and batch.ledger == self._ledger_id:
                agg.ingest_committed(batch.trades, not_after=horizon, not_before=floor)
                return
            self._log.warning(
                "gates_ledger_rebuilt",
                head=batch.head,
                read=agg.commit_seq,
                same_ledger=batch.ledger == self._ledger_id,
                action="re-read",
            )
            self.aggregates = Aggregates(self.config)
        agg = self.aggregates
        batch = ledger.read_committed(closed_since=floor)
        agg.ingest_committed(batch.trades, not_after=horizon, not_before=floor)
        agg.commit_seq = max(agg.commit_seq, batch.head)
        self._ledger_id = batch.ledger
        self._bootstrapped = True
        self._sweeps = ((tick, max(0, batch.head - COMMIT_OVERLAP_MAX)), (tick, batch.head))

    def _reopen_replaced(self) -> None:
        """The ledger file was deleted or recreated: reopen it and rebuild from scratch."""
        if self._ledger is not None:
            with contextlib.suppress(Exception):
                self._ledger.close()
        self._ledger = None
        self.aggregates = Aggregates(self.config)
        self._bootstrapped = False
        self._log.warning("gates_ledger_replaced", action="reopened and re-read")
        if self._opener is None:
            raise LedgerError("the ledger file was replaced under the gates; reopen them")
        self._ledger = self._opener()

    def _decide(
        self,
        strategy: str,
        pocket: str,
        side: Side,
        price: float,
        now: datetime,
        open_positions: Sequence[OpenPosition],
        instrument: str | None = None,
    ) -> Verdict:
        results: list[GateResult] = []
        if self.ledger_error is not None:
            blocking = self.config.on_ledger_error is LedgerErrorMode.BLOCK
            reason = Reason(
                gate=Gate.GATES,
                code="ledger_unreadable",
                blocking=blocking,
                hard=blocking,
                detail=self.ledger_error,
            )
            if blocking:
                return Verdict(allowed=False, size_multiplier=0.0, reasons=(reason,))
            results.append(GateResult(allowed=True, reasons=(reason,)))
        results.append(self._policy(pocket, strategy))
        if self._knobs("gates.perf_guard.enabled", True):
            rules = self._rules(pocket, strategy)
            window = self.aggregates.window(pocket, strategy, rules.lookback, now)
            hour = (
                self.aggregates.window(pocket, strategy, rules.lookback, now, now.hour)
                if rules.hourly
                else None
            )
            results.append(evaluate_perf(rules, window, hour))
        if self._knobs("gates.stage.enabled", True):
            book = self.aggregates.stage
            results.append(
                evaluate_stage(
                    cfg=self.config.stage,
                    pocket=pocket,
                    side=side,
                    side_state=book.sides.get((pocket, side)),
                    strategy_state=book.strategies.get((pocket, strategy)),
                    cluster=self.aggregates.cluster(pocket, now),
                    now=now,
                )
            )
        if self._knobs("gates.reentry.enabled", True):
            base = base_strategy(strategy)
            stack = [
                p
                for p in open_positions
                if base_strategy(p.strategy) == base and Side(p.side) is side
            ]
            results.append(
                evaluate_reentry(
                    cfg=self.config.reentry,
                    rule=self._reentry(base),
                    side=side,
                    price=price,
                    now=now,
                    last=self.aggregates.latest_close(base, side, instrument),
                    stack=stack,
                )
            )
        return combine(results)

    def _policy(self, pocket: str, strategy: str) -> GateResult:
        reasons: list[Reason] = []
        size = 1.0
        for prefix, code in (
            (f"pockets.{pocket}.", "policy_pocket_blocked"),
            (strategy_knob_prefix(pocket, strategy), "policy_strategy_blocked"),  # escaped
        ):
            if not self._knobs(f"{prefix}allow_new", True):
                reasons.append(
                    Reason(
                        gate=Gate.POLICY,
                        code=code,
                        blocking=True,
                        hard=True,
                        detail=f"{prefix}allow_new is false",
                    )
                )
            mult = float(self._knobs(f"{prefix}size_mult", 1.0))
            if mult != 1.0:
                reasons.append(
                    Reason(gate=Gate.POLICY, code="policy_size", detail=f"{prefix}size_mult {mult}")
                )
            size *= mult
        if any(r.blocking for r in reasons):
            return GateResult(allowed=False, size_multiplier=0.0, reasons=tuple(reasons))
        return GateResult(allowed=True, size_multiplier=max(size, 0.0), reasons=tuple(reasons))

    def _rules(self, pocket: str, strategy: str) -> PerfGuardRules:
        key = (pocket, strategy)
        rules = self._perf_rules.get(key)
        if rules is None:
            rules = self._perf_rules[key] = self.config.perf_rules(pocket, strategy)
        return rules

    def _reentry(self, base: str) -> ReentryRule:
        rule = self._reentry_rules.get(base)
        if rule is None:
            rule = self._reentry_rules[base] = self.config.reentry_rule(base)
        return rule

    def _failed(self, code: str, exc: Exception) -> Verdict:
        detail = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(Exception):  # logging must not break the promise either
            self._log.error("gates_check_failed", code=code, error=detail)
        blocking = self.config.on_gate_error is LedgerErrorMode.BLOCK
        reason = Reason(gate=Gate.GATES, code=code, detail=detail, blocking=blocking, hard=blocking)
        return Verdict(
            allowed=not blocking, size_multiplier=0.0 if blocking else 1.0, reasons=(reason,)
        )


def _check_inputs(
    strategy: str,
    pocket: str,
    price: float,
    now: datetime,
    open_positions: Sequence[OpenPosition] = (),
) -> None:
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be a timezone-aware datetime, got {now!r}")
    if not isinstance(strategy, str) or not isinstance(pocket, str) or not strategy or not pocket:
        raise ValueError(f"strategy and pocket must be non-empty, got {strategy!r}, {pocket!r}")
    # bool is an int: price=True must not read as 1.0.
    if isinstance(price, bool) or not isinstance(price, int | float):
        raise ValueError(f"price must be a finite number > 0, got {price!r}")
    if not math.isfinite(price) or price <= 0:
        raise ValueError(f"price must be a finite number > 0, got {price!r}")
    for i, p in enumerate(open_positions):
        units = getattr(p, "units", None)
        if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
            raise ValueError(
                f"open_positions[{i}].units must be a positive int (absolute size), got {units!r}"
            )


def _unknown_pocket(pocket: str, known: frozenset[str]) -> Verdict:
    """Fail closed on a pocket the registry does not name (a typo must not bypass a block)."""
    reason = Reason(
        gate=Gate.GATES,
        code="unknown_pocket",
        blocking=True,
        hard=True,
        detail=f"pocket {pocket!r} is not one of the registry's pockets {sorted(known)}",
    )
    return Verdict(allowed=False, size_multiplier=0.0, reasons=(reason,))


def _with_refresh(config: GatesConfig, refresh_s: float) -> GatesConfig:
    from dataclasses import replace

    return replace(config, refresh_s=refresh_s)
