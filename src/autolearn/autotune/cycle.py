"""The autotune run (its own timer): judge the change in flight, else search and maybe propose.

1. lock ``autotune`` (a second run records ``lock_busy``); read state and the operator switch;
2. reconcile and judge the change in flight live on the bot's own ``TrendMA`` trades (shared
   judge via ``lifecycle``): promote / roll back / hold. While a change is in flight, no search
   runs (CPU stays with the bot; a new proposal would confound the verdict);
3. otherwise (not frozen, no cooldown, fresh candles, folds long enough): extend the Optuna
   study on the recent window's train blocks, take the winner, deflate its Sharpe by the number
   of trials, evaluate incumbent, winner and the bounded step on the validation blocks, and gate
   (``decide.gate``). A frozen autotune skips the search (it could apply nothing, and the CPU
   belongs to the bot) and records ``frozen``; folds whose training blocks are shorter than
   ``min_train_bars`` hold with ``folds_too_short`` and the numbers, before any trial; a study
   that is not complete (a dead worker's trial still pending) holds with ``study_incomplete``;
   several hosts on one study decide once: the first live run to decide writes the study's
   ``decided`` marker under the study's lock, the others hold with ``already_decided`` (who
   decided what, when);
4. ``apply`` goes through ``StateStore.apply(Owner.AUTOTUNE, ...)`` (the guard; ``dry_run`` in
   shadow / frozen) with the run record; ``hold`` is recorded with every reason.

Candles: the given ones (a file: ``--candles`` / ``AUTOLEARN_CANDLES`` / ``candles_path``), or
the ledger's candle store (``config.instrument`` / ``config.granularity``, the bars that can
reach the window: ``store_candles``); the study's workers re-read the same window from the same
place and refuse it when its fingerprint changed.

Must not: read the clock (``now`` is a parameter) or write knob values other than via apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from autolearn.adapters.logs import redact
from autolearn.adapters.state import StateStore
from autolearn.autotune.config import AutotuneConfig
from autolearn.autotune.decide import bounded_step, gate, summary
from autolearn.autotune.selection import deflate
from autolearn.autotune.shared import worker_name
from autolearn.autotune.study import (
    Evaluation,
    StudyResults,
    StudySpec,
    candle_window,
    decide_once,
    default_storage_url,
    evaluate,
    make_spec,
    run_workers,
    search_space,
    study_results,
)
from autolearn.autotune.walkforward import fold_shortfall, walk_forward
from autolearn.backtest import Candles, get_strategy
from autolearn.core.apply_guard import ApplyKind
from autolearn.core.knobs import KnobSpec, KnobValue, Owner
from autolearn.core.lifecycle import (
    FamilyState,
    family_values,
    finalize,
    json_safe,
    judge_in_flight,
    parse_state,
    reconcile,
    split_of,
    start_flight,
)
from autolearn.core.timestamps import format_utc, from_epoch_us, to_epoch_us
from autolearn.errors import ConfigError
from autolearn.ledger._base import Ledger
from autolearn.mechanism import (
    applied_fields,
    base_record,
    outcome_fields,
    proposed_diff,
    run_locked,
    unchanged_fields,
    version_context,
)

__all__ = ["run_cycle", "store_candles"]

_MECHANISM = "autotune"


def run_cycle(
    store: StateStore,
    ledger: Ledger,
    config: AutotuneConfig,
    candles: Candles | None,
    candles_path: Path | None,
    now: datetime,
    *,
    storage_url: str | None = None,
    n_trials: int | None = None,
    workers: int = 1,
    shadow: bool = False,
    run_id: str | None = None,
    ledger_url: str | None = None,
) -> dict[str, Any]:
    """One autotune run; returns its record (already appended to the history).

    ``candles_path`` None means the candles come from the ledger's store (read here when
    ``candles`` is None too); the workers then re-read them through ``ledger_url`` (required
    once a study runs: the ``Ledger`` seam does not reveal its URL, which may hold a password).
    """
    base = base_record(_MECHANISM, now, shadow=shadow, run_id=run_id)

    def locked() -> dict[str, Any]:
        bars = candles if candles is not None else store_candles(ledger, config, now)
        source = _Source(path=candles_path, ledger_url=ledger_url)
        run = _Run(store, ledger, config, now, shadow, base)
        return run.go(bars, source, storage_url, n_trials, workers)

    return run_locked(store, base, locked)


def store_candles(ledger: Ledger, config: AutotuneConfig, now: datetime) -> Candles:
    """The stored bars that can fall in a window: newer than ``window + max_candle_age``.

    An older newest bar makes the run hold ``stale_candles`` anyway, so nothing earlier is read.
    """
    return ledger.candles(
        config.instrument,
        granularity=config.granularity,
        since=now - config.window - config.max_candle_age,
        until=now + timedelta(microseconds=1),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Verdict:
    """The decision on a complete study, before the once-per-study check and the apply."""

    decision: str  # "apply" or "hold"
    reasons: list[str]
    extra: dict[str, Any]
    requests: dict[str, KnobValue] = field(default_factory=dict)
    proposed: FamilyState | None = None  # the state with the change in flight (apply only)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Source:
    """Where the candles came from: a file, or the ledger's store (``path`` None)."""

    path: Path | None
    ledger_url: str | None


class _Run:
    """One locked run (the shell's scratch; never escapes ``run_cycle``)."""

    def __init__(
        self,
        store: StateStore,
        ledger: Ledger,
        config: AutotuneConfig,
        now: datetime,
        shadow: bool,
        base: dict[str, Any],
    ) -> None:
        self.store, self.ledger, self.config, self.now = store, ledger, config, now
        self.frozen = store.is_frozen(_MECHANISM)
        self.live = not shadow and not self.frozen[0]
        self.base = base
        self.effective = store.read_effective()
        self.specs = self._specs()
        self.current = family_values(list(self.specs.values()), store.current_values())
        stored = parse_state(
            FamilyState, store.read_mechanism(_MECHANISM), f"mechanisms/{_MECHANISM}.json"
        )
        writers = {k: str(v.get("writer", "")) for k, v in self.effective.sources.items()}
        self.state, self.notes = reconcile(
            stored, FamilyState, self.current, self.effective.version, writers, now
        )

    def _specs(self) -> dict[str, KnobSpec]:
        family = self.store.registry.families(Owner.AUTOTUNE).get(self.config.family, [])
        if not family:
            raise ConfigError(
                f"the registry has no knob of family {self.config.family!r} owned by autotune"
            )
        by_name = {s.name: s for s in family}
        names = self.config.knob_names()
        missing = sorted(set(names) - set(by_name))
        if missing:
            raise ConfigError(f"autotune knob_map names unregistered knobs: {missing}")
        return {k: by_name[k] for k in names}

    def go(
        self,
        candles: Candles,
        source: _Source,
        storage_url: str | None,
        n_trials: int | None,
        workers: int,
    ) -> dict[str, Any]:
        flight = self._judge()
        if flight is not None:
            return flight
        if self.frozen[0]:
            return self._hold(["search_skipped:frozen"], {})
        if self.state.cooldown_until is not None and self.now < self.state.cooldown_until:
            return self._hold([f"cooldown_until:{format_utc(self.state.cooldown_until)}"], {})
        end_us = min(int(candles.time_us[-1]), to_epoch_us(self.now)) if len(candles) else 0
        newest = from_epoch_us(end_us) if len(candles) else None
        if newest is None or self.now - newest > self.config.max_candle_age:
            seen = format_utc(newest) if newest else "none"
            return self._hold([f"stale_candles:newest {seen}"], {})
        window = candle_window(candles, end_us, self.config.window)
        c = self.config
        short = fold_shortfall(
            len(window),
            folds=c.folds,
            validate_fraction=c.validate_fraction,
            embargo_bars=c.embargo_bars,
            min_train_bars=c.min_train_bars,
        )
        if short is not None:
            days = c.window.total_seconds() / 86400
            return self._hold(
                [f"folds_too_short: {short} (window {days:g} days of {candles.timeframe_s}s bars)"],
                {"metrics": {"bars": len(window), "min_train_bars": c.min_train_bars}},
            )
        spec = self._spec(window, source, storage_url)
        trials = n_trials or self.config.n_trials
        workers_out = run_workers(spec, trials, workers, self.config.seed)
        return self._decide(spec, window, workers_out, trials)

    def _judge(self) -> dict[str, Any] | None:
        if self.state.in_flight is None:
            return None
        flight = self.state.in_flight
        trades = self.ledger.trades(
            closed_since=flight.started_at - self.config.flight.baseline_lookback,
            closed_until=self.now + timedelta(microseconds=1),
            strategy=self.config.live_strategy,
        )
        timeline, version_values = version_context(
            self.store, trades, self.effective.version, [flight.version, flight.baseline_version]
        )
        result = judge_in_flight(
            self.state,
            trades,
            {k: s.default for k, s in self.specs.items()},
            self.current,
            version_values,
            timeline,
            self.now,
            self.config.flight,
        )
        extra: dict[str, Any] = {"verdicts": {self.config.family: json_safe(result.verdict)}}
        if result.rollback:
            extra["target_version"] = result.target_version
            return self._apply(
                result.action,
                [result.code],
                result.rollback,
                ApplyKind.ROLLBACK,
                extra,
                proposed=result.state,
                unapplied=self.state,
            )
        self.state = result.state
        if result.ends_flight and self.live:
            self.store.end_arms({self.config.family: _MECHANISM}, self.now)
        return self._hold([result.code], extra, decision=result.action)

    def _spec(self, window: Candles, source: _Source, storage_url: str | None) -> StudySpec:
        c = self.config
        path, from_ledger = source.path, None
        if path is None:
            if not source.ledger_url:
                raise ConfigError(
                    "autotune on the ledger's candle store needs ledger_url (its study "
                    "workers re-read the window from the ledger)"
                )
            path = Path(f"ledger candles {c.instrument} {c.granularity}")  # a label only
            from_ledger = (source.ledger_url, c.instrument, c.granularity)
        return make_spec(
            storage_url=storage_url or default_storage_url(self.store.root),
            candles_ledger=from_ledger,
            candles_path=path,
            window=window,
            strategy=c.engine_strategy,
            dims=search_space(list(self.specs.values()), c.knob_names()),
            folds=c.folds,
            validate_fraction=c.validate_fraction,
            embargo_bars=c.embargo_bars,
            objective=c.objective,
            min_trades=c.min_trades,
            drawdown_weight=c.drawdown_weight,
            spread_pips=c.spread_pips,
            heartbeat_interval_s=c.heartbeat_interval_s,
            grace_period_s=c.grace_period_s,
            max_retry=c.max_retry,
            family=c.family,
        )

    def _decide(
        self, spec: StudySpec, window: Candles, workers_out: dict[str, Any], trials: int
    ) -> dict[str, Any]:
        results = study_results(spec)
        study = self._study_record(spec, window, workers_out, results)
        if results.n_tried < trials:
            return self._hold(
                [
                    f"study_incomplete: {results.n_tried} of {trials} trials finished "
                    f"({results.counts.get('running', 0)} still running)"
                ],
                {"metrics": {"study": json_safe(study)}},
            )
        verdict = self._verdict(spec, window, results, study)
        earlier = self._once(spec, trials, verdict.decision)
        if earlier is not None:
            by = f"{earlier.get('run_id')} ({earlier.get('worker')}) at {earlier.get('at')}"
            reason = f"already_decided: {earlier.get('decision')} by run {by}"
            return self._hold([reason], verdict.extra)
        if verdict.proposed is None:
            return self._hold(verdict.reasons, verdict.extra)
        return self._apply(
            "apply",
            verdict.reasons,
            verdict.requests,
            ApplyKind.APPLY,
            verdict.extra,
            proposed=verdict.proposed,
            unapplied=self.state,
        )

    def _once(self, spec: StudySpec, trials: int, decision: str) -> dict[str, Any] | None:
        """Whether another live run already decided on this study (its marker), else None."""
        if not self.live:  # a shadow run decides nothing anyone acts on: no marker
            return None
        marker = {
            "decision": decision,
            "run_id": self.base["run_id"],
            "worker": worker_name(),
            "at": self.base["at"],
        }
        return decide_once(spec, trials, marker)

    def _study_record(
        self,
        spec: StudySpec,
        window: Candles,
        workers_out: dict[str, Any],
        results: StudyResults,
    ) -> dict[str, Any]:
        return {
            "name": spec.study_name,
            "storage": redact(spec.storage_url),
            "trials": results.counts,
            "n_tried": results.n_tried,
            "surplus": results.surplus,
            "pruned": results.pruned or {},
            "duplicates": results.duplicates,
            "seeds": list(results.seeds),
            "best_trial": results.best_number,
            "best_value": results.best_value,
            "workers": workers_out,
            "window": [
                format_utc(from_epoch_us(spec.start_us)),
                format_utc(from_epoch_us(spec.end_us)),
            ],
            "bars": len(window),
            "folds": [
                f.to_record(window.time_us)
                for f in walk_forward(
                    len(window),
                    folds=spec.folds,
                    validate_fraction=spec.validate_fraction,
                    embargo_bars=spec.embargo_bars,
                )
            ],
        }

    def _verdict(
        self, spec: StudySpec, window: Candles, results: StudyResults, study: dict[str, Any]
    ) -> _Verdict:
        """What the complete study says: hold (reasons) or apply (the requests, the flight)."""
        names = self.config.knob_names()
        if results.best_params is None:
            why = ", ".join(f"{k} {n}" for k, n in sorted((results.pruned or {}).items()))
            reason = f"no_scored_trial: {results.n_tried} trials, pruned: {why or 'none'}"
            return _Verdict(
                decision="hold", reasons=[reason], extra={"metrics": {"study": json_safe(study)}}
            )
        winner = {knob: results.best_params[param] for knob, param in names.items()}
        proposal = bounded_step(self.specs, self.current, winner)
        strategy = get_strategy(spec.strategy)

        def engine(values: dict[str, KnobValue]) -> dict[str, float]:
            return {names[k]: float(v) for k, v in values.items()}

        step_problems = strategy.check({**strategy.defaults, **engine(proposal.values)})
        incumbent_problems = strategy.check({**strategy.defaults, **engine(self.current)})
        oos: dict[str, Evaluation] = {
            "winner": evaluate(window, spec, engine(proposal.winner), "validate"),
        }
        if not incumbent_problems:
            oos["incumbent"] = evaluate(window, spec, engine(self.current), "validate")
        else:  # an incumbent the engine cannot run is beaten by any scored candidate
            oos["incumbent"] = _unscored()
        if proposal.clipped and not step_problems:
            oos["step"] = evaluate(window, spec, engine(proposal.values), "validate")
        is_winner = evaluate(window, spec, engine(proposal.winner), "train")
        dsr = deflate(is_winner.pips, results.trial_sharpes, results.n_tried)
        verdict = gate(
            current=self.current,
            proposal=proposal,
            step_valid=step_problems,
            dsr=dsr,
            oos=oos,
            min_dsr=self.config.min_dsr,
            min_oos_improvement=self.config.min_oos_improvement,
        )
        metrics = {
            "study": study,
            "deflated_sharpe": dsr.to_record(),
            "in_sample_winner": is_winner.to_record(),
            "oos": summary(oos),
            "incumbent": dict(self.current),
            "winner": dict(proposal.winner),
            "step": dict(proposal.values),
            "approach": proposal.clipped or None,
        }
        extra = {"metrics": json_safe(metrics)}
        if verdict.decision != "apply":
            return _Verdict(decision="hold", reasons=list(verdict.reasons), extra=extra)
        return _Verdict(
            decision="apply",
            reasons=list(verdict.reasons),
            extra=extra,
            requests=verdict.requests,
            proposed=start_flight(
                self.state,
                proposal.values,
                self.now,
                self.config.flight,
                split_id=f"{_MECHANISM}/{self.config.family}/{format_utc(self.now)}",
            ),
        )

    def _record(self, decision: str, reasons: list[str], extra: dict[str, Any]) -> dict[str, Any]:
        flight = self.state.in_flight
        outcome = outcome_fields(decision, reasons, live=self.live, frozen=self.frozen)
        outcome["reasons"] = [*self.notes, *outcome["reasons"]]  # the state's own notes first
        return (
            self.base
            | outcome
            | {
                "family": self.config.family,
                "metrics": {},
                "verdicts": {},
                "in_flight": {self.config.family: flight.to_json()} if flight else None,
            }
            | extra
        )

    def _hold(
        self, reasons: list[str], extra: dict[str, Any], decision: str = "hold"
    ) -> dict[str, Any]:
        record = self._record(decision, reasons, extra)
        record.update(unchanged_fields(self.effective.version))
        self.store.record(record)
        if self.live:
            self.store.write_mechanism(_MECHANISM, self.state.to_json())
        return record

    def _apply(
        self,
        decision: str,
        reasons: list[str],
        requests: dict[str, KnobValue],
        kind: ApplyKind,
        extra: dict[str, Any],
        *,
        proposed: FamilyState,
        unapplied: FamilyState,
    ) -> dict[str, Any]:
        record = self._record(decision, reasons, extra)
        flight = proposed.in_flight
        record["in_flight"] = {self.config.family: flight.to_json()} if flight else None
        result = self.store.apply(
            Owner.AUTOTUNE,
            requests,
            self.now,
            kind=kind,
            record=record,
            dry_run=not self.live,
            start_arms=split_of(flight, _MECHANISM, self.config.family),
        )
        record.update(applied_fields(result))
        if not result.applied:  # shadow / frozen: what the guard would have adopted
            record["proposed_diff"] = proposed_diff(result)
        if self.live:
            state = finalize(
                proposed,
                unapplied,
                applied=result.applied,
                version_after=result.version_after,
                values_after={d["knob"]: d["after"] for d in result.diff},
            )
            self.store.write_mechanism(_MECHANISM, state.to_json())
        return record


def _unscored() -> Evaluation:
    return Evaluation(
        score=float("nan"), sharpe=float("nan"), n_trades=0, net_pips=0.0, pips=(), fold_trades=()
    )
