"""Counterfactual entry thresholds: every logged signal replayed on the candles (issue 12).

For each knob whose registry spec names a ``score`` and an ``admits`` direction (the ``micro.entry``
thresholds), the family's signals of the lookback, taken or not, are placed on the M1 candles
and simulated (``counterfactual.signal_outcomes``); the grid value ``choose_threshold`` confirms
on held-out days is proposed, at most ``max_step`` away. Because every value is evaluated on the
same signals whatever config was live, the evidence does not restart at each change.

Before any choice, the model must be trusted, or the family freezes (nothing moves, every reason
recorded): ``signal_missing:score:<name>`` (signals without the knob's score), the candle checks
(``candles_missing`` and ``counterfactual.check_candles``' codes: ``candles_gap``,
``candle_clock``, ...), signals the candles cannot place (``signal_in_gap``, ...), and
``counterfactual_mismatch`` when the simulated P/L of taken signals disagrees with the P/L of the
trades they opened (``cf_unverified`` while fewer than 10 taken signals have their trade in the
ledger: a model nobody could check moves nothing either).

A moved knob carries a :class:`CfForecast`, the per-trade effect the live judge checks it against
(``core.judge.judge_forecast``). One counterfactual knob moves per flight (the best confirmed
gain), so the live check compares one strategy's trades with one forecast.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Self

from autolearn.core.judge import ForecastBand
from autolearn.core.knobs import KnobSpec, KnobValue
from autolearn.core.model import EntrySignal
from autolearn.tuner.config import TunerConfig
from autolearn.tuner.proposers._base import max_steps
from autolearn.tuner.proposers.micro_entry import strategy_of

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from autolearn.backtest.candles import Candles
    from autolearn.counterfactual import (
        EntryChoice,
        check_candles,
        check_recorded,
        choose_threshold,
    )
    from autolearn.counterfactual.candle_checks import trading_time
    from autolearn.counterfactual.entry import CF_IMPROVES, admitted
    from autolearn.counterfactual.mismatch import CF_UNVERIFIED
    from autolearn.counterfactual.outcomes import signal_outcomes


def _load_numeric() -> None:
    """Bind numpy and the counterfactual kernels (numba) on the first evaluation: ~0.5 s CPU of
    import that a tune run whose families are not ``cf_due`` (most of them) never pays."""
    global np, check_candles, check_recorded, choose_threshold
    global CF_IMPROVES, admitted, CF_UNVERIFIED, signal_outcomes, trading_time
    import numpy as np

    from autolearn.counterfactual import check_candles, check_recorded, choose_threshold
    from autolearn.counterfactual.candle_checks import trading_time
    from autolearn.counterfactual.entry import CF_IMPROVES, admitted
    from autolearn.counterfactual.mismatch import CF_UNVERIFIED
    from autolearn.counterfactual.outcomes import signal_outcomes


__all__ = [
    "CANDLES_MISSING",
    "CfEvidence",
    "CfForecast",
    "CfKnob",
    "CounterfactualData",
    "evaluate_entry",
    "grid_of",
    "scored_specs",
]

CANDLES_MISSING = "candles_missing"
_MODEL_CHECK_MIN = 10  # pairs before the model counts as checked (``check_recorded``)
_TIMEFRAME_S = 60  # M1: the candle store's granularity for the counterfactual
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class CounterfactualData:
    """What the shell read for one family: its signals since ``since`` and the candles of each
    instrument they name (from a bar before the first signal to ``until``)."""

    signals: tuple[EntrySignal, ...]
    candles: Mapping[str, Candles] = field(default_factory=dict)
    since: datetime
    until: datetime
    # signal id -> the bot's own recorded outcome (pips) of a shadow signal: the model check's
    # second witness when too few taken signals have their trade (a blocked pocket trades none)
    shadow_outcomes: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class CfForecast:
    """The pre-registered per-trade effect of moving ``knob`` from ``current`` to ``value``.

    ``estimate`` is the confirmation half's mean simulated pips per admitted signal under the
    candidate minus under the current value (what the live arms' per-trade difference should
    be); ``se`` its standard error from the nested admitted sets; ``low``/``high`` the band.
    """

    knob: str
    strategy: str
    current: float
    value: float
    estimate: float
    se: float
    low: float
    high: float
    n_current: int
    n_candidate: int

    def to_json(self) -> dict[str, Any]:
        return {
            "knob": self.knob,
            "strategy": self.strategy,
            "current": self.current,
            "value": self.value,
            "estimate": self.estimate,
            "se": self.se,
            "low": self.low,
            "high": self.high,
            "n_current": self.n_current,
            "n_candidate": self.n_candidate,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Self:
        """The stored form; a malformed one raises ``KeyError``/``TypeError``/``ValueError``."""
        return cls(
            knob=str(doc["knob"]),
            strategy=str(doc["strategy"]),
            current=float(doc["current"]),
            value=float(doc["value"]),
            estimate=float(doc["estimate"]),
            se=float(doc["se"]),
            low=float(doc["low"]),
            high=float(doc["high"]),
            n_current=int(doc["n_current"]),
            n_candidate=int(doc["n_candidate"]),
        )

    def band(self, confirm_trades: int) -> ForecastBand:
        """The band the live judge checks the change against."""
        return ForecastBand(
            estimate=self.estimate, low=self.low, high=self.high, confirm_trades=confirm_trades
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CfKnob:
    """One scored knob's counterfactual answer: ``steps`` grid steps because ``code``."""

    knob: str
    steps: int
    code: str
    detail: str
    choice: dict[str, Any] | None = None  # EntryChoice.as_dict(): the evidence, pre-registered
    forecast: CfForecast | None = None

    @property
    def gain_low(self) -> float:
        """The lower end of the confirmed gain per day (ranks moving knobs; NaN when none)."""
        low = (self.choice or {}).get("low", math.nan)
        return float(low) if isinstance(low, int | float) else math.nan


@dataclass(frozen=True, slots=True, kw_only=True)
class CfEvidence:
    """The family's counterfactual answer: per-knob choices, freezes, the numbers behind them."""

    knobs: tuple[CfKnob, ...]
    freeze: tuple[tuple[str, str], ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)


def scored_specs(specs: Sequence[KnobSpec]) -> list[KnobSpec]:
    """The knobs a counterfactual can evaluate (``score`` and ``admits`` in the registry)."""
    return [s for s in specs if s.score and s.admits and s.step and s.lower is not None]


def grid_of(spec: KnobSpec) -> list[float]:
    """Every grid value of ``spec`` from its lower to its upper bound."""
    assert spec.step and spec.lower is not None and spec.upper is not None
    count = round((spec.upper - spec.lower) / spec.step)
    return [round(spec.lower + k * spec.step, 10) for k in range(count + 1)]


def evaluate_entry(
    data: CounterfactualData,
    specs: Sequence[KnobSpec],
    current: Mapping[str, KnobValue],
    recorded: Mapping[str, float],
    config: TunerConfig,
) -> CfEvidence:
    """The counterfactual choice for each scored knob in ``specs`` (see the module docstring).

    ``recorded`` maps a broker trade id to the trade's recorded P/L in pips (the taken signals'
    trades the shell found in the ledger), for the model check.
    """
    _load_numeric()
    by_strategy = {strategy_of(s.name): s for s in specs}
    signals = [s for s in data.signals if s.strategy in by_strategy]
    freeze = _missing_scores(signals, by_strategy) + _stale_signals(signals, data, config)
    outcomes, problems, metrics = _simulate(signals, data, config)
    freeze += problems
    if not freeze:
        check = _model_check(signals, outcomes, recorded, data.shadow_outcomes, config)
        metrics["model_check"] = check
        if not check["ok"] or check["code"] == CF_UNVERIFIED:
            # unverified (too few taken signals with their trade) is a doubt too: no move
            freeze.append((str(check["code"]), str(check["detail"])))
    knobs: list[CfKnob] = []
    for spec in specs:
        if freeze:
            knobs.append(CfKnob(knob=spec.name, steps=0, code="cf_frozen", detail="see freeze"))
            continue
        knobs.append(_choose(spec, signals, outcomes, current, config))
    metrics["knobs"] = {k.knob: k.choice for k in knobs if k.choice is not None}
    return CfEvidence(knobs=tuple(knobs), freeze=tuple(freeze), metrics=metrics)


STALE_SIGNALS = "stale_signals"


def _stale_signals(
    signals: Sequence[EntrySignal], data: CounterfactualData, config: TunerConfig
) -> list[tuple[str, str]]:
    """``stale_signals`` when the family's newest signal is older than ``stale_after``: the bot
    stopped logging (or stopped), so the evidence is not about the market it trades now."""
    if not signals:
        return []
    newest = max(s.at for s in signals)
    age = trading_time(newest, data.until)  # the weekend's silence is not staleness
    if age <= config.stale_after:
        return []
    detail = (
        f"newest signal {newest.isoformat()} is {age} of trading time old > {config.stale_after}"
    )
    return [(STALE_SIGNALS, detail)]


def _missing_scores(
    signals: Sequence[EntrySignal], by_strategy: Mapping[str, KnobSpec]
) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for strategy, spec in by_strategy.items():
        own = [s for s in signals if s.strategy == strategy]
        lacking = [s for s in own if spec.score not in s.scores]
        if lacking:
            found.append(
                (
                    f"signal_missing:score:{spec.score}",
                    f"{len(lacking)} of {len(own)} {strategy} signals lack the score "
                    f"{spec.score!r} that {spec.name} compares (first {lacking[0].signal_id})",
                )
            )
    return found


@dataclass(frozen=True, slots=True)
class _Outcomes:
    """Per signal (aligned with the family's signals): simulated pips and UTC day, NaN/-1 when
    pending (its timeout runs past the newest candle) or not placed."""

    pips: NDArray[np.float64]
    day: NDArray[np.int64]


def _simulate(
    signals: Sequence[EntrySignal], data: CounterfactualData, config: TunerConfig
) -> tuple[_Outcomes, list[tuple[str, str]], dict[str, Any]]:
    pips = np.full(len(signals), np.nan)
    day = np.full(len(signals), -1, dtype=np.int64)
    found: list[tuple[str, str]] = []
    pending = 0
    by_instrument: dict[str, list[int]] = {}
    for k, s in enumerate(signals):
        by_instrument.setdefault(s.instrument, []).append(k)
    for instrument, index in sorted(by_instrument.items()):
        candles = data.candles.get(instrument)
        if candles is None or len(candles) == 0:
            found.append(
                (
                    CANDLES_MISSING,
                    f"no M1 candles of {instrument} from {data.since.isoformat()} for "
                    f"{len(index)} signals (ingest them: autolearn ingest --oanda-candles)",
                )
            )
            continue
        found += [
            (code, f"{instrument}: {detail}")
            for code, detail in check_candles(
                candles,
                expected_timeframe_s=_TIMEFRAME_S,
                max_gap_s=config.cf_max_gap.total_seconds(),
            )
        ]
        end = _candles_end(candles)
        ready = [k for k in index if _settled_at(signals[k], config) <= end]
        pending += len(index) - len(ready)
        if not ready:
            continue
        out = signal_outcomes(
            candles,
            [signals[k] for k in ready],
            spread_pips=config.cf_spread_pips,
            timeout_bars_default=config.cf_timeout_bars,
        )
        found += [(code, f"{instrument}: {detail}") for code, detail in out.problems]
        pips[ready] = out.pips
        day[ready] = out.day
    metrics = {"n_signals": len(signals), "pending": pending}
    return _Outcomes(pips=pips, day=day), found, metrics


def _candles_end(candles: Candles) -> datetime:
    end_us = int(candles.time_us[-1]) + candles.timeframe_s * 1_000_000
    return _EPOCH + timedelta(microseconds=end_us)


def _settled_at(signal: EntrySignal, config: TunerConfig) -> datetime:
    """When the signal's outcome is known at the latest: its entry bar plus its timeout."""
    timeout_s = (
        signal.timeout_s if signal.timeout_s is not None else config.cf_timeout_bars * _TIMEFRAME_S
    )
    return signal.at + timedelta(seconds=timeout_s + _TIMEFRAME_S)


def _model_check(
    signals: Sequence[EntrySignal],
    outcomes: _Outcomes,
    recorded: Mapping[str, float],
    shadow_outcomes: Mapping[str, float],
    config: TunerConfig,
) -> dict[str, Any]:
    """Simulated against recorded pips: of taken signals and their trades, and, while those are
    fewer than the check needs, of shadow signals and the outcomes the bot recorded for them."""
    taken = [
        (outcomes.pips[k], recorded[s.broker_trade_id])
        for k, s in enumerate(signals)
        if s.taken and s.broker_trade_id in recorded and math.isfinite(outcomes.pips[k])
    ]
    shadow = (
        [
            (outcomes.pips[k], shadow_outcomes[s.signal_id])
            for k, s in enumerate(signals)
            if not s.taken and s.signal_id in shadow_outcomes and math.isfinite(outcomes.pips[k])
        ]
        if len(taken) < _MODEL_CHECK_MIN
        else []
    )
    pairs = taken + shadow
    sim = np.array([p[0] for p in pairs], dtype=np.float64)
    rec = np.array([p[1] for p in pairs], dtype=np.float64)
    check = check_recorded(
        sim, rec, tolerance_pips=config.cf_mismatch_tolerance_pips, min_trades=_MODEL_CHECK_MIN
    )
    detail = check.detail
    if shadow:
        detail = detail.replace("taken signals", "signals", 1)
        detail = f"{detail} ({len(taken)} with their trade, {len(shadow)} shadow outcomes)"
    return {
        "ok": check.ok,
        "code": check.code,
        "detail": detail,
        "n": check.n,
        "n_trades": len(taken),
        "n_shadow": len(shadow),
    }


def _choose(
    spec: KnobSpec,
    signals: Sequence[EntrySignal],
    outcomes: _Outcomes,
    current: Mapping[str, KnobValue],
    config: TunerConfig,
) -> CfKnob:
    strategy = strategy_of(spec.name)
    assert spec.score is not None and spec.admits is not None and spec.step
    own = np.array([s.strategy == strategy for s in signals], dtype=bool)
    usable = own & np.isfinite(outcomes.pips)
    scores = np.array([s.scores.get(spec.score, math.nan) for s in signals], dtype=np.float64)[
        usable
    ]
    pips, day = outcomes.pips[usable], outcomes.day[usable]
    now_value = float(current.get(spec.name, spec.default))
    choice = choose_threshold(
        scores=scores,
        pips=pips,
        day=day,
        grid=grid_of(spec),
        current=now_value,
        admits=spec.admits,
        max_steps=max_steps(spec),
        confidence=config.cf_confidence,
        min_days=config.cf_min_days,
    )
    evidence = choice.as_dict()
    if choice.code != CF_IMPROVES:
        return CfKnob(
            knob=spec.name, steps=0, code=choice.code, detail=choice.detail, choice=evidence
        )
    steps = round((choice.value - now_value) / spec.step)
    forecast = _forecast(spec, strategy, choice, scores, pips, now_value, config)
    return CfKnob(
        knob=spec.name,
        steps=steps,
        code=choice.code,
        detail=choice.detail,
        choice=evidence,
        forecast=forecast,
    )


def _forecast(
    spec: KnobSpec,
    strategy: str,
    choice: EntryChoice,
    scores: NDArray[np.float64],
    pips: NDArray[np.float64],
    now_value: float,
    config: TunerConfig,
) -> CfForecast:
    """The per-trade forecast and its standard error from the nested admitted sets.

    Thresholds nest: the looser value admits the stricter one's signals plus the marginal ones,
    so ``mean_outer - mean_inner = (n_m / n_outer) (mean_m - mean_inner)`` and its variance is
    about ``(n_m / n_outer)^2 (s_m^2 / n_m + s_inner^2 / n_inner)``. Counts are the confirmation
    half's (where the estimate comes from); the spreads are estimated on every placed signal.
    """
    assert spec.admits is not None
    cand = admitted(scores, choice.value, spec.admits)
    cur = admitted(scores, now_value, spec.admits)
    looser_is_candidate = int(cand.sum()) >= int(cur.sum())
    outer, inner = (cand, cur) if looser_is_candidate else (cur, cand)
    marginal = outer & ~inner
    n_outer = max(choice.trades_candidate, choice.trades_current, 1)
    n_inner = max(min(choice.trades_candidate, choice.trades_current), 1)
    n_m = max(n_outer - n_inner, 1)
    s_m, s_inner = _sd(pips[marginal]), _sd(pips[inner])
    se = (n_m / n_outer) * math.sqrt(s_m**2 / n_m + s_inner**2 / n_inner)
    estimate = choice.mean_pips_candidate - choice.mean_pips_current
    if not math.isfinite(estimate):
        estimate = 0.0
    if not math.isfinite(se):
        se = 0.0
    half = config.cf_band_z * se
    return CfForecast(
        knob=spec.name,
        strategy=strategy,
        current=now_value,
        value=choice.value,
        estimate=estimate,
        se=se,
        low=estimate - half,
        high=estimate + half,
        n_current=choice.trades_current,
        n_candidate=choice.trades_candidate,
    )


def _sd(x: NDArray[np.float64]) -> float:
    return float(x.std(ddof=1)) if x.size >= 2 else 5.0  # 5 pips: the FX scalper's sd, if unknown
