"""The scalp trainer's imperative shell: lock, read, decide, apply or record, store state.

Mirrors the tuner's shell (``autolearn.tuner.cycle``): live, shadow (``--shadow``) and
operator-frozen runs go through the same ``decide`` and the same apply guard (``dry_run`` when
not live), so their records compare directly: ``decision`` says what happened, ``intended``
what the logic decided. One run leaves exactly one history record.

Must not: decide anything, read the clock (``now`` is a parameter), or write knob values other
than through ``StateStore.apply``; its own state goes to ``mechanisms/scalp_trainer.json``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from autolearn.adapters.state import StateStore
from autolearn.core.judge import VersionTimeline
from autolearn.core.knobs import KnobValue, Owner
from autolearn.core.timestamps import TimestampError, format_utc, parse_utc
from autolearn.errors import LockBusy, StateError
from autolearn.ledger._base import Ledger
from autolearn.scalp_trainer.config import ScalpTrainerConfig
from autolearn.scalp_trainer.decide import Decision, ScalpInput, decide
from autolearn.scalp_trainer.lifecycle import FamilyState, finalize, parse_state

__all__ = ["lock_busy_record", "read_timeline", "read_versions", "run_cycle"]

_MECHANISM = "scalp_trainer"


def lock_busy_record(base: Mapping[str, Any]) -> dict[str, Any]:
    """The record of a run that found its mechanism's lock held (nothing decided)."""
    return dict(base) | {
        "decision": "lock_busy",
        "intended": "lock_busy",
        "reasons": ["lock_busy"],
        "knobs": [],
        "diff": [],
        "metrics": {},
        "verdicts": {},
        "version_before": None,
        "version_after": None,
        "in_flight": None,
        "applied": False,
    }


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
    base = {
        "at": format_utc(now),
        "run_id": run_id or f"{format_utc(now)}-{os.getpid()}",
        "mechanism": _MECHANISM,
        "mode": "shadow" if shadow else "live",
    }
    try:
        with store.lock(_MECHANISM, timeout_s=0):
            return _locked(store, ledger, config, now, shadow, base)
    except LockBusy:
        record = lock_busy_record(base)
        store.record(record)
        return record


def _locked(
    store: StateStore,
    ledger: Ledger,
    config: ScalpTrainerConfig,
    now: datetime,
    shadow: bool,
    base: dict[str, Any],
) -> dict[str, Any]:
    effective = store.read_effective()
    state = parse_state(store.read_mechanism(_MECHANISM), f"mechanisms/{_MECHANISM}.json")
    frozen, frozen_why = store.is_frozen(_MECHANISM)
    start = now - config.lookback
    if state is not None and state.in_flight is not None:
        start = min(start, state.in_flight.started_at - config.lookback)  # keep its baseline
    trades = ledger.trades(
        closed_since=start, closed_until=now + timedelta(microseconds=1), strategy=config.strategy
    )
    timeline = read_timeline(store, effective.version, any(not t.config_version for t in trades))
    wanted = {t.config_version for t in trades if t.config_version}
    wanted |= {v for _, v in timeline.points} | {timeline.initial, effective.version}
    if state is not None:
        wanted |= {state.lkg_version} | (
            {state.in_flight.baseline_version} if state.in_flight else set()
        )
    decision = decide(
        ScalpInput(
            trades=trades,
            registry=store.registry,
            version=effective.version,
            current=store.current_values(),
            recent_changes=effective.changes,
            writers={k: str(v.get("writer", "")) for k, v in effective.sources.items()},
            state=state,
            version_values=read_versions(store, wanted),
            timeline=timeline,
            now=now,
        ),
        config,
    )
    live = not shadow and not frozen
    record = _record(base, decision, config.family, live, frozen, frozen_why)
    new_state: FamilyState = decision.state
    if decision.requests and decision.kind is not None:
        result = store.apply(
            Owner.SCALP_TRAINER,
            decision.requests,
            now,
            kind=decision.kind,
            record=record,
            dry_run=not live,
        )
        values_after = {d["knob"]: d["after"] for d in result.diff}
        record.update(
            applied=result.applied,
            version_before=result.version_before,
            version_after=result.version_after,
            knobs=[d.to_record() for d in result.decisions],
            diff=result.diff,
        )
        if not result.applied:  # shadow / frozen: what the guard would have adopted
            record["proposed_diff"] = [
                {"knob": d.knob, "before": d.before, "after": d.requested}
                for d in result.decisions
                if d.adopted
            ]
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
        record.update(
            applied=False,
            knobs=decision.considered,
            diff=[],
            version_before=effective.version,
            version_after=effective.version,
        )
        store.record(record)
    if live:
        store.write_mechanism(_MECHANISM, new_state.to_json())
    return record


def _record(
    base: dict[str, Any],
    decision: Decision,
    family: str,
    live: bool,
    frozen: bool,
    frozen_why: str,
) -> dict[str, Any]:
    reasons = list(decision.reasons)
    if frozen:
        reasons.insert(0, f"operator_frozen: {frozen_why}")
    flight = decision.state.in_flight
    return base | {
        "mode": "live" if live else "shadow",
        "decision": decision.decision if live else ("frozen" if frozen else "shadow"),
        "intended": decision.decision,
        "reasons": reasons,
        "family": family,
        "target_version": decision.target_version,
        "considered": decision.considered,
        "metrics": decision.metrics,
        "verdicts": {family: decision.verdict} if decision.verdict else {},
        "in_flight": {family: flight.to_json()} if flight else None,
    }


def read_timeline(store: StateStore, current_version: str, needed: bool) -> VersionTimeline:
    """Versions by time from the history (only read when a trade has no pinned version)."""
    if not needed:
        return VersionTimeline((), current_version)
    changes = []
    for record in store.history.read().records:
        if not record.get("applied") or not record.get("version_after"):
            continue
        try:
            at = parse_utc(str(record.get("at", "")))
        except TimestampError:
            continue
        changes.append((at, str(record.get("version_before", "")), str(record["version_after"])))
    timeline = VersionTimeline.from_changes(changes)
    return timeline if timeline.points else VersionTimeline((), current_version)


def read_versions(store: StateStore, versions: set[str]) -> dict[str, Mapping[str, KnobValue]]:
    """The runtime layer of each known version (unknown ones attribute no trade)."""
    found: dict[str, Mapping[str, KnobValue]] = {}
    for version in sorted(v for v in versions if v):
        try:
            found[version] = dict(store.read_snapshot(version).get("values", {}))
        except StateError:
            continue
    return found
