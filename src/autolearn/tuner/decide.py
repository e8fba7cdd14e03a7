"""The tuner's decision: trades + state + config + now -> one explained Decision value.

Order of one cycle, per knob family the tuner owns (registry ``owner: tuner`` with a proposer):

1. bootstrap: a family seen for the first time takes its current values as LKG (``bootstrap``);
2. reconcile: values changed by someone else (an operator ``rollback --to`` / ``set``, or a crash
   between apply and state write) end or adopt the change in flight, loudly;
3. judge the change in flight on the trades *opened under* its candidate values vs the trades
   opened under its LKG values (attribution by the pinned ``config_version``, legacy trades by
   entry time on the version timeline): hard limits, then the sequential judge;
   the shared lifecycle (``autolearn.core.lifecycle``, the same code as every learner): better
   -> promote to LKG; harm or a hard limit -> roll back to LKG (cooldown, or shadow mode per
   ``on_fail``); undecided at the deadline (candidate trades) -> revert or pause; else hold;
4. only when nothing was judged this run and fewer than ``max_in_flight`` changes are in flight:
   sufficiency (freeze with every reason), proposals on the current values, step-streak limit,
   the same apply guard the store runs; the first family with an adoptable change applies.

Counterfactual knobs (registry ``score``/``admits``, issue 12): when the shell read the family's
signals (``TuneInput.counterfactual``, every ``cf_every``), those knobs are proposed by
``proposers.counterfactual_entry`` instead of the expectancy rules; its freezes (model mismatch,
missing scores, candle problems) freeze the whole family, while the trade-count sufficiency then
holds only the knobs still on the expectancy rules. A family without any signal keeps the
expectancy rules (``cf_fallback:no_signals``). One counterfactual knob moves per flight, with
its forecast in the flight; the flight is then judged against the forecast
(``core.judge.judge_forecast``): contradicted -> roll back and freeze the family for
``cf_contradicted_freeze`` (``cf_contradicted``); confirmed -> promote.

Windows are "trades opened since the family's last change", never "the last 15 minutes", so
consecutive runs never judge overlapping windows of mixed configs (original-system.md 5.1).

Pure: no I/O, no clock; the shell (``cycle.py``) reads and writes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from autolearn.core.apply_guard import ApplyKind, KnobChange, guard_changes
from autolearn.core.judge import VersionTimeline
from autolearn.core.knobs import KnobSpec, KnobValue, Owner, step_value
from autolearn.core.lifecycle import (
    family_values,
    json_safe,
    judge_in_flight,
    reconcile,
    start_flight,
)
from autolearn.core.model import Trade
from autolearn.core.registry import Registry
from autolearn.core.timestamps import format_utc
from autolearn.errors import StateError
from autolearn.tuner.config import OnFail, TunerConfig
from autolearn.tuner.proposers import PROPOSERS, KnobProposal, Proposer, max_steps
from autolearn.tuner.proposers.counterfactual_entry import (
    CfForecast,
    CfKnob,
    CounterfactualData,
    evaluate_entry,
    scored_specs,
)
from autolearn.tuner.proposers.micro_entry import strategy_of
from autolearn.tuner.state import FamilyState, TunerState
from autolearn.tuner.sufficiency import Finding, check_sufficiency, ledger_staleness

__all__ = ["Decision", "TuneInput", "cf_due", "decide", "finalize_state", "json_safe"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TuneInput:
    """Everything one decision reads (the shell gathers it)."""

    trades: Sequence[Trade]  # closed in the read window, in close order
    registry: Registry
    version: str  # the current effective config version
    current: Mapping[str, KnobValue]  # registry defaults overlaid with the runtime layer
    recent_changes: Mapping[str, Sequence[KnobChange]]  # for the apply guard's pace limits
    writers: Mapping[str, str]  # knob -> last writer of its runtime value
    state: TunerState
    version_values: Mapping[str, Mapping[str, KnobValue]]  # runtime layer of each known version
    timeline: VersionTimeline  # for trades without a pinned config_version
    last_close_at: datetime | None
    now: datetime
    # family -> its signals and candles, for the families the shell found due (``cf_due``)
    counterfactual: Mapping[str, CounterfactualData] = field(default_factory=dict)


def cf_due(
    fs: FamilyState | None, specs: Sequence[KnobSpec], now: datetime, config: TunerConfig
) -> bool:
    """Whether the shell should read the family's signals and candles this run.

    Only an idle family with counterfactual knobs can use them (a flight is judged, a cooldown or
    freeze proposes nothing), at most every ``cf_every`` once signals were found.
    """
    if not scored_specs(specs):
        return False
    if fs is None:
        return True
    if fs.in_flight is not None or (fs.cooldown_until is not None and now < fs.cooldown_until):
        return False
    if fs.frozen_until is not None and now < fs.frozen_until:
        return False
    return fs.cf_at is None or now - fs.cf_at >= config.cf_every


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What the tuner decided and why; ``state`` assumes the requested change is applied."""

    decision: str  # apply | rollback | revert | promote | hold | freeze
    reasons: tuple[str, ...]
    kind: ApplyKind | None
    requests: dict[str, KnobValue]
    family: str | None  # the family acted on (apply / rollback / promote)
    actions: tuple[tuple[str, str], ...]  # (family, promote | rollback | revert) of the verdicts
    target_version: str | None  # the LKG snapshot a rollback restores
    considered: list[dict[str, Any]]
    metrics: dict[str, Any]
    verdicts: dict[str, Any]
    families: dict[str, Any]
    mode: str  # live | shadow (the tuner's own mode from its state)
    state: TunerState
    state_unapplied: TunerState  # when the requested change was not applied (race, shadow)


@dataclass(slots=True)
class _Run:
    """Mutable scratch of one decision (never escapes ``decide``)."""

    families: dict[str, FamilyState]
    status: dict[str, dict[str, Any]] = field(default_factory=dict)
    verdicts: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    considered: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    rollbacks: dict[str, KnobValue] = field(default_factory=dict)
    rollback_targets: list[str] = field(default_factory=list)
    acted: list[tuple[str, str]] = field(default_factory=list)  # (family, action)
    shadow_until: datetime | None = None
    forecasts: dict[str, CfForecast] = field(default_factory=dict)  # family -> its move's

    def note(self, family: str, code: str) -> None:
        self.reasons.append(f"{family}:{code}")
        self.status.setdefault(family, {}).setdefault("reasons", []).append(code)


def decide(inp: TuneInput, config: TunerConfig) -> Decision:
    """One tuner decision (see the module docstring for the order)."""
    specs_by_family = {
        f: specs for f, specs in inp.registry.families(Owner.TUNER).items() if f in PROPOSERS
    }
    run = _Run(families=dict(inp.state.families))
    mode = _mode(inp.state, inp.now)
    if inp.state.mode == "shadow" and mode == "live":
        run.reasons.append("shadow_period_over")
    for family, specs in specs_by_family.items():
        _reconcile(run, family, specs, inp)
    for family, specs in specs_by_family.items():
        fs = run.families[family]
        if fs.in_flight is not None:
            _judge_family(run, family, specs, PROPOSERS[family], inp, config)
    # The state if the change proposed below is not applied (the store's guard raced, shadow):
    # reconcile and verdicts stand, no flight starts. Taken before _propose_all, whose
    # _start_flight gives the chosen family a flight, a new changed_at and its streaks; copied
    # deeply so no later step can reach into it through a shared dict.
    unapplied = copy.deepcopy(_state_from(run, inp.state, mode))
    stale = ledger_staleness(inp.last_close_at, inp.now, config)
    requests: dict[str, KnobValue] = {}
    acted_family: str | None = None
    if not run.acted:
        requests, acted_family = _propose_all(run, specs_by_family, inp, config, stale)
    else:
        for family in specs_by_family:
            if run.families[family].in_flight is None and all(f != family for f, _ in run.acted):
                run.note(family, "deferred_after_verdict")
    return _assemble(run, inp, config, mode, requests, acted_family, stale, unapplied)


def _assemble(
    run: _Run,
    inp: TuneInput,
    config: TunerConfig,
    mode: str,
    requests: dict[str, KnobValue],
    acted_family: str | None,
    stale: Finding | None,
    unapplied: TunerState,
) -> Decision:
    actions = {action for _, action in run.acted}
    kind: ApplyKind | None = None
    target: str | None = None
    if actions & {"rollback", "revert"}:
        decision = "rollback" if "rollback" in actions else "revert"
        kind, requests = ApplyKind.ROLLBACK, dict(run.rollbacks)
        target = run.rollback_targets[0] if run.rollback_targets else None
        acted_family = next(f for f, a in run.acted if a == decision)
    elif "promote" in actions:
        decision = "promote"
        acted_family = next(f for f, a in run.acted if a == "promote")
    elif requests:
        decision, kind = "apply", ApplyKind.APPLY
    elif any(fs.in_flight is not None for fs in run.families.values()):
        decision = "hold"
    elif run.status and all(s.get("frozen") for s in run.status.values()):
        decision = "freeze"
    else:
        decision = "hold"
    if stale is not None:
        run.reasons.append(stale.code)
    metrics = {
        "window": {
            "trades": len(inp.trades),
            "last_close_at": format_utc(inp.last_close_at) if inp.last_close_at else None,
            "stale": stale.detail if stale else None,
        },
        "families": run.metrics,
    }
    return Decision(
        decision=decision,
        reasons=tuple(dict.fromkeys(run.reasons)),
        kind=kind,
        requests=requests,
        family=acted_family,
        actions=tuple(run.acted),
        target_version=target,
        considered=json_safe(run.considered),
        metrics=json_safe(metrics),
        verdicts=json_safe(run.verdicts),
        families=json_safe(run.status),
        mode=mode,
        state=_state_from(run, inp.state, mode),
        state_unapplied=unapplied,
    )


def _mode(state: TunerState, now: datetime) -> str:
    if state.mode == "shadow" and (state.shadow_until is None or now < state.shadow_until):
        return "shadow"
    return "live"


def _state_from(run: _Run, before: TunerState, mode: str) -> TunerState:
    if run.shadow_until is not None:
        return TunerState(families=dict(run.families), mode="shadow", shadow_until=run.shadow_until)
    if mode == "live":
        return TunerState(families=dict(run.families), mode="live", shadow_until=None)
    return TunerState(
        families=dict(run.families), mode=before.mode, shadow_until=before.shadow_until
    )


def _reconcile(run: _Run, family: str, specs: Sequence[KnobSpec], inp: TuneInput) -> None:
    """Bootstrap the family, or notice values someone else changed (the shared lifecycle)."""
    now_values = family_values(specs, inp.current)
    state, codes = reconcile(
        run.families.get(family), FamilyState, now_values, inp.version, inp.writers, inp.now
    )
    if "operator_change" in codes and isinstance(state, FamilyState) and state.frozen_code:
        # a human set the family's values: their judgement replaces the contradicted model's
        state = replace(state, frozen_code="", frozen_until=None)
        codes = [*codes, "unfrozen_by_operator"]
    run.families[family] = state
    for code in codes:
        run.note(family, code)


def _judge_family(
    run: _Run,
    family: str,
    specs: Sequence[KnobSpec],
    proposer: Proposer,
    inp: TuneInput,
    config: TunerConfig,
) -> None:
    """The shared lifecycle's verdict on the family's change in flight, and the tuner's extras."""
    fs = run.families[family]
    assert fs.in_flight is not None  # the caller checked
    forecast = _forecast_of(fs)
    # a counterfactual change is one strategy's threshold: judged on that strategy's trades
    relevant = [
        t
        for t in inp.trades
        if proposer.relevant(t, config) and (forecast is None or t.strategy == forecast.strategy)
    ]
    result = judge_in_flight(
        fs,
        relevant,
        {s.name: s.default for s in specs},
        family_values(specs, inp.current),
        inp.version_values,
        inp.timeline,
        inp.now,
        config.flight,
        forecast=forecast.band(config.cf_confirm_trades) if forecast else None,
    )
    run.verdicts[family] = result.verdict
    run.status.setdefault(family, {})["in_flight"] = fs.in_flight.to_json()
    run.note(family, result.code)
    new = result.state
    assert isinstance(new, FamilyState)
    if result.code.startswith("rollback:cf_contradicted"):
        # the model that proposed it was wrong: no new counterfactual move until a human looks
        new = replace(
            new, frozen_code="cf_contradicted", frozen_until=inp.now + config.cf_contradicted_freeze
        )
        run.note(family, "cf_contradicted")
    if result.action == "promote":
        run.families[family] = replace(new, streaks={})
        run.acted.append((family, "promote"))
        return
    run.families[family] = new
    if result.action not in ("rollback", "revert"):
        return
    run.rollbacks.update(result.rollback)
    if result.target_version:
        run.rollback_targets.append(result.target_version)
    run.acted.append((family, result.action))
    if result.action == "rollback" and config.on_fail is OnFail.SHADOW:
        run.shadow_until = inp.now + config.shadow_period
        run.note(family, "on_fail_shadow")


def _propose_all(
    run: _Run,
    specs_by_family: Mapping[str, Sequence[KnobSpec]],
    inp: TuneInput,
    config: TunerConfig,
    stale: Finding | None,
) -> tuple[dict[str, KnobValue], str | None]:
    in_flight = sum(1 for fs in run.families.values() if fs.in_flight is not None)
    order = sorted(
        specs_by_family,
        key=lambda f: (
            run.families[f].changed_at or datetime.min.replace(tzinfo=inp.now.tzinfo),
            f,
        ),
    )
    chosen: dict[str, KnobValue] = {}
    chosen_family: str | None = None
    for family in order:
        fs = run.families[family]
        if fs.in_flight is not None:
            continue
        adoptable = _propose_family(run, family, specs_by_family[family], inp, config, stale)
        if not adoptable:
            continue
        if chosen_family is None and in_flight < config.max_in_flight:
            chosen, chosen_family = adoptable, family
            _start_flight(run, family, specs_by_family[family], adoptable, inp, config)
            run.note(family, "apply")
        else:
            run.note(family, "queued_max_in_flight")
            for entry in run.considered:
                if entry["family"] == family and entry["code"] == "adopted":
                    entry.update(adopted=False, code="queued_max_in_flight")
    return chosen, chosen_family


def _propose_family(
    run: _Run,
    family: str,
    specs: Sequence[KnobSpec],
    inp: TuneInput,
    config: TunerConfig,
    stale: Finding | None,
) -> dict[str, KnobValue]:
    """Sufficiency, proposals, streak limit and guard for one family; the adoptable values."""
    fs = run.families[family]
    proposer = PROPOSERS[family]
    since = fs.changed_at
    window = [
        t
        for t in inp.trades
        if proposer.relevant(t, config) and (since is None or t.entry_at >= since)
    ]
    findings, cf = _held_or_counterfactual(run, family, specs, inp, config, stale)
    trade_findings = check_sufficiency(proposer, window, config)
    if cf is not None and stale is not None:
        trade_findings.insert(0, stale)  # the rule knobs still wait for a fresh trade ledger
    rule_specs = [s for s in specs if cf is None or s.name not in cf.knobs]
    evidence = proposer.propose(window, rule_specs, inp.current, config)
    trade_findings += [Finding(code=code, detail=detail) for code, detail in evidence.freeze]
    # Without counterfactual knobs, the trade findings freeze the family as always; with them,
    # only the knobs still on the expectancy rules wait for trades (the counterfactual has its
    # own sufficiency: days and admitted signals).
    knob_findings: list[Finding] = []
    if cf is None:
        findings += trade_findings
    else:
        findings += cf.freeze
        knob_findings = trade_findings
    status = run.status.setdefault(family, {})
    status.update(
        n_since_change=len(window),
        changed_at=format_utc(since) if since else None,
        lkg_version=fs.lkg_version,
        findings=[{"code": f.code, "detail": f.detail} for f in findings],
        frozen=bool(findings),
    )
    if knob_findings:
        status["rule_knob_findings"] = [{"code": f.code, "detail": f.detail} for f in knob_findings]
    run.metrics[family] = {"n_since_change": len(window), **evidence.metrics}
    if cf is not None:
        run.metrics[family]["counterfactual"] = cf.metrics
    for finding in findings:
        run.note(family, finding.code)
    entries = _entries(run, family, specs, evidence.proposals, cf, inp)
    wanted, steps_of = _wanted(entries, fs, bool(findings), bool(knob_findings), cf, config)
    if not findings and not wanted:
        run.note(family, "no_signal")
    adoptable: dict[str, KnobValue] = {}
    for decision in guard_changes(
        inp.registry, Owner.TUNER, inp.current, inp.recent_changes, wanted, inp.now
    ):
        entries[decision.knob].update(code=decision.code.value, adopted=decision.adopted)
        if decision.adopted:
            adoptable[decision.knob] = wanted[decision.knob]
        else:
            run.note(family, f"guard:{decision.code.value}")
    run.status[family]["steps"] = {k: steps_of[k] for k in adoptable}
    if cf is not None:
        moved = [cf.knobs[k].forecast for k in adoptable if k in cf.knobs]
        if moved and moved[0] is not None:
            run.forecasts[family] = moved[0]
    return adoptable


def _held_or_counterfactual(
    run: _Run,
    family: str,
    specs: Sequence[KnobSpec],
    inp: TuneInput,
    config: TunerConfig,
    stale: Finding | None,
) -> tuple[list[Finding], _CfPart | None]:
    """What holds the whole family, and the counterfactual's part (evaluated when not held).

    A family with counterfactual knobs learns from the signal log and the candles: a trade
    ledger gone quiet (a pocket the policy blocked makes no trades) holds only its knobs on the
    expectancy rules; the counterfactual checks the signal log's own freshness. A change
    applied then waits for trades in flight (deadlines count candidate trades, not hours).
    """
    fs = run.families[family]
    has_cf = bool(scored_specs(specs))
    findings = _family_findings(fs, None if has_cf else stale, inp)
    if not findings:
        cf = _counterfactual(run, family, specs, inp, config)
    else:
        cf = _cf_held(fs, specs, inp)
        if cf is not None and family in inp.counterfactual:
            # read but not usable this run: the next read waits cf_every like an evaluation
            # (a family held for hours would otherwise re-read 30 days of signals every run)
            run.families[family] = replace(fs, cf_at=inp.now)
    if has_cf and cf is None and stale is not None:  # no signals after all: held as before
        findings.insert(0, stale)
    return findings, cf


def _family_findings(fs: FamilyState, stale: Finding | None, inp: TuneInput) -> list[Finding]:
    """What holds the whole family whatever its evidence: stale ledger, cooldown, a freeze."""
    found = [stale] if stale is not None else []
    if fs.cooldown_until is not None and inp.now < fs.cooldown_until:
        found.append(
            Finding(
                code="cooldown", detail=f"after a rollback, until {format_utc(fs.cooldown_until)}"
            )
        )
    if fs.frozen_until is not None and inp.now < fs.frozen_until:
        found.append(
            Finding(
                code=fs.frozen_code or "frozen",
                detail=(
                    f"the live trades contradicted the last counterfactual forecast; no move "
                    f"until {format_utc(fs.frozen_until)} (or an operator's set)"
                ),
            )
        )
    return found


@dataclass(frozen=True, slots=True)
class _CfPart:
    """The counterfactual's share of one family's proposal."""

    knobs: dict[str, CfKnob]
    freeze: list[Finding]
    metrics: dict[str, Any]


def _cf_held(fs: FamilyState, specs: Sequence[KnobSpec], inp: TuneInput) -> _CfPart | None:
    """The counterfactual knobs of a family held as a whole (stale, cooldown, freeze).

    Not evaluated (nothing could move), but kept off the expectancy rules all the same.
    """
    scored = scored_specs(specs)
    if not scored or (fs.cf_at is None and not inp.counterfactual.get(_family_of(specs))):
        return None
    knobs = {
        s.name: CfKnob(knob=s.name, steps=0, code="cf_held", detail="the family is held")
        for s in scored
    }
    return _CfPart(knobs=knobs, freeze=[], metrics={"evaluated": False})


def _family_of(specs: Sequence[KnobSpec]) -> str:
    """The family of ``specs`` (all share one)."""
    return specs[0].family if specs else ""


def _counterfactual(
    run: _Run, family: str, specs: Sequence[KnobSpec], inp: TuneInput, config: TunerConfig
) -> _CfPart | None:
    """The counterfactual knobs' choices, or None: the family keeps the expectancy rules."""
    scored = scored_specs(specs)
    fs = run.families[family]
    data = inp.counterfactual.get(family)
    if not scored or (data is None and fs.cf_at is None):
        return None
    if data is None:  # evaluated recently: hold until the next look, never the expectancy rules
        detail = (
            f"last evaluated {format_utc(fs.cf_at) if fs.cf_at else '-'}, every {config.cf_every}"
        )
        knobs = {
            s.name: CfKnob(knob=s.name, steps=0, code="cf_not_due", detail=detail) for s in scored
        }
        return _CfPart(knobs=knobs, freeze=[], metrics={"evaluated": False})
    strategies = {s.strategy for s in data.signals}
    active = [s for s in scored if strategy_of(s.name) in strategies]
    if not active:
        run.note(family, "cf_fallback:no_signals")
        run.families[family] = replace(fs, cf_at=None)
        return None
    recorded = {t.broker_trade_id: t.pl_pips for t in inp.trades if t.broker_trade_id}
    evidence = evaluate_entry(data, active, inp.current, recorded, config)
    run.families[family] = replace(fs, cf_at=inp.now)
    return _CfPart(
        knobs={k.knob: k for k in evidence.knobs},
        freeze=[Finding(code=code, detail=detail) for code, detail in evidence.freeze],
        metrics={"evaluated": True, **evidence.metrics},
    )


def _entries(
    run: _Run,
    family: str,
    specs: Sequence[KnobSpec],
    proposals: Sequence[KnobProposal],
    cf: _CfPart | None,
    inp: TuneInput,
) -> dict[str, dict[str, Any]]:
    """One ``considered`` entry per proposal (expectancy rules and counterfactual alike)."""
    specs_by_name = {s.name: s for s in specs}
    moves: list[tuple[str, int, str, str, CfKnob | None]] = [
        (p.knob, p.steps, p.code, p.detail, None) for p in proposals
    ]
    if cf is not None:
        moves += [(k.knob, k.steps, k.code, k.detail, k) for k in cf.knobs.values()]
    entries: dict[str, dict[str, Any]] = {}
    for knob, wanted_steps, code, detail, cf_knob in moves:
        spec = specs_by_name[knob]
        current = inp.current.get(spec.name, spec.default)
        limit = max_steps(spec)
        steps = max(-limit, min(limit, wanted_steps))
        entry: dict[str, Any] = {
            "knob": spec.name,
            "family": family,
            "current": current,
            "proposed": step_value(spec, current, steps) if steps else current,
            "steps": steps,
            "rule": code,
            "detail": detail,
            "adopted": False,
            "code": code,
        }
        if cf_knob is not None:
            entry["counterfactual"] = cf_knob.choice
            entry["forecast"] = cf_knob.forecast.to_json() if cf_knob.forecast else None
            entry["gain_low"] = cf_knob.gain_low
        entries[spec.name] = entry
        run.considered.append(entry)
    return entries


def _wanted(
    entries: Mapping[str, dict[str, Any]],
    fs: FamilyState,
    frozen: bool,
    rules_held: bool,
    cf: _CfPart | None,
    config: TunerConfig,
) -> tuple[dict[str, KnobValue], dict[str, int]]:
    """The moves the guard is asked about; each other entry says why it does not move."""
    wanted: dict[str, KnobValue] = {}
    steps_of: dict[str, int] = {}
    cf_knobs = cf.knobs if cf is not None else {}
    for knob, entry in entries.items():
        steps, proposed = int(entry["steps"]), entry["proposed"]
        if frozen or (rules_held and knob not in cf_knobs):
            entry["code"] = "frozen"
        elif steps == 0:
            entry["code"] = entry["code"] if knob in cf_knobs else "no_signal"
        elif proposed == entry["current"]:
            entry["code"] = "at_bound"
        elif _streak_blocked(fs, knob, steps, config):
            entry["code"] = "step_limit"
        else:
            wanted[knob] = proposed
            steps_of[knob] = steps
    moving_cf = [k for k in wanted if k in cf_knobs]
    if moving_cf:
        # one counterfactual knob per flight, the best confirmed gain: the live check compares
        # one strategy's trades with one forecast
        best = max(moving_cf, key=lambda k: (entries[k].get("gain_low") or -math.inf, k))
        for knob in list(wanted):
            if knob != best:
                entries[knob]["code"] = "cf_one_per_flight"
                del wanted[knob], steps_of[knob]
    return wanted, steps_of


def _forecast_of(fs: FamilyState) -> CfForecast | None:
    """The counterfactual forecast the family's change in flight was proposed with, if any."""
    flight = fs.in_flight
    doc = getattr(flight, "forecast", None)
    if not doc:
        return None
    try:
        return CfForecast.from_json(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(
            f"mechanisms/tuner.json: malformed forecast of the change in flight ({exc}); fix or "
            "move the file aside"
        ) from exc


def _streak_blocked(fs: FamilyState, knob: str, steps: int, config: TunerConfig) -> bool:
    direction, count = fs.streaks.get(knob, (0, 0))
    return direction == _sign(steps) and count >= config.max_same_direction_steps


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


def _start_flight(
    run: _Run,
    family: str,
    specs: Sequence[KnobSpec],
    adopted: Mapping[str, KnobValue],
    inp: TuneInput,
    config: TunerConfig,
) -> None:
    fs = run.families[family]
    steps = dict(run.status[family].get("steps", {}))
    streaks = dict(fs.streaks)
    for knob, s in steps.items():
        direction, count = streaks.get(knob, (0, 0))
        streaks[knob] = (_sign(s), count + 1 if direction == _sign(s) else 1)
    values = {**family_values(specs, inp.current), **adopted}
    forecast = run.forecasts.get(family)
    started = start_flight(
        fs,
        values,
        inp.now,
        config.flight,
        split_id=f"{Owner.TUNER.value}/{family}/{format_utc(inp.now)}",
        steps=steps,
        forecast=forecast.to_json() if forecast else None,
    )
    run.families[family] = replace(started, streaks=streaks)


def finalize_state(
    decision: Decision, *, applied: bool, version_after: str, values_after: Mapping[str, KnobValue]
) -> TunerState:
    """The state to store after the shell applied (or could not apply) ``decision``.

    An APPLY learns its candidate version (and the values the guard really adopted) only here.
    A change that was not applied leaves the state as if it had not been requested.
    """
    if decision.kind is None:
        return decision.state
    if not applied:
        return decision.state_unapplied
    if decision.kind is not ApplyKind.APPLY or decision.family is None:
        return decision.state
    families = dict(decision.state.families)
    fs = families[decision.family]
    assert fs.in_flight is not None  # set by _start_flight for an APPLY
    values = {k: values_after.get(k, v) for k, v in fs.in_flight.values.items()}
    families[decision.family] = replace(
        fs, in_flight=replace(fs.in_flight, version=version_after, values=values)
    )
    return replace(decision.state, families=families)
