"""The policy cycle's shell: lock, read ledger and state, decide, apply or record, return.

``run_policy`` is what ``autolearn policy`` (a timer every 15 minutes) runs; it reads the local
ledger only (the original needed BigQuery). Exactly one run record per run: through
``store.apply`` when knobs change, else ``store.record``. ``--shadow`` decides and records the
proposed diff but writes neither knobs nor the policy's state; a frozen policy (operator kill
switch) decides and applies nothing. ``operator_unblock`` is the recorded human override.

This module does I/O; the decisions live in ``decide.py`` and ``machine.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from autolearn.adapters.state import StateStore
from autolearn.core.apply_guard import ApplyKind
from autolearn.core.knob_names import strategy_from_key
from autolearn.core.knobs import KnobValue, Owner
from autolearn.core.model import ShadowSignal, Trade
from autolearn.core.timestamps import format_utc
from autolearn.errors import ConfigError, LedgerError, StateError
from autolearn.gates.config import GatesConfig
from autolearn.ledger._base import Ledger
from autolearn.mechanism import (
    applied_fields,
    base_record,
    proposed_diff,
    run_locked,
    unchanged_fields,
)
from autolearn.policy.decide import (
    Decision,
    decide,
    knobs_of,
    scope_knob_prefix,
    split_scope,
    validate_overlay,
)
from autolearn.policy.machine import ScopeState, Status, StepCode

__all__ = [
    "MECHANISM",
    "operator_unblock",
    "read_states",
    "record_operator_scopes",
    "run_policy",
    "scope_of_knob",
]

MECHANISM = "policy"


def read_states(store: StateStore) -> dict[str, ScopeState]:
    """The scope states persisted by the last live run (empty before the first)."""
    doc = store.read_mechanism(MECHANISM)
    try:
        return {k: ScopeState.from_json(v) for k, v in dict(doc.get("scopes", {})).items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # e.g. a scope as a string
        raise StateError(
            f"{store.mechanisms_dir}/{MECHANISM}.json: malformed scopes ({exc})"
        ) from exc


def run_policy(
    *,
    ledger: Ledger,
    store: StateStore,
    config: GatesConfig,
    now: datetime,
    shadow: bool = False,
    run_id: str | None = None,
) -> dict[str, Any]:
    """One policy cycle; returns the run record (already appended to the history)."""
    record = base_record(MECHANISM, now, shadow=shadow, run_id=run_id or uuid.uuid4().hex)
    record["in_flight"] = None
    return run_locked(
        store,
        record,
        lambda: _locked_cycle(ledger, store, config, now, shadow, record),
        busy=_lock_busy,
    )


def _lock_busy(base: Mapping[str, Any]) -> dict[str, Any]:
    # the policy's own, shorter busy record (no intended/knobs/verdicts), as it always was
    return {**base, "decision": "lock_busy", "reasons": ["lock_busy"], "applied": False}


def _locked_cycle(
    ledger: Ledger,
    store: StateStore,
    config: GatesConfig,
    now: datetime,
    shadow: bool,
    record: dict[str, Any],
) -> dict[str, Any]:
    cfg = config.policy
    states = read_states(store)
    try:
        trades, signals = _read_ledger(ledger, states, config, now)
    except LedgerError as exc:
        failed = {
            **record,
            "decision": "freeze",
            "reasons": ["ledger_unreadable"],
            "detail": str(exc),
            "applied": False,
        }
        store.record(failed)
        raise
    registry = store.registry
    # decide() reads shadow evidence of the last shadow_window only; the lookback's older
    # signals are counted in the record but need not be walked again for every scope
    oldest = now - cfg.shadow_window
    decision = decide(
        trades=trades,
        signals=[s for s in signals if s.at >= oldest],
        states=states,
        current=store.current_values(),
        cfg=cfg,
        units=config.units,
        pockets=registry.pockets,
        now=now,
        default_of=lambda k: None if (s := registry.find(k)) is None else s.default,
    )
    validate_overlay(decision.requested, registry)
    frozen, frozen_reason = store.is_frozen(MECHANISM)
    changed = decision.changed
    record.update(
        # Allocation moves change a size, not a status: they are reasons, not transitions.
        reasons=sorted({t.code.value for t in changed} | _allocation_moves(decision))
        or ["no_transition"],
        metrics={
            "units": config.units.value,
            "trades": len(trades),
            "shadow_signals": len(signals),
        },
        verdicts={"scopes": decision.scopes, "skipped": decision.skipped},
        transitions=[
            {
                "scope": t.scope,
                "from": t.before.value,
                "to": t.after.value,
                "code": t.code.value,
                "detail": t.detail,
            }
            for t in changed
        ],
    )
    if shadow:
        record["decision"] = "shadow"
        return _apply(store, decision.requested, now, record, dry_run=True)
    if frozen:
        record.update(decision="frozen", frozen_reason=frozen_reason)
        return _apply(store, decision.requested, now, record, dry_run=True)
    record["decision"] = "apply" if decision.requested else "hold"
    out = _apply(store, decision.requested, now, record, dry_run=False)
    store.write_mechanism(
        MECHANISM,
        {
            "scopes": {k: v.to_json() for k, v in sorted(decision.states.items())},
            "last_run_at": format_utc(now),
            "last_run_id": record["run_id"],
        },
    )
    return out


def _read_ledger(
    ledger: Ledger, states: Mapping[str, ScopeState], config: GatesConfig, now: datetime
) -> tuple[list[Trade], list[ShadowSignal]]:
    since = now - config.policy.lookback
    trades = ledger.trades(closed_since=since, closed_until=now)
    oldest = now - config.policy.shadow_window  # shadow evidence is never older than this
    blocked_since = [
        max(s.since, oldest) for s in states.values() if s.since and s.status is Status.BLOCKED
    ]
    signals = ledger.shadow_signals(since=min([since, *blocked_since]))
    return trades, signals


def _allocation_moves(decision: Decision) -> set[str]:
    moves = (StepCode.ALLOCATION_UP, StepCode.ALLOCATION_DOWN)
    return {t.code.value for t in decision.transitions if t.code in moves}


def _apply(
    store: StateStore,
    requested: Mapping[str, KnobValue],
    now: datetime,
    record: dict[str, Any],
    *,
    dry_run: bool,
    writer: Owner = Owner.POLICY,
    kind: ApplyKind = ApplyKind.APPLY,
) -> dict[str, Any]:
    """Apply (or only record) and return the completed record as the history holds it."""
    if not requested:
        done = {**record, **unchanged_fields(store.read_effective().version)}
        store.record(done)
        return done
    result = store.apply(writer, requested, now, kind=kind, record=record, dry_run=dry_run)
    done = {**record, **applied_fields(result)}
    if dry_run:
        done["proposed_diff"] = proposed_diff(result)
    if not result.applied and record.get("decision") == "apply":
        done["decision"] = "hold"  # every change rejected by the guard (codes in "knobs")
    return done


def operator_unblock(
    *,
    store: StateStore,
    scope: str,
    reason: str,
    now: datetime,
    to_active: bool = False,
    config: GatesConfig,
    actor: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An operator lifts a block: the scope goes to probation (or active), recorded with why."""
    if not reason.strip():
        raise ConfigError("unblock needs --reason: say why the block is lifted (it is recorded)")
    registry = store.registry
    pocket, strategy = split_scope(scope)
    if pocket not in registry.pockets:
        raise ConfigError(
            f"unknown pocket {pocket!r} in {scope!r} (known: {', '.join(registry.pockets)})"
        )
    target = ScopeState(
        status=Status.ACTIVE if to_active else Status.PROBATION,
        reason=StepCode.OPERATOR_UNBLOCK.value,
        since=now,
        size_mult=1.0 if to_active else config.policy.probation_size,
    )
    requested = knobs_of(scope, target)
    validate_overlay(requested, registry)
    record = base_record(MECHANISM, now, shadow=False, run_id=uuid.uuid4().hex) | {
        "decision": "operator_unblock",
        "reasons": [StepCode.OPERATOR_UNBLOCK.value],
        "operator_reason": reason,
        "scope": scope,
        "strategy": strategy,
        "in_flight": None,
    }
    if actor is not None:
        record["actor"] = dict(actor)
    with store.lock(MECHANISM, timeout_s=10):
        states = read_states(store)
        before = states.get(scope, ScopeState())
        target = ScopeState(
            status=target.status,
            reason=target.reason,
            since=now,
            size_mult=target.size_mult,
            strikes=before.strikes,
        )
        record["transitions"] = [
            {
                "scope": scope,
                "from": before.status.value,
                "to": target.status.value,
                "code": StepCode.OPERATOR_UNBLOCK.value,
                "detail": reason,
            }
        ]
        out = _apply(
            store,
            requested,
            now,
            record,
            dry_run=False,
            writer=Owner.OPERATOR,
            kind=ApplyKind.OPERATOR,
        )
        doc = store.read_mechanism(MECHANISM)
        scopes = dict(doc.get("scopes", {}))
        scopes[scope] = target.to_json()
        store.write_mechanism(MECHANISM, {**doc, "scopes": scopes})
    return out


def scope_of_knob(knob: str) -> str | None:
    """``pockets.micro.allow_new`` -> ``micro``; a strategy key -> ``micro/<name>``; else None."""
    parts = knob.split(".")
    if len(parts) == 3 and parts[0] == "pockets":
        return parts[1]
    if len(parts) == 5 and parts[0] == "pockets" and parts[2] == "strategies":
        try:
            return f"{parts[1]}/{strategy_from_key(parts[3])}"
        except ValueError:
            return None
    return None


def record_operator_scopes(
    *, store: StateStore, knobs: Iterable[str], now: datetime, config: GatesConfig
) -> dict[str, str]:
    """Make the policy's state agree with values an operator wrote (``set``, ``undo``,
    ``rollback``), so its next run keeps them instead of re-applying its own.

    The caller holds the policy lock across its apply and this call. Each touched scope takes
    the state its knobs now stand for: ``allow_new`` false is a block of ``block_for`` (from
    now), true with ``size_mult`` 1 is active, below 1 probation at that size. Returns scope ->
    new status.
    """
    scopes = sorted({s for k in knobs if (s := scope_of_knob(k)) is not None})
    if not scopes:
        return {}
    values = store.current_values()
    doc = store.read_mechanism(MECHANISM)
    stored = dict(doc.get("scopes", {}))
    states = read_states(store)
    out: dict[str, str] = {}
    for scope in scopes:
        prefix = scope_knob_prefix(scope)
        allow = values.get(f"{prefix}allow_new", True)
        size = float(values.get(f"{prefix}size_mult", 1.0))
        before = states.get(scope, ScopeState())
        if allow is False:
            status, until = Status.BLOCKED, now + config.policy.block_for
        else:
            status, until = (Status.ACTIVE if size >= 1.0 else Status.PROBATION), None
        state = ScopeState(
            status=status,
            reason=StepCode.OPERATOR_UNBLOCK.value if allow is not False else "operator_block",
            since=now,
            until=until,
            size_mult=0.0 if allow is False else size,
            strikes=before.strikes,
        )
        stored[scope] = state.to_json()
        out[scope] = status.value
    store.write_mechanism(MECHANISM, {**doc, "scopes": stored})
    return out
