"""Hypothesis properties of the engine on random candles and random signals.

A tiny reference model (who is flat at each open) checks entries independently of the kernel;
the other properties are invariants any correct bar simulator must keep.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, field

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from autolearn.backtest import Candles, Cost, ExitReason, TradeList, run_grid

SIGNAL = ExitReason.SIGNAL


@dataclass(frozen=True, slots=True, kw_only=True)
class RowSignals:
    """Test strategy: knob ``row`` picks one row of a fixed signal matrix."""

    matrix: NDArray[np.int8]
    name: str = "rows"
    defaults: Mapping[str, float] = field(default_factory=lambda: {"row": 0.0})

    def check(self, params: Mapping[str, float]) -> list[str]:
        return []

    def signals(
        self, candles: Candles, param_sets: Sequence[Mapping[str, float]]
    ) -> NDArray[np.int8]:
        return np.stack([self.matrix[int(p["row"])] for p in param_sets])


@st.composite
def _market(draw: st.DrawFn) -> tuple[Candles, NDArray[np.int8]]:
    n = draw(st.integers(2, 120))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    close = 1.1 + np.cumsum(rng.normal(0, 0.0008, n))
    open_ = np.r_[1.1, close[:-1]] + rng.normal(0, 0.0003, n) * (rng.random(n) < 0.2)  # gaps
    high = np.maximum(open_, close) + rng.exponential(0.0004, n)
    low = np.minimum(open_, close) - rng.exponential(0.0004, n)
    candles = Candles(
        instrument="EUR_USD",
        timeframe_s=60,
        time_us=np.arange(n) * 60_000_000,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=np.zeros(n),
    )
    rows = draw(st.integers(1, 4))
    signals = rng.choice(np.array([-1, 0, 0, 0, 1], dtype=np.int8), size=(rows, n))
    return candles, signals


_knobs = st.fixed_dictionaries(
    {
        "sl_pips": st.sampled_from([0.0, 3.0, 8.0]),
        "tp_pips": st.sampled_from([0.0, 4.0, 12.0]),
        "timeout_bars": st.sampled_from([0.0, 1.0, 5.0]),
        "exit_on_signal": st.sampled_from([0.0, 1.0]),
    }
)


def _check_one_set(
    trades: TradeList, signals: NDArray[np.int8], n: int, knobs: Mapping[str, float], spread: float
) -> None:
    reasons = trades.reasons()
    # exits never before entries; one position at a time; nothing left open after the last bar
    assert np.all(trades.exit_bar >= trades.entry_bar)
    assert np.all(trades.exit_time_us >= trades.entry_time_us)
    assert np.all(trades.entry_bar[1:] >= trades.exit_bar[:-1])
    assert np.all(trades.exit_bar <= n - 1)
    # P/L sign follows prices and side
    move = trades.side * (trades.exit_price - trades.entry_price)
    assert np.array_equal(np.sign(trades.pips), np.sign(move))
    assert np.array_equal(np.sign(trades.pl_account), np.sign(trades.pips))
    for k, reason in enumerate(reasons):
        if reason is ExitReason.SL:
            assert trades.pips[k] <= -knobs["sl_pips"] + 1e-6  # a gap only makes it worse
        if reason is ExitReason.TP:
            assert trades.pips[k] >= knobs["tp_pips"] - 1e-6  # a gap only makes it better
        if knobs["timeout_bars"] > 0:
            assert trades.exit_bar[k] - trades.entry_bar[k] + 1 <= knobs["timeout_bars"]
    # reference model of entries: a signal enters at the next open exactly when flat there
    entries = dict(zip(trades.entry_bar.tolist(), trades.side.tolist(), strict=True))
    for i in range(1, n):
        spans = zip(trades.entry_bar, trades.exit_bar, reasons, strict=True)
        live = any(e < i and (x > i or (x == i and r is not SIGNAL)) for e, x, r in spans)
        if signals[i - 1] != 0 and not live:
            assert entries.get(i) == signals[i - 1]
        if i in entries:
            assert signals[i - 1] == entries[i]
    # END only ever closes the last trade, on the last bar (the entry model above already
    # requires every executed entry to appear, so a position never closed would be missing)
    for k, reason in enumerate(reasons):
        if reason is ExitReason.END:
            assert (k, trades.exit_bar[k]) == (len(trades) - 1, n - 1)


@settings(max_examples=80, deadline=None)
@given(_market(), _knobs, st.sampled_from([0.0, 0.8]))
def test_engine_invariants(
    market: tuple[Candles, NDArray[np.int8]], knobs: dict[str, float], spread: float
) -> None:
    """Exits follow entries, P/L signs follow prices, entries follow the flat-at-open model."""
    candles, signals = market
    sets = [{"row": r, **knobs} for r in range(len(signals))]
    grid = run_grid(candles, RowSignals(matrix=signals), sets, Cost(spread_pips=spread))
    for r in range(len(signals)):
        _check_one_set(grid.run(r).trades, signals[r], len(candles), knobs, spread)


@settings(max_examples=40, deadline=None)
@given(
    _market(),
    st.lists(_knobs, min_size=1, max_size=6),
    st.randoms(use_true_random=False),
    st.sampled_from([1, 2, 256]),
)
def test_grid_is_independent_of_set_order_and_chunking(
    market: tuple[Candles, NDArray[np.int8]], knob_list: list[dict[str, float]], rnd, chunk: int
) -> None:
    """Shuffling the knob sets (and chunking them) permutes the results and changes nothing else."""
    candles, signals = market
    strat = RowSignals(matrix=signals)
    sets = [{"row": k % len(signals), **kn} for k, kn in enumerate(knob_list)]
    order = list(range(len(sets)))
    rnd.shuffle(order)
    base = run_grid(candles, strat, sets)
    shuffled = run_grid(candles, strat, [sets[k] for k in order], chunk_size=chunk)
    for pos, k in enumerate(order):
        np.testing.assert_equal(astuple(shuffled.summaries[pos]), astuple(base.summaries[k]))
        a, b = shuffled.run(pos).trades, base.run(k).trades
        for name in ("entry_bar", "exit_bar", "side", "entry_price", "exit_price", "reason"):
            assert np.array_equal(getattr(a, name), getattr(b, name))


def test_trade_buffer_overflow_reruns_with_the_exact_size() -> None:
    """Signals on every bar overflow the first trade buffer; the rerun loses no trade."""
    n = 6000
    rng = np.random.default_rng(7)
    close = 1.1 + np.cumsum(rng.normal(0, 0.0005, n))
    candles = Candles(
        instrument="EUR_USD",
        timeframe_s=60,
        time_us=np.arange(n) * 60_000_000,
        open=close,
        high=close + 0.0003,
        low=close - 0.0003,
        close=close,
        volume=np.zeros(n),
    )
    signals = np.tile(np.array([1, -1], dtype=np.int8), (2, n // 2))
    grid = run_grid(
        candles, RowSignals(matrix=signals), [{"row": 0}, {"row": 1, "timeout_bars": 1}]
    )
    # row 0 reverses at every open after the first: n - 1 trades (the last one by END)
    assert grid.summaries[0].n_trades == n - 1
    assert len(grid.trades) == sum(s.n_trades for s in grid.summaries) > max(1024, 2 * n // 8)
