"""Reference strategies of the replay, in pockets, reading their knobs through the runtime API.

Each strategy turns candles plus its current knob values into an ``int8`` signal per bar (+1 long,
-1 short, decided at the bar's close, filled by the paper broker at the next open), computed
vectorised over the whole series for one set of knob values and cached by those values, so a
knob change takes effect at the next bar. Knob names are the original's where the semantics
carry over (original-system.md 4); tick-time knobs are mapped to bar time by a documented factor.

Pockets and strategies:

* **macro / TrendMA**: SMA cross on H1 closes (the closes of the M1 bars that end on the hour;
  an hour without a tick in its last minute has no close). Knobs ``strategies.TrendMA.fast_window``,
  ``slow_window``, ``sl_pips``, ``tp_pips`` (owner autotune). Exits: SL/TP, reverse signal.
* **micro / MomentumPulse**: close breaks the previous 20 bars' high (low), at least
  ``min_confidence`` of those bars closed up (down), and the move is at or above the median
  absolute move of the previous 100 bars (the backtest's ``momentum_breakout``). SL 6, TP 9 pips,
  30-bar timeout.
* **micro / MicroVWAPRevert**: fade a close ``vwap_z_min`` standard deviations from the 60-bar
  VWAP (equal weights when the feed has no volume, as HistData's M1 has none) once the bar turns
  back (a long needs an up bar). SL 6, TP 6 pips, 30-bar timeout.
* **micro / VolCompressionBreak**: after compression (the previous bar's band width below 0.8 of
  its daily mean, see ``regime``), a close beyond the previous 20 bars' range whose move is at
  or above the ``accel_pctile`` percentile of the previous 120 absolute moves. SL 8, TP 12 pips,
  45-bar timeout.
* **micro / RangeExpansionBreak**: a close beyond the previous 30 bars' high (low) on an up (down)
  bar whose range is at least ``min_range_ratio`` times the mean range of the previous 60 bars.
  SL 6, TP 9 pips, 30-bar timeout. Its edge is meant to depend on the threshold (the class
  docstring says why and how its fixed parameters were chosen).
* **micro / BB_RSI_Fast**: Bollinger(20, 2) / RSI(14) 30-70 fade (the backtest's ``bb_rsi``).
  ``reentry_block_s`` (seconds between an exit and the next entry on the original's tick data)
  blocks re-entry for ``reentry_block_s`` *minutes* of simulated time (one original second = one
  M1 bar, so the knob's whole range 8-30 maps to distinct bar counts). SL 5, TP 5, 20-bar timeout.
* **micro allocation**: micro units = base units x ``alloc.regime.quiet_low_vol.micro_share`` /
  its preset (0.35) for entries in the ``quiet_low_vol`` regime, base units otherwise.
* **scalp / M1Scalper**: an N-wave continuation: the close is at least ``nwave.min_leg_pips``
  beyond the previous 10 bars' extreme, the 3-bar impulse is at least ``momentum_thresh`` and the
  bar's rejection wick at least ``wick_min`` (both read as pips = value x 1000: the original's
  USD/JPY price units x 10). SL ``max(sl_floor, sl_atr_mult x ATR14)``, TP ``max(tp_floor,
  tp_atr_mult x ATR14)`` pips with ATR floored at ``atr_floor_tactical``; timeout
  ``timeout_sec / 60`` bars.
* **scalp low-vol exit family** (``exit.lowvol.*``, adapted to bars) for scalp entries in the
  ``quiet_low_vol`` regime, evaluated at each bar's close after SL/TP: ``hard_timeout`` after
  ``round(5 x upper_bound_max_sec)`` bars; ``hazard_exit`` after ``hazard_debounce_ticks``
  consecutive closes at least ``10 x hazard_cost_spread_base + hazard_cost_latency_base_ms / 200``
  pips adverse; ``scratch`` once ``scratch_requires_events + 1`` closes after a grace of
  ``round(min_grace_before_scratch_ms / 40)`` bars sat within the spread of flat.

Score thresholds: a strategy whose entry compares a per-bar score with one tuner knob declares it
(``threshold``: the knob and the score's name, as the registry's ``score``/``admits`` say) and
computes its ``candidates`` for any value of that knob, with the score of every candidate bar.
The replay asks for the candidates at the loosest value the registry allows and admits each one
by comparing its score with the arm's value, so the signal log holds every signal a value in
range could admit, and a stricter value always admits a subset (``admits``). Scores:
``confidence`` (MomentumPulse: the share of the previous 20 bars that closed the candidate's way),
``vwap_z_abs`` (MicroVWAPRevert: ``|z|``), ``accel_pctile`` (VolCompressionBreak: the percentile
rank of the bar's move among the previous 120 moves, the inverse of numpy's linear percentile,
so ``rank >= p`` exactly when the move is at or above the ``p`` percentile up to float rounding),
``range_ratio`` (RangeExpansionBreak).

Pure: no I/O, no clock. The replay loop (``engine``) reads the knob values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from autolearn.backtest.candles import Candles
from autolearn.backtest.strategies._indicators import (
    prev_max,
    prev_min,
    rolling_mean,
    rolling_percentile,
    rolling_std,
)
from autolearn.backtest.strategies.bb_rsi import BbRsiRevert
from autolearn.backtest.strategies.sma_cross import cross_signals
from autolearn.core.knobs import KnobValue
from autolearn.replay.regime import MICRO_LABELS, classify

__all__ = [
    "ALLOC_KNOB",
    "REFERENCE_STRATEGIES",
    "BbRsiFast",
    "Candidates",
    "Exits",
    "Features",
    "LowvolExit",
    "M1Scalper",
    "MicroVWAPRevert",
    "MomentumPulse",
    "RangeExpansionBreak",
    "RefStrategy",
    "Threshold",
    "TrendMA",
    "VolCompressionBreak",
    "admits",
    "micro_units_factor",
    "percentile_rank",
]

F64 = NDArray[np.float64]
Knobs = Mapping[str, KnobValue]
ALLOC_KNOB = "alloc.regime.quiet_low_vol.micro_share"
_ALLOC_PRESET = 0.35
_QUIET = MICRO_LABELS.index("quiet_low_vol")


@dataclass(frozen=True, slots=True, kw_only=True)
class LowvolExit:
    """The bar-time parameters of the low-vol exit controller (see the module docstring)."""

    timeout_bars: int
    hazard_pips: float
    hazard_debounce: int
    grace_bars: int
    scratch_events: int

    @classmethod
    def from_knobs(cls, k: Knobs) -> LowvolExit:
        p = "exit.lowvol."
        return cls(
            timeout_bars=max(1, round(5 * float(k[p + "upper_bound_max_sec"]))),
            hazard_pips=10 * float(k[p + "hazard_cost_spread_base"])
            + float(k[p + "hazard_cost_latency_base_ms"]) / 200,
            hazard_debounce=max(1, int(k[p + "hazard_debounce_ticks"])),
            grace_bars=round(float(k[p + "min_grace_before_scratch_ms"]) / 40),
            scratch_events=int(k[p + "scratch_requires_events"]) + 1,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Exits:
    """How a position opened now is closed: pips from the fill (0 = off), bars, controller."""

    sl_pips: float
    tp_pips: float
    timeout_bars: int = 0
    exit_on_signal: bool = True
    lowvol: LowvolExit | None = None


@dataclass(slots=True)
class Features:
    """Candles plus indicators shared by the strategies (computed once, lazily)."""

    candles: Candles
    regime_micro: NDArray[np.int8]
    regime_macro: NDArray[np.int8]
    cache: dict[str, F64] = field(default_factory=dict)

    @classmethod
    def of(cls, candles: Candles) -> Features:
        micro, macro = classify(candles.close)
        return cls(candles=candles, regime_micro=micro, regime_macro=macro)

    @property
    def pip(self) -> float:
        return self.candles.pip

    def get(self, name: str) -> F64:
        """A named indicator, computed on first use."""
        found = self.cache.get(name)
        if found is None:
            found = self.cache[name] = _FEATURES[name](self.candles)
        return found


def _atr_pips(c: Candles) -> F64:
    prev = np.r_[c.close[0], c.close[:-1]]
    tr = np.maximum(c.high - c.low, np.maximum(np.abs(c.high - prev), np.abs(c.low - prev)))
    return rolling_mean(tr, 14) / c.pip


def _vwap_z(c: Candles) -> F64:
    typical = (c.high + c.low + c.close) / 3.0
    weight = c.volume if bool(np.any(c.volume > 0)) else np.ones(len(c))
    num = rolling_mean(typical * weight, 60)
    den = rolling_mean(weight, 60)
    sd = rolling_std(c.close, 60)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (c.close - num / den) / sd


def _bbw_ratio(c: Candles) -> F64:
    mean = rolling_mean(c.close, 20)
    with np.errstate(invalid="ignore", divide="ignore"):
        bbw = 4.0 * rolling_std(c.close, 20) / mean
    out = np.full(len(c), np.nan)
    w = 1440
    if len(c) > w:
        ok = np.isfinite(bbw)
        csum = np.concatenate(([0.0], np.cumsum(np.where(ok, bbw, 0.0))))
        cnt = np.concatenate(([0], np.cumsum(ok)))
        idx = np.arange(w, len(c))
        with np.errstate(invalid="ignore", divide="ignore"):
            base = (csum[idx] - csum[idx - w]) / np.maximum(cnt[idx] - cnt[idx - w], 1)
            out[w:] = bbw[w:] / base
    return out


def percentile_rank(x: F64, window: int) -> F64:
    """Per bar, the largest ``p`` in [0, 100] with ``x[i] >= percentile(previous window, p)``.

    The inverse of numpy's linear percentile over the ``window`` values before bar ``i``
    (``rolling_percentile``): ``x[i] >= rolling_percentile(x, window, p)[i]`` exactly when
    ``p <= rank[i]``, up to float rounding at the boundary. NaN where ``x[i]`` is below every
    value of its window (no ``p`` admits it), during warm-up, and where an input is NaN.
    """
    out = np.full(len(x), np.nan)
    if window >= len(x) or window < 2:
        return out
    ordered = np.sort(sliding_window_view(x[:-1], window), axis=1)  # row j: bars j..j+window-1
    v = x[window:]
    with np.errstate(invalid="ignore"):
        below = (ordered <= v[:, None]).sum(axis=1)  # how many window values are <= x[i]
    k = np.clip(below - 1, 0, window - 2)
    rows = np.arange(len(v))
    lo, hi = ordered[rows, k], ordered[rows, k + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(hi > lo, (v - lo) / (hi - lo), 0.0)
        rank = 100.0 * (k + np.clip(frac, 0.0, 1.0)) / (window - 1)
    rank[below >= window] = 100.0
    rank[(below == 0) | ~np.isfinite(v) | np.isnan(ordered).any(axis=1)] = np.nan
    out[window:] = rank
    return out


def _move(c: Candles) -> F64:
    return np.abs(np.diff(c.close, prepend=np.nan))


def _share(c: Candles, sign: int) -> F64:
    # share of the previous 20 bars that closed up (sign 1) / down (-1); bar i itself excluded
    change = np.diff(c.close, prepend=np.nan)
    moved = (change > 0) if sign > 0 else (change < 0)
    out: F64 = np.r_[np.nan, rolling_mean(moved.astype(np.float64), 20)[:-1]]
    return out


def _at_least(x: F64, y: F64) -> F64:
    with np.errstate(invalid="ignore"):
        out: F64 = (x >= y).astype(np.float64)  # 1.0 / 0.0 (NaN compares False)
    return out


def _range_ratio(c: Candles) -> F64:
    rng = c.high - c.low
    base = np.r_[np.nan, rolling_mean(rng, 60)[:-1]]  # the previous 60 bars' mean range
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(base > 0, rng / base, np.nan)


_FEATURES = {
    "atr_pips": _atr_pips,
    "vwap_z": _vwap_z,
    "bbw_ratio": _bbw_ratio,
    "move": _move,
    "up_share": lambda c: _share(c, 1),
    "down_share": lambda c: _share(c, -1),
    "pulse_accel": lambda c: _at_least(_move(c), rolling_percentile(_move(c), 100, 50.0)),
    "move_rank": lambda c: percentile_rank(_move(c), 120),
    "range_ratio": _range_ratio,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Threshold:
    """A strategy's entry-threshold knob and the name of the score it compares.

    ``admits`` is the registry's direction: ``above`` admits a candidate whose score is at or
    above the value (a higher value is stricter), ``below`` at or below it.
    """

    knob: str
    score: str
    admits: Literal["above", "below"] = "above"


def admits(score: float, value: float, direction: str) -> bool:
    """Whether a candidate with ``score`` is admitted at threshold ``value`` (NaN: never)."""
    return bool(score >= value) if direction == "above" else bool(score <= value)


@dataclass(frozen=True, slots=True)
class Candidates:
    """Candidate entries per bar (+1 / -1, 0: none) and the named scores of each bar."""

    side: NDArray[np.int8]
    scores: Mapping[str, F64]


class RefStrategy(Protocol):
    """One reference strategy (see the module docstring for each rule)."""

    @property
    def name(self) -> str: ...

    @property
    def pocket(self) -> str: ...

    @property
    def knobs(self) -> tuple[str, ...]:
        """The registry knobs its signals and exits read."""
        ...

    @property
    def threshold(self) -> Threshold | None:
        """Its entry-threshold knob and score (None: its entry compares no score)."""
        ...

    def candidates(self, f: Features, k: Knobs) -> Candidates:
        """Entry candidates for every bar under knob values ``k`` with their scores.

        With a ``threshold``, a candidate is a bar whose score ``k[threshold.knob]`` admits, and
        every candidate's score is finite; a stricter value gives a subset of the candidates.
        Without one, the candidates are the signals and the scores are empty.
        """
        ...

    def signals(self, f: Features, k: Knobs) -> NDArray[np.int8]:
        """Entry signals for every bar under knob values ``k`` (``candidates(f, k).side``)."""
        ...

    def exits(self, f: Features, i: int, k: Knobs) -> Exits:
        """Exit parameters of an entry decided at bar ``i``."""
        ...

    def reentry_block_s(self, k: Knobs) -> float:
        """Seconds after an exit before this strategy may enter again (0: none)."""
        ...


def micro_units_factor(k: Knobs, regime_micro_code: int) -> float:
    """The micro pocket's allocation factor for an entry in the given micro regime."""
    if regime_micro_code != _QUIET:
        return 1.0
    return float(k.get(ALLOC_KNOB, _ALLOC_PRESET)) / _ALLOC_PRESET


@dataclass(frozen=True, slots=True)
class TrendMA:
    name: str = "TrendMA"
    pocket: str = "macro"
    knobs: tuple[str, ...] = tuple(
        f"strategies.TrendMA.{n}" for n in ("fast_window", "slow_window", "sl_pips", "tp_pips")
    )
    threshold: Threshold | None = None

    def candidates(self, f: Features, k: Knobs) -> Candidates:
        return Candidates(self.signals(f, k), {})

    def signals(self, f: Features, k: Knobs) -> NDArray[np.int8]:
        c = f.candles
        out = np.zeros(len(c), dtype=np.int8)
        fast = int(k["strategies.TrendMA.fast_window"])
        slow = int(k["strategies.TrendMA.slow_window"])
        if fast >= slow:
            return out  # an inconsistent pair trades nothing rather than something arbitrary
        # H1 closes: the M1 bars that end on the hour (known at that moment, no look-ahead);
        # an hour whose last minute had no tick has no close and is skipped
        last = np.flatnonzero((c.time_us + c.timeframe_s * 1_000_000) % 3_600_000_000 == 0)
        closes = c.close[last]
        out[last] = cross_signals(rolling_mean(closes, fast), rolling_mean(closes, slow))
        return out

    def exits(self, f: Features, i: int, k: Knobs) -> Exits:
        return Exits(
            sl_pips=float(k["strategies.TrendMA.sl_pips"]),
            tp_pips=float(k["strategies.TrendMA.tp_pips"]),
        )

    def reentry_block_s(self, k: Knobs) -> float:
        return 0.0


def _scored(
    long: NDArray[np.bool_], short: NDArray[np.bool_], name: str, long_score: F64, short_score: F64
) -> Candidates:
    side = np.zeros(len(long), dtype=np.int8)
    side[long] = 1
    side[short & ~long] = -1
    score = np.where(side > 0, long_score, np.where(side < 0, short_score, np.nan))
    return Candidates(side, {name: score})


def _value(k: Knobs, t: Threshold) -> float:
    return float(k[t.knob])


@dataclass(frozen=True, slots=True)
class MomentumPulse:
    name: str = "MomentumPulse"
    pocket: str = "micro"
    knobs: tuple[str, ...] = ("strategies.MomentumPulse.min_confidence", ALLOC_KNOB)
    threshold: Threshold | None = Threshold(
        knob="strategies.MomentumPulse.min_confidence", score="confidence"
    )

    def candidates(self, f: Features, k: Knobs) -> Candidates:
        # the backtest's momentum_breakout with lookback 20, accel_window 100, accel_pctile 50
        c = f.candles
        v = float(k["strategies.MomentumPulse.min_confidence"])
        up, down = f.get("up_share"), f.get("down_share")
        accel = f.get("pulse_accel") > 0
        with np.errstate(invalid="ignore"):
            long = (c.close > prev_max(c.high, 20)) & (up >= v) & accel
            short = (c.close < prev_min(c.low, 20)) & (down >= v) & accel
        return _scored(long, short, "confidence", up, down)

    def signals(self, f: Features, k: Knobs) -> NDArray[np.int8]:
        return self.candidates(f, k).side

    def exits(self, f: Features, i: int, k: Knobs) -> Exits:
        return Exits(sl_pips=6.0, tp_pips=9.0, timeout_bars=30)

    def reentry_block_s(self, k: Knobs) -> float:
        return 0.0


@dataclass(frozen=True, slots=True)
class MicroVWAPRevert:
    name: str = "MicroVWAPRevert"
    pocket: str = "micro"
    knobs: tuple[str, ...] = ("strategies.MicroVWAPRevert.vwap_z_min", ALLOC_KNOB)
    threshold: Threshold | None = Threshold(
        knob="strategies.MicroVWAPRevert.vwap_z_min", score="vwap_z_abs"
    )

    def candidates(self, f: Features, k: Knobs) -> Candidates:
        c = f.candles
        z = f.get("vwap_z")
        z_min = float(k["strategies.MicroVWAPRevert.vwap_z_min"])
        z_abs = np.abs(z)
        with np.errstate(invalid="ignore"):
            long = (z < 0) & (z_abs >= z_min) & (c.close > c.open)
            short = (z > 0) & (z_abs >= z_min) & (c.close < c.open)
        return _scored(long, short, "vwap_z_abs", z_abs, z_abs)

    def signals(self, f: Features, k: Knobs) -> NDArray[np.int8]:
        return self.candidates(f, k).side

    def exits(self, f: Features, i: int, k: Knobs) -> Exits:
        return Exits(sl_pips=6.0, tp_pips=6.0, timeout_bars=30)

    def reentry_block_s(self, k: Knobs) -> float:
        return 0.0


@dataclass(frozen=True, slots=True)
class VolCompressionBreak:
    name: str = "VolCompressionBreak"
    pocket: str = "micro"
    knobs: tuple[str, ...] = ("strategies.VolCompressionBreak.accel_pctile", ALLOC_KNOB)
    threshold: Threshold | None = Threshold(
        knob="strategies.VolCompressionBreak.accel_pctile", score="accel_pctile"
    )

    def candidates(self, f: Features, k: Knobs) -> Candidates:
        c = f.candles
        ratio = f.get("bbw_ratio")
        rank = f.get("move_rank")
        pct = float(k["strategies.VolCompressionBreak.accel_pctile"])
        with np.errstate(invalid="ignore"):
            ok = np.r_[False, ratio[:-1] < 0.8] & (rank >= pct)
            long = ok & (c.close > prev_max(c.high, 20))
            short = ok & (c.close < prev_min(c.low, 20))
        return _scored(long, short, "accel_pctile", rank, rank)

    def signals(self, f: Features, k: Knobs) -> NDArray[np.int8]:
        return self.candidates(f, k).side

    def exits(self, f: Features, i: int, k: Knobs) -> Exits:
        return Exits(sl_pips=8.0, tp_pips=12.0, timeout_bars=45)

    def reentry_block_s(self, k: Knobs) -> float:
        return 0.0


@dataclass(frozen=True, slots=True)
class RangeExpansionBreak:
    """Breakout on a bar whose range expands well beyond the recent ranges (score ``range_ratio``).

    Long when the close is above the previous 30 bars' high on an up bar, short on the mirror;
    the score is the bar's high-low range over the mean range of the previous 60 bars, admitted
    at or above ``strategies.RangeExpansionBreak.min_range_ratio``.

    Why the edge should depend on the threshold: on FX M1 most breakouts of a short range are
    noise (the next minutes mean-revert, bid-ask bounce and quote flicker), so a breakout that
    pays the spread loses on average. A bar several times the recent range is different in kind:
    it is new information or a flow arriving (a session open, a fix, a release), and volatility
    and direction both cluster after it for some minutes, so the follow-through grows with the
    expansion while the spread's share of the move shrinks. The score has a monotone relation to
    the outcome by construction of that argument, not by a fit: a low threshold admits the noise
    breakouts, a high one only the information bars (and fewer of them: the tuner's trade-off).

    Fixed parameters, chosen before looking at any month and not fitted: 30 bars (half an hour)
    for the range to break, 60 bars (an hour) for the baseline of "normal" ranges, a close in the
    bar's direction (an expansion bar that closes against itself is a rejection, not a flow), and
    the micro pocket's exits of MomentumPulse (SL 6, TP 9 pips: 1.5 reward to risk, 30-bar
    timeout: the horizon over which M1 follow-through is expected to fade).
    """

    name: str = "RangeExpansionBreak"
    pocket: str = "micro"
    knobs: tuple[str, ...] = ("strategies.RangeExpansionBreak.min_range_ratio", ALLOC_KNOB)
    threshold: Threshold | None = Threshold(
        knob="strategies.RangeExpansionBreak.min_range_ratio", score="range_ratio"
    )

    def candidates(self, f: Features, k: Knobs) -> Candidates:
        c = f.candles
        ratio = f.get("range_ratio")
        v = float(k["strategies.RangeExpansionBreak.min_range_ratio"])
        with np.errstate(invalid="ignore"):
            ok = ratio >= v
            long = ok & (c.close > c.open) & (c.close > prev_max(c.high, 30))
            short = ok & (c.close < c.open) & (c.close < prev_min(c.low, 30))
        return _scored(long, short, "range_ratio", ratio, ratio)

    def signals(self, f: Features, k: Knobs) -> NDArray[np.int8]:
        return self.candidates(f, k).side

    def exits(self, f: Features, i: int, k: Knobs) -> Exits:
        return Exits(sl_pips=6.0, tp_pips=9.0, timeout_bars=30)

    def reentry_block_s(self, k: Knobs) -> float:
        return 0.0


@dataclass(frozen=True, slots=True)
class BbRsiFast:
    name: str = "BB_RSI_Fast"
    pocket: str = "micro"
    knobs: tuple[str, ...] = ("strategies.BB_RSI_Fast.reentry_block_s", ALLOC_KNOB)
    threshold: Threshold | None = None

    def candidates(self, f: Features, k: Knobs) -> Candidates:
        return Candidates(self.signals(f, k), {})

    def signals(self, f: Features, k: Knobs) -> NDArray[np.int8]:
        # the block is applied after exits by the loop (reentry_block_s), not on raw signals
        params = {"bb_window": 20.0, "bb_k": 2.0, "rsi_window": 14.0, "rsi_low": 30.0}
        params |= {"rsi_high": 70.0, "reentry_block_s": 0.0}
        out: NDArray[np.int8] = BbRsiRevert().signals(f.candles, [params])[0]
        return out

    def exits(self, f: Features, i: int, k: Knobs) -> Exits:
        return Exits(sl_pips=5.0, tp_pips=5.0, timeout_bars=20)

    def reentry_block_s(self, k: Knobs) -> float:
        return 60.0 * float(k["strategies.BB_RSI_Fast.reentry_block_s"])


_M1 = "M1Scalper."
_LOWVOL_KNOBS = tuple(
    f"exit.lowvol.{n}"
    for n in (
        "upper_bound_max_sec",
        "hazard_debounce_ticks",
        "hazard_cost_spread_base",
        "hazard_cost_latency_base_ms",
        "min_grace_before_scratch_ms",
        "scratch_requires_events",
    )
)


@dataclass(frozen=True, slots=True)
class M1Scalper:
    name: str = "M1Scalper"
    pocket: str = "scalp"
    knobs: tuple[str, ...] = (
        *(
            _M1 + n
            for n in (
                "fallback.sl_floor",
                "fallback.tp_floor",
                "fallback.sl_atr_mult",
                "fallback.tp_atr_mult",
                "fallback.momentum_thresh",
                "fallback.wick_min",
                "timeout_sec",
                "nwave.min_leg_pips",
                "fallback.atr_floor_tactical",
            )
        ),
        *_LOWVOL_KNOBS,
    )
    threshold: Threshold | None = None

    def candidates(self, f: Features, k: Knobs) -> Candidates:
        return Candidates(self.signals(f, k), {})

    def signals(self, f: Features, k: Knobs) -> NDArray[np.int8]:
        c = f.candles
        pip = c.pip
        impulse = np.r_[np.full(3, np.nan), c.close[3:] - c.close[:-3]] / pip
        leg_up = (c.close - prev_min(c.low, 10)) / pip
        leg_down = (prev_max(c.high, 10) - c.close) / pip
        lower_wick = (np.minimum(c.open, c.close) - c.low) / pip
        upper_wick = (c.high - np.maximum(c.open, c.close)) / pip
        momentum = 1000.0 * float(k[_M1 + "fallback.momentum_thresh"])
        wick = 1000.0 * float(k[_M1 + "fallback.wick_min"])
        leg = float(k[_M1 + "nwave.min_leg_pips"])
        out = np.zeros(len(c), dtype=np.int8)
        with np.errstate(invalid="ignore"):
            out[(impulse >= momentum) & (leg_up >= leg) & (lower_wick >= wick)] = 1
            out[(impulse <= -momentum) & (leg_down >= leg) & (upper_wick >= wick)] = -1
        return out

    def exits(self, f: Features, i: int, k: Knobs) -> Exits:
        atr = float(f.get("atr_pips")[i])
        atr = max(atr if np.isfinite(atr) else 0.0, float(k[_M1 + "fallback.atr_floor_tactical"]))
        sl = max(float(k[_M1 + "fallback.sl_floor"]), float(k[_M1 + "fallback.sl_atr_mult"]) * atr)
        tp = max(float(k[_M1 + "fallback.tp_floor"]), float(k[_M1 + "fallback.tp_atr_mult"]) * atr)
        lowvol = LowvolExit.from_knobs(k) if int(f.regime_micro[i]) == _QUIET else None
        timeout = max(1, round(float(k[_M1 + "timeout_sec"]) / 60.0))
        return Exits(sl_pips=sl, tp_pips=tp, timeout_bars=timeout, lowvol=lowvol)

    def reentry_block_s(self, k: Knobs) -> float:
        return 0.0


REFERENCE_STRATEGIES: tuple[RefStrategy, ...] = (
    TrendMA(),
    MomentumPulse(),
    MicroVWAPRevert(),
    VolCompressionBreak(),
    RangeExpansionBreak(),
    BbRsiFast(),
    M1Scalper(),
)
