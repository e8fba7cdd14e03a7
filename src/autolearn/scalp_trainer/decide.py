"""The scalp trainer's decision: M1Scalper trades + state + config + now -> one explained Decision.

Order of one run (one family, ``scalp.m1``, owned by ``scalp_trainer`` in the registry):

1. bootstrap / reconcile (``lifecycle.reconcile``): the first run takes the current values as
   the LKG; values someone else changed end or adopt the change in flight, loudly;
2. a change in flight is judged live by the shared judge on the strategy's trades opened under
   it vs under the LKG: pass -> promote, fail or deadline -> roll back to the LKG (cooldown),
   else hold. Nothing new is proposed while a change is in flight;
3. the sufficiency gate on the trades opened since the family's last change: a fresh ledger,
   ``min_trades``, win-rate evidence (``min_decisive``, an interval narrow enough, and not
   clearly below ``min_win_rate``: a losing strategy is the policy's job, not a reason to turn
   knobs), and the cooldown. Any finding freezes the family with every reason;
4. rules (``rules.targets``) read intervals and name targets; each knob moves from its
   **current** value toward its target by at most ``max_step``; the apply guard (the same one
   the store runs) filters the result.

Only trades with ``strategy == config.strategy`` are evidence (the original mixed every scalp
strategy into M1Scalper's knobs, original-system.md 5.7). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from autolearn.core.apply_guard import ApplyKind, KnobChange, guard_changes
from autolearn.core.judge import VersionTimeline
from autolearn.core.knobs import KnobSpec, KnobValue, Owner, approach
from autolearn.core.lifecycle import (
    FamilyState,
    family_values,
    json_safe,
    judge_in_flight,
    reconcile,
    start_flight,
)
from autolearn.core.model import Trade
from autolearn.core.registry import Registry
from autolearn.core.timestamps import format_utc
from autolearn.errors import ConfigError
from autolearn.scalp_trainer.config import ScalpTrainerConfig
from autolearn.scalp_trainer.counterfactual import (
    TIMEOUT_SUFFIX,
    ExitCfAnswer,
    ExitCfData,
    evaluate_timeout,
)
from autolearn.scalp_trainer.rules import Evidence, gather, targets
from autolearn.scalp_trainer.state import ScalpFamilyState, ScalpInFlight

__all__ = ["Decision", "Finding", "ScalpInput", "check_sufficiency", "decide", "json_safe"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScalpInput:
    """Everything one decision reads (the shell gathers it)."""

    trades: Sequence[Trade]  # closed in the read window (any strategy: filtered here too)
    registry: Registry
    version: str
    current: Mapping[str, KnobValue]  # registry defaults overlaid with the runtime layer
    recent_changes: Mapping[str, Sequence[KnobChange]]
    writers: Mapping[str, str]  # knob -> last writer of its runtime value
    state: FamilyState | None  # None before the first run
    version_values: Mapping[str, Mapping[str, KnobValue]]
    timeline: VersionTimeline
    now: datetime
    # the strategy's taken signals, their trades' pips and the candles, when the shell read
    # them (the family could move): the timeout knob is then judged on re-simulated trades
    counterfactual: ExitCfData | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One failed sufficiency check (any finding freezes the family)."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What the trainer decided and why; ``state`` assumes the requested change is applied."""

    decision: str  # apply | rollback | revert | promote | pause | hold | freeze
    reasons: tuple[str, ...]
    kind: ApplyKind | None
    requests: dict[str, KnobValue]
    target_version: str | None
    considered: list[dict[str, Any]]
    metrics: dict[str, Any]
    verdict: dict[str, Any] | None
    state: FamilyState
    state_unapplied: FamilyState


def _specs(registry: Registry, config: ScalpTrainerConfig) -> list[KnobSpec]:
    specs = registry.families(Owner.SCALP_TRAINER).get(config.family, [])
    if not specs:
        raise ConfigError(
            f"the registry has no knob of family {config.family!r} owned by scalp_trainer; "
            "add the M1Scalper knobs (see the packaged knobs.yaml) or fix `family`"
        )
    return specs


def check_sufficiency(
    window: Sequence[Trade],
    evidence: Evidence,
    state: FamilyState,
    config: ScalpTrainerConfig,
    now: datetime,
) -> list[Finding]:
    """Every reason the family may not move now (empty: it may)."""
    found: list[Finding] = []
    newest = max((t.close_at for t in window), default=None)
    if newest is None or now - newest > config.stale_after:
        age = "no trade" if newest is None else f"newest close {format_utc(newest)}"
        found.append(Finding(code="stale_ledger", detail=f"{age}; limit {config.stale_after}"))
    if len(window) < config.min_trades:
        found.append(
            Finding(
                code="min_trades",
                detail=f"{len(window)} {config.strategy} trades since the last change "
                f"< {config.min_trades}",
            )
        )
    wr = evidence.win_rate
    if evidence.decisive < config.min_decisive:
        found.append(
            Finding(
                code="win_rate_evidence",
                detail=f"{evidence.decisive} trades past +-{config.scratch_pips} pips "
                f"< {config.min_decisive}",
            )
        )
    elif wr.high - wr.low > config.max_win_rate_width:
        found.append(
            Finding(
                code="win_rate_evidence",
                detail=f"win-rate interval [{wr.low:.3f}, {wr.high:.3f}] wider than "
                f"{config.max_win_rate_width}",
            )
        )
    elif wr.high < config.min_win_rate:
        found.append(
            Finding(
                code="win_rate_floor",
                detail=f"win-rate interval [{wr.low:.3f}, {wr.high:.3f}] below "
                f"{config.min_win_rate}: a losing strategy is for the policy to block",
            )
        )
    if state.cooldown_until is not None and now < state.cooldown_until:
        found.append(
            Finding(
                code="cooldown",
                detail=f"after a rollback, until {format_utc(state.cooldown_until)}",
            )
        )
    return found


def decide(inp: ScalpInput, config: ScalpTrainerConfig) -> Decision:
    """One scalp-trainer decision (see the module docstring for the order)."""
    specs = _specs(inp.registry, config)
    now_values = family_values(specs, inp.current)
    relevant = [t for t in inp.trades if t.strategy == config.strategy]
    state, notes = reconcile(
        inp.state, ScalpFamilyState, now_values, inp.version, inp.writers, inp.now
    )
    reasons = list(notes)
    in_flight = state.in_flight
    band = (
        in_flight.band(config.counterfactual.confirm_trades)
        if isinstance(in_flight, ScalpInFlight)
        else None
    )
    flight = judge_in_flight(
        state,
        relevant,
        {s.name: s.default for s in specs},
        now_values,
        inp.version_values,
        inp.timeline,
        inp.now,
        config.flight,
        forecast=band,
    )
    base = {"n_relevant": len(relevant), "n_other_strategies": len(inp.trades) - len(relevant)}
    if flight.action != "none":
        reasons.append(flight.code)
        after = flight.state
        if flight.code.startswith("rollback:cf_contradicted"):
            # the model that proposed it was wrong: the family waits (an operator's set ends it)
            until = inp.now + config.counterfactual.contradicted_freeze
            after = replace(after, cooldown_until=max(after.cooldown_until or until, until))
            reasons.append("cf_contradicted")
        kind = ApplyKind.ROLLBACK if flight.rollback else None
        return Decision(
            decision=flight.action,
            reasons=tuple(reasons),
            kind=kind,
            requests=dict(flight.rollback),
            target_version=flight.target_version,
            considered=[],
            metrics=json_safe(base),
            verdict=json_safe(flight.verdict),
            state=after,
            state_unapplied=state,
        )
    since = state.changed_at
    window = [t for t in relevant if since is None or t.entry_at >= since]
    evidence = gather(window, config)
    findings = check_sufficiency(window, evidence, state, config, inp.now)
    cooling = state.cooldown_until is not None and inp.now < state.cooldown_until
    cf = _counterfactual(specs, inp, config)
    metrics = base | {
        "n_since_change": len(window),
        "changed_at": format_utc(since) if since else None,
        "evidence": evidence.as_dict(),
        "findings": [{"code": f.code, "detail": f.detail} for f in findings],
    }
    if cf is not None:
        metrics["counterfactual"] = {"knob": cf.knob, "code": cf.code, **cf.evidence}
    considered, wanted = _proposals(
        specs, evidence, inp, config, frozen=bool(findings), cf=cf, cooling=cooling
    )
    reasons += [f.code for f in findings]
    if cf is not None:
        reasons += [code for code, _ in cf.freeze]
    adoptable = _guard(inp, wanted, considered)
    if adoptable:
        decision = "apply"
        reasons.append("apply")
    elif findings or (cf is not None and cf.freeze):
        decision = "freeze"
    else:
        decision = "hold"
        reasons.append("no_signal" if not wanted else "guard_rejected")
    forecast = cf.forecast if cf is not None and cf.knob in adoptable else None
    proposed = (
        start_flight(
            state,
            {**now_values, **adoptable},
            inp.now,
            config.flight,
            split_id=f"{Owner.SCALP_TRAINER.value}/{config.family}/{format_utc(inp.now)}",
            forecast=forecast,
        )
        if adoptable
        else state
    )
    return Decision(
        decision=decision,
        reasons=tuple(dict.fromkeys(reasons)),
        kind=ApplyKind.APPLY if adoptable else None,
        requests=adoptable,
        target_version=None,
        considered=json_safe(considered),
        metrics=json_safe(metrics),
        verdict=None,
        state=proposed,
        state_unapplied=state,
    )


def timeout_spec(specs: Sequence[KnobSpec]) -> KnobSpec | None:
    """The family's timeout knob, the one judged on re-simulated trades (None: no such knob)."""
    return next((s for s in specs if s.name.rsplit(".", 1)[-1] == TIMEOUT_SUFFIX), None)


def _counterfactual(
    specs: Sequence[KnobSpec], inp: ScalpInput, config: ScalpTrainerConfig
) -> ExitCfAnswer | None:
    spec = timeout_spec(specs)
    data = inp.counterfactual
    if spec is None or data is None or not config.counterfactual.enabled:
        return None
    if not any(s.taken for s in data.signals):
        return None  # no signal log for this strategy: the rules, as before
    current = float(inp.current.get(spec.name, spec.default))
    return evaluate_timeout(data, spec, current, config.counterfactual)


def _proposals(
    specs: Sequence[KnobSpec],
    evidence: Evidence,
    inp: ScalpInput,
    config: ScalpTrainerConfig,
    *,
    frozen: bool,
    cf: ExitCfAnswer | None = None,
    cooling: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, KnobValue]]:
    """One ``considered`` entry per knob; ``frozen`` (a sufficiency finding) holds the rule
    knobs, while the counterfactual knob has its own evidence and is held only by a cooldown
    or its own freeze."""
    by_name = {s.name: s for s in specs}
    considered: list[dict[str, Any]] = []
    wanted: dict[str, KnobValue] = {}
    current = {s.name: inp.current.get(s.name, s.default) for s in specs}
    for target in targets(evidence, list(by_name), current, config):
        spec = by_name[target.knob]
        entry: dict[str, Any] = {
            "knob": target.knob,
            "current": current[target.knob],
            "rule": target.code,
            "detail": target.detail,
            "target": None,
            "proposed": current[target.knob],
            "adopted": False,
            "code": target.code,
        }
        considered.append(entry)
        goal: KnobValue | None = target.value
        held = frozen
        if cf is not None and target.knob == cf.knob:
            entry.update(rule=cf.code, detail=cf.detail, code=cf.code, counterfactual=cf.evidence)
            goal = cf.proposed if cf.moves else None
            held = cooling or bool(cf.freeze)
            if cf.freeze:
                entry["code"] = "frozen"
        if goal is None:
            continue
        step = approach(spec, current[target.knob], goal)
        entry.update(target=step.target, proposed=step.proposed, steps=step.steps)
        if step.clipped:
            # a far target is approached one max_step at a time, each step judged live
            entry["approach"] = f"clipped: {step.steps} of {step.needed} grid steps (max_step)"
        if held:
            entry["code"] = "frozen"
        elif step.steps == 0:
            entry["code"] = "at_target"
        else:
            wanted[target.knob] = step.proposed
    return considered, wanted


def _guard(
    inp: ScalpInput, wanted: Mapping[str, KnobValue], considered: list[dict[str, Any]]
) -> dict[str, KnobValue]:
    entries = {e["knob"]: e for e in considered}
    adoptable: dict[str, KnobValue] = {}
    for verdict in guard_changes(
        inp.registry, Owner.SCALP_TRAINER, inp.current, inp.recent_changes, wanted, inp.now
    ):
        entries[verdict.knob].update(code=verdict.code.value, adopted=verdict.adopted)
        if verdict.adopted:
            adoptable[verdict.knob] = wanted[verdict.knob]
    return adoptable
