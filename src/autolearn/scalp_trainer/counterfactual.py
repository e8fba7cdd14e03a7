"""The scalp trainer's exit knob on counterfactual evidence: the bot's own trades re-simulated.

Issue 12, exit family: for ``M1Scalper.timeout_sec`` every M1Scalper trade of the lookback is
replayed from its entry on the M1 candles under each candidate timeout, with the stop and target
the trade actually had (its signal-log row carries them), by the same kernel and rules as the
signal outcomes (``counterfactual.exits``). The paired difference per trade, summed per day, is
chosen on one half of the days and confirmed on the other (``choose_exit``); the knob moves at
most ``max_step``, only on a confirmed gain. The ``win-rate`` rules keep the other knobs.

Why only the timeout: the stop and target floors enter through ``max(floor, mult x ATR)``, and
the signal log holds the resulting distance, not the ATR, so a candidate floor cannot be
replayed without guessing; those stay on the rules. The grid is the knob's grid at whole minutes
(the replay and the kernel count the timeout in M1 bars; 630 s and 660 s are the same 11 bars).

Before any choice the model must be trusted, or the knob freezes with the reason (nothing moves):
no candles (``candles_missing``) or bad ones (``check_candles``' codes), a signal log gone quiet
(``stale_signals``), trades the candles cannot place, and ``counterfactual_mismatch`` /
``cf_unverified`` when the simulation at the current timeout does not explain the recorded P/L
of the trades (``mismatch.check_recorded``): the low-vol exit family, which also closes scalp
trades, is not modelled, and this is the check that says whether that matters.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from autolearn.backtest.candles import Candles
from autolearn.core.knobs import KnobSpec
from autolearn.core.model import EntrySignal, Side
from autolearn.counterfactual import (
    check_candles,
    check_recorded,
    choose_exit,
    resimulate_exits,
    signal_outcomes,
)
from autolearn.counterfactual.candle_checks import trading_time
from autolearn.counterfactual.entry import CF_IMPROVES

__all__ = ["TIMEOUT_SUFFIX", "ExitCfAnswer", "ExitCfData", "ExitCfSettings", "evaluate_timeout"]

TIMEOUT_SUFFIX = "timeout_sec"
CANDLES_MISSING = "candles_missing"
STALE_SIGNALS = "stale_signals"
_BAR_S = 60  # M1


@dataclass(frozen=True, slots=True, kw_only=True)
class ExitCfSettings:
    """How the scalp trainer judges its exit knob on re-simulated trades."""

    enabled: bool = True
    lookback: timedelta = timedelta(days=30)
    confidence: float = 0.99  # of the confirmation-half interval, as the tuner's entry family
    min_days: int = 6
    min_trades: int = 30
    spread_pips: float = 1.0  # cost per fill when the candles carry no spread
    mismatch_tolerance_pips: float = 1.5
    max_gap: timedelta = timedelta(hours=1)
    stale_after: timedelta = timedelta(hours=24)
    # the live guard: candidate trades that confirm an uncontradicted forecast, the band's
    # width in standard errors, and how long the knob waits after a contradicted forecast
    confirm_trades: int = 40
    band_z: float = 2.0
    contradicted_freeze: timedelta = timedelta(days=14)

    def problems(self) -> list[str]:
        found: list[str] = []
        if not 0.5 < self.confidence < 1:
            found.append(f"counterfactual.confidence: 0.5 < x < 1 must hold, got {self.confidence}")
        if self.min_days < 2 or self.min_trades < 2 or self.confirm_trades < 2:
            found.append("counterfactual.min_days, min_trades, confirm_trades: must be >= 2")
        if not (math.isfinite(self.band_z) and self.band_z > 0):
            found.append(f"counterfactual.band_z: must be > 0, got {self.band_z}")
        if not (math.isfinite(self.spread_pips) and self.spread_pips >= 0):
            found.append(f"counterfactual.spread_pips: must be >= 0, got {self.spread_pips}")
        if not (math.isfinite(self.mismatch_tolerance_pips) and self.mismatch_tolerance_pips > 0):
            found.append("counterfactual.mismatch_tolerance_pips: must be > 0")
        return found


@dataclass(frozen=True, slots=True, kw_only=True)
class ExitCfData:
    """What the shell read: the strategy's taken signals of the lookback, the M1 candles under
    them (one instrument), and the recorded pips of the trades they opened (broker id -> pips)."""

    signals: tuple[EntrySignal, ...]
    candles: Candles | None
    recorded: Mapping[str, float] = field(default_factory=dict)
    until: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ExitCfAnswer:
    """The timeout knob's answer: ``proposed`` (seconds) because ``code``; ``freeze`` says why
    nothing could be judged; ``evidence`` is what the run record stores before any apply."""

    knob: str
    current: float
    proposed: float
    code: str
    detail: str
    freeze: tuple[tuple[str, str], ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)
    # per trade, candidate minus current (pips): the pre-registered effect the live judge checks
    forecast: dict[str, float] | None = None

    @property
    def moves(self) -> bool:
        return not self.freeze and self.code == CF_IMPROVES and self.proposed != self.current


def minute_grid(spec: KnobSpec) -> list[float]:
    """The knob's grid values (seconds) that are whole minutes, within its bounds."""
    assert spec.step and spec.lower is not None and spec.upper is not None
    count = round((spec.upper - spec.lower) / spec.step)
    values = (round(spec.lower + k * spec.step, 9) for k in range(count + 1))
    return [v for v in values if v > 0 and v % _BAR_S == 0]


def evaluate_timeout(
    data: ExitCfData, spec: KnobSpec, current: float, settings: ExitCfSettings
) -> ExitCfAnswer:
    """The counterfactual choice of ``spec`` (a ``timeout_sec`` knob); see the module docstring."""
    taken = [s for s in data.signals if s.taken and s.broker_trade_id in data.recorded]
    freeze = _untrusted(taken, data, settings)
    if freeze:
        return _frozen(spec, current, freeze)
    assert data.candles is not None
    out = signal_outcomes(data.candles, taken, spread_pips=settings.spread_pips)
    if out.problems:
        return _frozen(spec, current, list(out.problems))
    placed = out.placed & np.isfinite(out.pips)
    recorded = np.array([data.recorded[s.broker_trade_id] for s in taken], dtype=np.float64)
    check = check_recorded(
        out.pips[placed], recorded[placed], tolerance_pips=settings.mismatch_tolerance_pips
    )
    model = {"code": check.code, "detail": check.detail, "n": check.n}
    if not check.ok or check.code == "cf_unverified":
        return _frozen(spec, current, [(check.code, check.detail)], {"model_check": model})
    grid = minute_grid(spec)
    side = np.array([1 if s.side is Side.LONG else -1 for s in taken], dtype=np.int8)[placed]
    sl = np.array([s.sl_pips or 0.0 for s in taken], dtype=np.float64)[placed]
    tp = np.array([s.tp_pips or 0.0 for s in taken], dtype=np.float64)[placed]
    choice = choose_exit(
        candles=data.candles,
        entry_bar=out.bar[placed] + 1,
        side=side,
        day=out.day[placed],
        param="timeout_bars",
        grid=[v / _BAR_S for v in grid],
        current=current / _BAR_S,
        sl_pips=sl,
        tp_pips=tp,
        timeout_bars=0,
        spread_pips=settings.spread_pips,
        max_steps=max(1, round((spec.max_step or _BAR_S) / _BAR_S)),
        confidence=settings.confidence,
        min_days=settings.min_days,
        min_trades=settings.min_trades,
    )
    evidence = {"model_check": model, "choice": choice.as_dict(), "grid_s": grid}
    if choice.code != CF_IMPROVES:
        return ExitCfAnswer(
            knob=spec.name,
            current=current,
            proposed=current,
            code=choice.code,
            detail=choice.detail,
            evidence=evidence,
        )
    # The forecast: the paired per-trade difference on every placed trade, with its standard
    # error (the same trades under both timeouts: far tighter than the live arms' difference).
    entry_bar = out.bar[placed] + 1
    sims = [
        resimulate_exits(
            data.candles,
            entry_bar,
            side,
            sl_pips=sl,
            tp_pips=tp,
            timeout_bars=round(v),
            spread_pips=settings.spread_pips,
        )
        for v in (current / _BAR_S, choice.value)
    ]
    diff = sims[1] - sims[0]
    diff = diff[np.isfinite(diff)]
    estimate = float(diff.mean()) if diff.size else 0.0
    se = float(diff.std(ddof=1) / math.sqrt(diff.size)) if diff.size >= 2 else 0.0
    half = settings.band_z * se
    forecast = {
        "estimate": estimate,
        "se": se,
        "low": estimate - half,
        "high": estimate + half,
        "current": current,
        "value": choice.value * _BAR_S,
        "n": int(diff.size),
    }
    evidence["forecast"] = forecast
    return ExitCfAnswer(
        knob=spec.name,
        current=current,
        proposed=choice.value * _BAR_S,
        code=choice.code,
        detail=choice.detail,
        evidence=evidence,
        forecast=forecast,
    )


def _untrusted(
    taken: Sequence[EntrySignal], data: ExitCfData, settings: ExitCfSettings
) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    newest = max((s.at for s in data.signals), default=None)
    age = trading_time(newest, data.until) if newest is not None else None
    if newest is not None and age is not None and age > settings.stale_after:
        found.append(
            (STALE_SIGNALS, f"newest signal {newest.isoformat()} is {age} of trading time old")
        )
    if data.candles is None or len(data.candles) == 0:
        found.append((CANDLES_MISSING, f"no M1 candles under {len(taken)} trades' signals"))
        return found
    found += check_candles(
        data.candles,
        expected_timeframe_s=_BAR_S,
        max_gap_s=settings.max_gap.total_seconds(),
    )
    return found


def _frozen(
    spec: KnobSpec,
    current: float,
    freeze: Sequence[tuple[str, str]],
    evidence: dict[str, Any] | None = None,
) -> ExitCfAnswer:
    return ExitCfAnswer(
        knob=spec.name,
        current=current,
        proposed=current,
        code="cf_frozen",
        detail="; ".join(f"{c}: {d}" for c, d in freeze),
        freeze=tuple(freeze),
        evidence=evidence or {},
    )
