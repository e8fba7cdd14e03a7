"""The tuner's imperative shell: lock, read, decide, apply or record, store state, return it.

Everything that touches the disk, the ledger or the lock lives here; every decision lives in
``decide.py``. Live, shadow (``--shadow`` or the tuner's own shadow mode) and operator-frozen runs
go through the same ``decide`` and the same apply guard (``dry_run`` in shadow), so their records
are directly comparable: ``decision`` says what happened, ``intended`` what the logic decided.

The counterfactual entry knobs' signals and candles are read here too, only for the families
``decide.cf_due`` names (idle, at most every ``cf_every``).

Must not: decide anything, read the clock (``now`` is a parameter), or write knob values other
than through ``StateStore.apply``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from autolearn.adapters.state import StateStore
from autolearn.core.apply_guard import ApplyKind
from autolearn.core.knobs import KnobValue, Owner
from autolearn.core.lifecycle import split_of
from autolearn.core.model import Trade
from autolearn.core.registry import Registry
from autolearn.ledger._base import Ledger, PocketFiltered
from autolearn.mechanism import (
    ENDS_FLIGHT,
    applied_fields,
    base_record,
    outcome_fields,
    run_locked,
    unchanged_fields,
    version_context,
)
from autolearn.tuner.config import TunerConfig
from autolearn.tuner.decide import Decision, TuneInput, cf_due, decide, finalize_state
from autolearn.tuner.proposers import PROPOSERS
from autolearn.tuner.proposers.counterfactual_entry import CounterfactualData, scored_specs
from autolearn.tuner.proposers.micro_entry import strategy_of
from autolearn.tuner.state import TunerState

__all__ = ["run_cycle"]

_MECHANISM = "tuner"


def run_cycle(
    store: StateStore,
    ledger: Ledger,
    config: TunerConfig,
    now: datetime,
    *,
    shadow: bool = False,
    run_id: str | None = None,
) -> dict[str, Any]:
    """One tuner run; returns its record (already appended to the history)."""
    base = base_record(_MECHANISM, now, shadow=shadow, run_id=run_id)
    return run_locked(store, base, lambda: _locked_cycle(store, ledger, config, now, shadow, base))


def _locked_cycle(
    store: StateStore,
    ledger: Ledger,
    config: TunerConfig,
    now: datetime,
    shadow: bool,
    base: dict[str, Any],
) -> dict[str, Any]:
    effective = store.read_effective()
    state = TunerState.from_json(store.read_mechanism(_MECHANISM))
    frozen = store.is_frozen(_MECHANISM)
    last_close = ledger.last_close_at()
    trades = _read_trades(ledger, _window_start(state, last_close, now, config), now, config)
    timeline, version_values = version_context(store, trades, effective.version)
    current = store.current_values()
    decision = decide(
        TuneInput(
            trades=trades,
            registry=store.registry,
            version=effective.version,
            current=current,
            recent_changes=effective.changes,
            writers={k: str(v.get("writer", "")) for k, v in effective.sources.items()},
            state=state,
            version_values=version_values,
            timeline=timeline,
            last_close_at=min(last_close, now) if last_close else None,
            now=now,
            counterfactual=_read_counterfactual(ledger, store.registry, state, now, config),
        ),
        config,
    )
    live = not shadow and not frozen[0] and decision.mode == "live"
    record = _record(base, decision, live, frozen)
    if decision.requests and decision.kind is not None:
        record["expected_version"] = store.version_of(
            _layer_after(store, effective.values, decision)
        )
        flight = decision.state.families[decision.family].in_flight if decision.family else None
        result = store.apply(
            Owner.TUNER,
            decision.requests,
            now,
            kind=decision.kind,
            record=record,
            dry_run=not live,
            start_arms=(
                split_of(flight, _MECHANISM, decision.family)
                if decision.kind is ApplyKind.APPLY and decision.family
                else None
            ),
        )
        values_after = {**current, **{d["knob"]: d["after"] for d in result.diff}}
        record.update(applied_fields(result))
        if decision.target_version:
            record["restored_snapshot"] = result.version_after == decision.target_version
        new_state = finalize_state(
            decision,
            applied=result.applied,
            version_after=result.version_after,
            values_after=values_after,
        )
    else:
        record.update(unchanged_fields(effective.version, decision.considered))
        store.record(record)
        new_state = decision.state
    if live:
        ended = {f: _MECHANISM for f, action in decision.actions if action in ENDS_FLIGHT}
        if ended:
            store.end_arms(ended, now)
        store.write_mechanism(_MECHANISM, new_state.to_json())
    return record


def _record(
    base: dict[str, Any], decision: Decision, live: bool, frozen: tuple[bool, str]
) -> dict[str, Any]:
    in_flight = {
        family: fs.in_flight.to_json()
        for family, fs in decision.state.families.items()
        if fs.in_flight is not None
    }
    return (
        base
        | outcome_fields(decision.decision, decision.reasons, live=live, frozen=frozen)
        | {
            "family": decision.family,
            "target_version": decision.target_version,
            "considered": decision.considered,
            "families": decision.families,
            "metrics": decision.metrics,
            "verdicts": decision.verdicts,
            "in_flight": in_flight or None,
            "tuner_mode": decision.mode,
        }
    )


def _window_start(
    state: TunerState, last_close: datetime | None, now: datetime, config: TunerConfig
) -> datetime:
    """From each family's last decision (its evidence) and each flight's frozen baseline.

    Never later than a family's last decision, so its evidence never shrinks between runs; never
    earlier than ``max_lookback`` (a family idle for months reads a bounded history).
    """
    newest = min(now, last_close) if last_close else now
    floor = newest - config.max_lookback
    start = newest if state.families else floor
    for fs in state.families.values():
        start = min(start, max(fs.changed_at or floor, floor))
        if fs.in_flight is not None:  # its whole flight and its frozen baseline, however old
            start = min(start, fs.in_flight.started_at - config.flight.baseline_lookback)
    return start


def _read_trades(
    ledger: Ledger, since: datetime, now: datetime, config: TunerConfig
) -> list[Trade]:
    """The window's trades of the pockets the tuner's rules read, in close order.

    One range query on the close-time index: a per-pocket query would use the (pocket,
    strategy, close) index and scan every trade of the pocket (measured 3x slower at 1M
    trades). A ledger that filters pockets itself (``PocketFiltered``: the SQL ones) does it in
    that query; any other is filtered here.
    """
    pockets = {*config.exit_pockets, config.micro_pocket}
    until = now + timedelta(microseconds=1)
    if isinstance(ledger, PocketFiltered):
        return ledger.trades_in_pockets(pockets, closed_since=since, closed_until=until)
    return [t for t in ledger.trades(closed_since=since, closed_until=until) if t.pocket in pockets]


def _read_counterfactual(
    ledger: Ledger, registry: Registry, state: TunerState, now: datetime, config: TunerConfig
) -> dict[str, CounterfactualData]:
    """Signals of the lookback and the M1 candles under them, for each family due (``cf_due``).

    Read only when the family can use them (idle, at most every ``cf_every``): a month of M1
    bars is ~30,000 rows, too many to read every ten minutes for nothing.
    """
    out: dict[str, CounterfactualData] = {}
    since, until = now - config.cf_lookback, now + timedelta(microseconds=1)
    for family, specs in registry.families(Owner.TUNER).items():
        if family not in PROPOSERS or not cf_due(state.families.get(family), specs, now, config):
            continue
        strategies = {strategy_of(s.name) for s in scored_specs(specs)}
        signals = tuple(
            s
            for pocket in PROPOSERS[family].pockets(config)
            for s in ledger.signals(since=since, until=until, pocket=pocket)
            if s.strategy in strategies
        )
        candles = {
            instrument: ledger.candles(
                instrument,
                since=min(s.at for s in signals if s.instrument == instrument)
                - timedelta(minutes=5),
                until=until,
            )
            for instrument in sorted({s.instrument for s in signals})
        }
        logged = {s.signal_id for s in signals if not s.taken}
        shadow_outcomes = {
            sh.signal_id: sh.outcome_pips
            for pocket in PROPOSERS[family].pockets(config)
            for sh in ledger.shadow_signals(since=since, pocket=pocket)
            if sh.outcome_pips is not None and sh.signal_id in logged
        }
        out[family] = CounterfactualData(
            signals=signals,
            candles=candles,
            since=since,
            until=now,
            shadow_outcomes=shadow_outcomes,
        )
    return out


def _layer_after(
    store: StateStore, layer: Mapping[str, KnobValue], decision: Decision
) -> dict[str, KnobValue]:
    values = dict(layer)
    for knob, value in decision.requests.items():
        if value == store.registry.spec(knob).default:
            values.pop(knob, None)
        else:
            values[knob] = value
    return values
