"""The scalp trainer's imperative shell: lock, read, decide, apply or record, store state.

Mirrors the tuner's shell (``autolearn.tuner.cycle``): live, shadow (``--shadow``) and
operator-frozen runs go through the same ``decide`` and the same apply guard (``dry_run`` when
not live), so their records compare directly: ``decision`` says what happened, ``intended``
what the logic decided. One run leaves exactly one history record.

Must not: decide anything, read the clock (``now`` is a parameter), or write knob values other
than through ``StateStore.apply``; its own state goes to ``mechanisms/scalp_trainer.json``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from autolearn.adapters.state import StateStore
from autolearn.core.knobs import Owner
from autolearn.core.lifecycle import FamilyState, finalize, parse_state, split_of
from autolearn.core.model import Trade
from autolearn.ledger._base import Ledger
from autolearn.mechanism import (
    ENDS_FLIGHT,
    applied_fields,
    base_record,
    outcome_fields,
    proposed_diff,
    run_locked,
    unchanged_fields,
    version_context,
)
from autolearn.scalp_trainer.config import ScalpTrainerConfig
from autolearn.scalp_trainer.counterfactual import ExitCfData
from autolearn.scalp_trainer.decide import Decision, ScalpInput, decide, timeout_spec
from autolearn.scalp_trainer.state import ScalpFamilyState

__all__ = ["run_cycle"]

_MECHANISM = "scalp_trainer"


def run_cycle(
    store: StateStore,
    ledger: Ledger,
    config: ScalpTrainerConfig,
    now: datetime,
    *,
    shadow: bool = False,
    run_id: str | None = None,
) -> dict[str, Any]:
    """One scalp-trainer run; returns its record (already appended to the history)."""
    base = base_record(_MECHANISM, now, shadow=shadow, run_id=run_id)
    return run_locked(store, base, lambda: _locked(store, ledger, config, now, shadow, base))


def _locked(
    store: StateStore,
    ledger: Ledger,
    config: ScalpTrainerConfig,
    now: datetime,
    shadow: bool,
    base: dict[str, Any],
) -> dict[str, Any]:
    effective = store.read_effective()
    state = parse_state(
        ScalpFamilyState, store.read_mechanism(_MECHANISM), f"mechanisms/{_MECHANISM}.json"
    )
    frozen = store.is_frozen(_MECHANISM)
    start = now - config.lookback
    if state is not None and state.in_flight is not None:  # keep its whole flight and baseline
        start = min(start, state.in_flight.started_at - config.flight.baseline_lookback)
    trades = ledger.trades(
        closed_since=start, closed_until=now + timedelta(microseconds=1), strategy=config.strategy
    )
    judged_by = [] if state is None else [state.lkg_version]
    if state is not None and state.in_flight is not None:
        judged_by.append(state.in_flight.baseline_version)
    timeline, version_values = version_context(store, trades, effective.version, judged_by)
    decision = decide(
        ScalpInput(
            trades=trades,
            registry=store.registry,
            version=effective.version,
            current=store.current_values(),
            recent_changes=effective.changes,
            writers={k: str(v.get("writer", "")) for k, v in effective.sources.items()},
            state=state,
            version_values=version_values,
            timeline=timeline,
            now=now,
            counterfactual=_read_counterfactual(store, ledger, config, state, trades, now),
        ),
        config,
    )
    live = not shadow and not frozen[0]
    record = _record(base, decision, config.family, live, frozen)
    new_state: FamilyState = decision.state
    if decision.requests and decision.kind is not None:
        result = store.apply(
            Owner.SCALP_TRAINER,
            decision.requests,
            now,
            kind=decision.kind,
            record=record,
            dry_run=not live,
            start_arms=split_of(decision.state.in_flight, _MECHANISM, config.family),
        )
        values_after = {d["knob"]: d["after"] for d in result.diff}
        record.update(applied_fields(result))
        if not result.applied:  # shadow / frozen: what the guard would have adopted
            record["proposed_diff"] = proposed_diff(result)
        new_state = finalize(
            decision.state,
            decision.state_unapplied,
            applied=result.applied,
            version_after=result.version_after,
            values_after=values_after,
        )
        if decision.target_version:
            record["restored_snapshot"] = result.version_after == decision.target_version
    else:
        record.update(unchanged_fields(effective.version, decision.considered))
        store.record(record)
    if live:
        if decision.decision in ENDS_FLIGHT:
            store.end_arms({config.family: _MECHANISM}, now)
        store.write_mechanism(_MECHANISM, new_state.to_json())
    return record


def _read_counterfactual(
    store: StateStore,
    ledger: Ledger,
    config: ScalpTrainerConfig,
    state: FamilyState | None,
    trades: list[Trade],
    now: datetime,
) -> ExitCfData | None:
    """The strategy's taken signals of the lookback, their trades' pips and the M1 candles under
    them; read only when the family could move (no flight, no cooldown) and has a timeout knob.
    """
    cf = config.counterfactual
    specs = store.registry.families(Owner.SCALP_TRAINER).get(config.family, [])
    if not cf.enabled or timeout_spec(specs) is None:
        return None
    if state is not None and (
        state.in_flight is not None
        or (state.cooldown_until is not None and now < state.cooldown_until)
    ):
        return None
    since, until = now - cf.lookback, now + timedelta(microseconds=1)
    signals = tuple(
        s for s in ledger.signals(since=since, until=until, strategy=config.strategy) if s.taken
    )
    if not signals:
        return ExitCfData(signals=(), candles=None, until=now)
    instruments = sorted({s.instrument for s in signals})
    # one instrument per strategy (the bot's M1Scalper trades one pair); others are left out
    signals = tuple(s for s in signals if s.instrument == instruments[0])
    candles = ledger.candles(
        instruments[0], since=signals[0].at - timedelta(minutes=5), until=until
    )
    recorded = {t.broker_trade_id: t.pl_pips for t in trades if t.broker_trade_id}
    return ExitCfData(signals=signals, candles=candles, recorded=recorded, until=now)


def _record(
    base: dict[str, Any],
    decision: Decision,
    family: str,
    live: bool,
    frozen: tuple[bool, str],
) -> dict[str, Any]:
    flight = decision.state.in_flight
    return (
        base
        | outcome_fields(decision.decision, decision.reasons, live=live, frozen=frozen)
        | {
            "family": family,
            "target_version": decision.target_version,
            "considered": decision.considered,
            "metrics": decision.metrics,
            "verdicts": {family: decision.verdict} if decision.verdict else {},
            "in_flight": {family: flight.to_json()} if flight else None,
        }
    )
