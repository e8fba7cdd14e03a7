"""Bar-based backtest engine: many knob sets per call, one compiled loop (``_kernel``).

Semantics (every number the engine returns follows from these):

* **Entry**: a strategy signal on bar ``i`` (decided at its close) enters at the open of bar
  ``i + 1``. One position at a time per knob set: a same-direction signal while in a position is
  ignored; an opposite one closes it at that open (``SIGNAL``, when ``exit_on_signal`` is 1) and
  opens the reverse position at the same open.
* **Spread**: candle prices are treated as mid. Long fills at ``open + spread/2`` and closes at
  ``price - spread/2``; short the mirror. A round trip with no price move costs the spread.
* **Exits**: ``sl_pips`` / ``tp_pips`` from the entry fill (0 = off), checked on the closing side
  of the quote from the entry bar on. An open already through a level (a gap) fills at that
  open; a bar that touches both SL and TP counts as SL (conservative: the path inside a bar is
  unknown). ``timeout_bars`` (0 = off) closes at the close of the ``timeout_bars``-th bar held.
  A position still open on the last bar closes at its close (``END``).
* **Money**: ``pips = side * (exit - entry) / pip``. Account P/L = ``side * (exit - entry) *
  units`` in the quote currency, converted to the account currency: as is when the quote is the
  account currency (EUR_USD for a USD account), divided by the exit price when the base is (USD_JPY
  for a USD account: JPY / (JPY per USD)), else multiplied by ``Cost.quote_to_account``.

Pure: no I/O, no clock; numba compiles the kernel once and caches it on disk.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from autolearn.backtest import _kernel
from autolearn.backtest.candles import Candles
from autolearn.backtest.strategies import Params, Strategy, get_strategy
from autolearn.errors import ConfigError

__all__ = [
    "EXIT_DEFAULTS",
    "Cost",
    "ExitReason",
    "GridResult",
    "RunResult",
    "Summary",
    "TradeList",
    "expand_grid",
    "run_grid",
    "run_one",
]

EXIT_DEFAULTS: Mapping[str, float] = {
    "sl_pips": 0.0,
    "tp_pips": 0.0,
    "timeout_bars": 0.0,
    "exit_on_signal": 1.0,
}


class ExitReason(StrEnum):
    """Why a trade closed. ``TradeList.reason`` holds the index into ``REASONS``."""

    SL = "SL"
    TP = "TP"
    TIMEOUT = "TIMEOUT"
    SIGNAL = "SIGNAL"
    END = "END"


REASONS = (ExitReason.SL, ExitReason.TP, ExitReason.TIMEOUT, ExitReason.SIGNAL, ExitReason.END)


@dataclass(frozen=True, slots=True, kw_only=True)
class Cost:
    """Trading costs and sizing shared by every knob set of a run."""

    spread_pips: float = 0.0
    units: int = 10_000
    account_currency: str = "USD"
    quote_to_account: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.spread_pips) and self.spread_pips >= 0):
            raise ConfigError(f"spread_pips must be finite and >= 0, got {self.spread_pips!r}")
        if isinstance(self.units, bool) or not isinstance(self.units, int) or self.units <= 0:
            raise ConfigError(f"units must be a positive int, got {self.units!r}")
        rate = self.quote_to_account
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise ConfigError(f"quote_to_account must be finite and > 0, got {rate!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeList:
    """Closed trades as columns (one row per trade, ordered by knob set then time).

    Times are the open times of the entry and exit bars (the moment inside a bar is unknown);
    ``reason`` indexes ``REASONS``; ``side`` is +1 long, -1 short.
    """

    set_index: NDArray[np.int64]
    entry_bar: NDArray[np.int64]
    exit_bar: NDArray[np.int64]
    entry_time_us: NDArray[np.int64]
    exit_time_us: NDArray[np.int64]
    side: NDArray[np.int8]
    entry_price: NDArray[np.float64]
    exit_price: NDArray[np.float64]
    pips: NDArray[np.float64]
    pl_account: NDArray[np.float64]
    reason: NDArray[np.int8]

    def __len__(self) -> int:
        return len(self.set_index)

    def reasons(self) -> list[ExitReason]:
        """The exit reasons as enum values."""
        return [REASONS[code] for code in self.reason]

    def select(self, mask: NDArray[np.bool_]) -> TradeList:
        """The rows where ``mask`` is true."""
        return TradeList(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    """Metrics of one knob set. PF is inf with wins and no losses, NaN with no trades."""

    n_trades: int
    net_pips: float
    profit_factor: float
    win_rate: float
    max_drawdown_pips: float
    expectancy_pips: float
    net_account: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """One knob set's trades and summary."""

    params: Mapping[str, float]
    trades: TradeList
    summary: Summary


@dataclass(frozen=True, slots=True, kw_only=True)
class GridResult:
    """Every knob set of a grid, in the order given: ``summaries[k]`` belongs to ``params[k]``."""

    strategy: str
    params: tuple[Mapping[str, float], ...]
    trades: TradeList
    summaries: tuple[Summary, ...]

    def run(self, k: int) -> RunResult:
        """The result of knob set ``k`` alone."""
        return RunResult(
            params=self.params[k],
            trades=self.trades.select(self.trades.set_index == k),
            summary=self.summaries[k],
        )

    def metric(self, name: str) -> NDArray[np.float64]:
        """One summary field across all knob sets, e.g. ``metric("net_pips")``."""
        return np.array([getattr(s, name) for s in self.summaries], dtype=np.float64)


def expand_grid(grid: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """The cartesian product of knob values, in a fixed order (last knob varies fastest)."""
    names = list(grid)
    return [
        dict(zip(names, map(float, combo), strict=True))
        for combo in itertools.product(*(grid[n] for n in names))
    ]


def _complete(strategy: Strategy, param_sets: Sequence[Params]) -> list[dict[str, float]]:
    known = {**EXIT_DEFAULTS, **strategy.defaults}
    problems: list[str] = []
    out: list[dict[str, float]] = []
    for k, given in enumerate(param_sets):
        unknown = sorted(set(given) - set(known))
        if unknown:
            problems.append(f"param_sets[{k}]: unknown knobs {unknown}; known: {sorted(known)}")
            continue
        params = {name: float(given.get(name, default)) for name, default in known.items()}
        for name in ("sl_pips", "tp_pips", "timeout_bars"):
            if not (math.isfinite(params[name]) and params[name] >= 0):
                problems.append(f"param_sets[{k}].{name}: must be >= 0, got {params[name]!r}")
        if params["timeout_bars"] != int(params["timeout_bars"]):
            problems.append(f"param_sets[{k}].timeout_bars: must be whole")
        problems.extend(f"param_sets[{k}].{p}" for p in strategy.check(params))
        out.append(params)
    if problems:
        raise ConfigError(f"invalid knob sets for strategy {strategy.name!r}", problems)
    return out


def _account_factor(candles: Candles, cost: Cost, exit_price: NDArray[np.float64]) -> NDArray[Any]:
    base, _, quote = candles.instrument.partition("_")
    account = cost.account_currency.upper()
    if quote == account:
        return np.ones_like(exit_price)
    if base == account:
        return 1.0 / exit_price
    if cost.quote_to_account is not None:
        return np.full_like(exit_price, cost.quote_to_account)
    raise ConfigError(
        f"cannot convert {quote} P/L of {candles.instrument} to {account}: "
        "set Cost.quote_to_account"
    )


def run_grid(
    candles: Candles,
    strategy: Strategy | str,
    param_grid: Mapping[str, Sequence[float]] | Sequence[Params],
    cost: Cost | None = None,
    *,
    chunk_size: int = 256,
) -> GridResult:
    """Backtest every knob set of ``param_grid`` (a dict of value lists or a list of dicts).

    Knobs are the strategy's plus ``sl_pips``, ``tp_pips``, ``timeout_bars``,
    ``exit_on_signal`` (defaults in ``EXIT_DEFAULTS``); missing knobs take their defaults.
    ``chunk_size`` bounds memory: signals are int8 ``chunk_size x bars`` at a time.
    """
    strat = get_strategy(strategy) if isinstance(strategy, str) else strategy
    cost = cost or Cost()
    sets = _complete(
        strat, expand_grid(param_grid) if isinstance(param_grid, Mapping) else param_grid
    )
    pip = candles.pip
    parts: list[tuple[NDArray[Any], ...]] = []
    summaries: list[Summary] = []
    for start in range(0, len(sets), max(1, chunk_size)):
        chunk = sets[start : start + max(1, chunk_size)]
        trades, sums = _run_chunk(candles, strat, chunk, cost, pip)
        parts.append((trades[0] + start, *trades[1:]))
        summaries.extend(sums)
    columns = [np.concatenate(col) for col in zip(*parts, strict=True)] if parts else []
    trade_list = _trade_list(candles, cost, columns, pip)
    net_account = np.bincount(
        trade_list.set_index, weights=trade_list.pl_account, minlength=len(sets)
    )
    summaries = [
        Summary(**{**{f.name: getattr(s, f.name) for f in fields(s)}, "net_account": float(v)})
        for s, v in zip(summaries, net_account, strict=True)
    ]
    return GridResult(
        strategy=strat.name, params=tuple(sets), trades=trade_list, summaries=tuple(summaries)
    )


def run_one(
    candles: Candles, strategy: Strategy | str, params: Params, cost: Cost | None = None
) -> RunResult:
    """Backtest one knob set (a grid of one)."""
    return run_grid(candles, strategy, [params], cost).run(0)


def _run_chunk(
    candles: Candles, strat: Strategy, chunk: list[dict[str, float]], cost: Cost, pip: float
) -> tuple[tuple[NDArray[Any], ...], list[Summary]]:
    signals = np.ascontiguousarray(strat.signals(candles, chunk), dtype=np.int8)
    if signals.shape != (len(chunk), len(candles)):
        raise ConfigError(f"strategy {strat.name!r} returned signals of shape {signals.shape}")
    sl = np.array([p["sl_pips"] * pip for p in chunk])
    tp = np.array([p["tp_pips"] * pip for p in chunk])
    timeout = np.array([int(p["timeout_bars"]) for p in chunk], dtype=np.int64)
    exit_on_signal = np.array([p["exit_on_signal"] != 0 for p in chunk])
    args = (
        candles.open,
        candles.high,
        candles.low,
        candles.close,
        signals,
        sl,
        tp,
        timeout,
        exit_on_signal,
        cost.spread_pips * pip / 2.0,
        pip,
    )
    # Most grids trade far less than once per 8 bars; a rare overflow reruns at the exact size.
    capacity = max(1024, len(chunk) * len(candles) // 8)
    out = _kernel.simulate(*args, capacity)
    if int(out[0]) > capacity:
        out = _kernel.simulate(*args, int(out[0]))
    count = int(out[0])
    n, wins, gross_win, gross_loss, max_dd = out[8:]
    summaries = []
    for k in range(len(chunk)):
        trades = int(n[k])
        net = float(gross_win[k] - gross_loss[k])
        summaries.append(
            Summary(
                n_trades=trades,
                net_pips=net,
                profit_factor=_profit_factor(float(gross_win[k]), float(gross_loss[k]), trades),
                win_rate=float(wins[k]) / trades if trades else math.nan,
                max_drawdown_pips=float(max_dd[k]),
                expectancy_pips=net / trades if trades else math.nan,
                net_account=0.0,
            )
        )
    return tuple(col[:count] for col in out[1:8]), summaries


def _profit_factor(gross_win: float, gross_loss: float, trades: int) -> float:
    if trades == 0:
        return math.nan
    if gross_loss == 0:
        return math.inf if gross_win > 0 else math.nan
    return gross_win / gross_loss


def _trade_list(candles: Candles, cost: Cost, columns: list[NDArray[Any]], pip: float) -> TradeList:
    if not columns:
        empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float64)
        columns = [
            empty_i,
            empty_i,
            empty_i,
            np.zeros(0, np.int8),
            empty_f,
            empty_f,
            np.zeros(0, np.int8),
        ]
    set_index, entry_bar, exit_bar, side, entry_px, exit_px, reason = columns
    move = side * (exit_px - entry_px)
    return TradeList(
        set_index=set_index,
        entry_bar=entry_bar,
        exit_bar=exit_bar,
        entry_time_us=candles.time_us[entry_bar],
        exit_time_us=candles.time_us[exit_bar],
        side=side,
        entry_price=entry_px,
        exit_price=exit_px,
        pips=move / pip,
        pl_account=move * cost.units * _account_factor(candles, cost, exit_px),
        reason=reason,
    )
