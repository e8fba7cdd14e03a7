"""The counterfactual kernel against the backtest engine, trade by trade, and its tie rules."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from autolearn.backtest import Candles, Cost, load_candles, run_one
from autolearn.counterfactual import _kernel
from autolearn.counterfactual.exits import resimulate_exits

DATA = Path(__file__).parent.parent / "data" / "fx" / "backtesting-py" / "EURUSD.csv"


@dataclass(frozen=True, slots=True, kw_only=True)
class FixedSignals:
    """Test strategy: the same pre-set signals (bar index -> side) for every knob set."""

    at: Mapping[int, int]
    name: str = "fixed"
    defaults: Mapping[str, float] = field(default_factory=dict)

    def check(self, params: Mapping[str, float]) -> list[str]:
        return []

    def signals(
        self, candles: Candles, param_sets: Sequence[Mapping[str, float]]
    ) -> NDArray[np.int8]:
        out = np.zeros((len(param_sets), len(candles)), dtype=np.int8)
        for bar, side in self.at.items():
            out[:, bar] = side
        return out


def _kernel_run(
    candles: Candles,
    entries: Mapping[int, int],
    *,
    sl: float,
    tp: float,
    timeout: int,
    spread: float = 0.0,
) -> tuple[np.ndarray, ...]:
    bars = np.array(sorted(entries), dtype=np.int64)
    pip = candles.pip
    m = bars.size
    return _kernel.simulate_entries(
        candles.open,
        candles.high,
        candles.low,
        candles.close,
        bars + 1,
        np.array([entries[int(b)] for b in bars], dtype=np.int8),
        np.full(m, sl * pip),
        np.full(m, tp * pip),
        np.full(m, timeout, dtype=np.int64),
        np.full(len(candles), spread * pip / 2),
        pip,
    )


@pytest.fixture(name="bars", scope="module")
def fixture_bars() -> Candles:
    """The real EUR/USD H1 bars."""
    return load_candles(DATA)


class TestAgreesWithTheEngine:
    @pytest.mark.parametrize(
        ("sl", "tp", "timeout", "spread"),
        [(8.0, 12.0, 40, 0.0), (5.0, 0.0, 30, 0.8), (0.0, 6.0, 25, 1.5), (3.0, 3.0, 10, 0.3)],
    )
    def test_trade_by_trade(
        self,
        make_candles: Callable[..., Candles],
        sl: float,
        tp: float,
        timeout: int,
        spread: float,
    ) -> None:
        """Entries spaced beyond the timeout (one position never blocks another): same trades."""
        candles = make_candles(6000, seed=11)
        rng = np.random.default_rng(5)
        entries = {int(b): int(rng.choice([-1, 1])) for b in range(10, 5900, 97)}
        engine = run_one(
            candles,
            FixedSignals(at=entries),
            {"sl_pips": sl, "tp_pips": tp, "timeout_bars": timeout, "exit_on_signal": 0},
            Cost(spread_pips=spread),
        ).trades
        exit_bar, entry_px, exit_px, pips, reason = _kernel_run(
            candles, entries, sl=sl, tp=tp, timeout=timeout, spread=spread
        )
        assert len(engine) == len(entries)
        np.testing.assert_array_equal(exit_bar, engine.exit_bar)
        np.testing.assert_array_equal(reason, engine.reason)
        np.testing.assert_allclose(entry_px, engine.entry_price, rtol=0, atol=1e-12)
        np.testing.assert_allclose(exit_px, engine.exit_price, rtol=0, atol=1e-12)
        np.testing.assert_allclose(exit_px, engine.exit_price, rtol=0, atol=1e-12)
        np.testing.assert_allclose(pips, engine.pips, rtol=0, atol=1e-9)

    def test_overlapping_entries_are_independent(
        self, make_candles: Callable[..., Candles]
    ) -> None:
        """Two entries one bar apart both run to their own exit (the engine would skip one)."""
        candles = make_candles(500, seed=2)
        exit_bar, _, _, _, reason = _kernel_run(candles, {10: 1, 11: 1}, sl=0.0, tp=0.0, timeout=20)
        assert exit_bar.tolist() == [30, 31]
        assert reason.tolist() == [_kernel.REASON_TIMEOUT] * 2


class TestTieRules:
    """Hand-checked cases on the real EUR/USD H1 bars (see tests/backtest/test_engine_rules)."""

    def test_bar_touching_sl_and_tp_is_a_loss(self, bars: Candles) -> None:
        """Bar 21 reaches both SL 5 pips (1.07212 >= low 1.0721) and TP 20 pips: SL, -5."""
        exit_bar, _, _, pips, reason = _kernel_run(bars, {20: 1}, sl=5, tp=20, timeout=0)
        assert (int(exit_bar[0]), int(reason[0])) == (21, _kernel.REASON_SL)
        assert pips[0] == pytest.approx(-5.0, abs=1e-9)

    def test_gap_through_sl_fills_at_the_open(self, bars: Candles) -> None:
        """Short Friday 20:00 at 1.07029, SL 30 pips; Sunday opens at 1.0893: -190.1 pips."""
        exit_bar, _, exit_px, pips, reason = _kernel_run(bars, {58: -1}, sl=30, tp=100, timeout=0)
        assert (int(exit_bar[0]), int(reason[0])) == (60, _kernel.REASON_SL)
        assert exit_px[0] == pytest.approx(1.0893, abs=1e-12)
        assert pips[0] == pytest.approx(-190.1, abs=1e-9)

    def test_timeout_exits_at_the_close(self, bars: Candles) -> None:
        """Long at bar 1's open 1.07214 for 3 bars exits at bar 3's close 1.07202: -1.2 pips."""
        exit_bar, _, _, pips, reason = _kernel_run(bars, {0: 1}, sl=0, tp=0, timeout=3)
        assert (int(exit_bar[0]), int(reason[0])) == (3, _kernel.REASON_TIMEOUT)
        assert pips[0] == pytest.approx(-1.2, abs=1e-9)

    def test_open_trade_on_the_last_bar_ends_there(
        self, make_candles: Callable[..., Candles]
    ) -> None:
        """No exit before the data ends: END at the last bar's close."""
        candles = make_candles(50, seed=1)
        exit_bar, _, _, _, reason = _kernel_run(candles, {40: 1}, sl=0, tp=0, timeout=0)
        assert (int(exit_bar[0]), int(reason[0])) == (49, _kernel.REASON_END)

    def test_entry_outside_the_candles_is_not_simulated(
        self, make_candles: Callable[..., Candles]
    ) -> None:
        """An entry bar past the end gives NaN and REASON_NONE, not a crash."""
        candles = make_candles(50, seed=1)
        pips = resimulate_exits(
            candles,
            np.array([50, -1, 10]),
            np.array([1, 1, 1], np.int8),
            sl_pips=0.0,
            tp_pips=0.0,
            timeout_bars=5,
            spread_pips=0.0,
        )
        assert np.isnan(pips[:2]).all() and np.isfinite(pips[2])


class TestPerBarSpread:
    def test_per_bar_spread_costs_each_fill(self, make_candles: Callable[..., Candles]) -> None:
        """With the candles' own spread, entry pays bar e's half spread and exit bar x's."""
        spread = np.linspace(0.5, 3.0, 100)
        candles = make_candles(100, seed=4, spread=spread)
        pips = resimulate_exits(
            candles,
            np.array([10]),
            np.array([1], np.int8),
            sl_pips=0.0,
            tp_pips=0.0,
            timeout_bars=5,
            spread_pips=9.0,  # ignored: per-bar wins
        )
        mid = (candles.close[14] - candles.open[10]) / candles.pip
        assert pips[0] == pytest.approx(mid - spread[10] / 2 - spread[14] / 2, abs=1e-9)


class TestAgreementProperty:
    # make_candles returns a pure builder: sharing it across examples is safe
    @settings(
        max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        seed=st.integers(0, 10_000),
        sl=st.sampled_from([0.0, 1.0, 3.0, 7.5]),
        tp=st.sampled_from([0.0, 2.0, 5.0, 11.0]),
        timeout=st.integers(1, 40),
        spread=st.sampled_from([0.0, 0.4, 2.5]),
        vol=st.sampled_from([0.5, 2.0, 6.0]),
    )
    def test_any_exits_any_market(
        self,
        make_candles: Callable[..., Candles],
        seed: int,
        sl: float,
        tp: float,
        timeout: int,
        spread: float,
        vol: float,
    ) -> None:
        """Over random markets and exits, non-overlapping entries match the engine exactly."""
        candles = make_candles(1500, seed=seed, vol_pips=vol)
        rng = np.random.default_rng(seed)
        entries = {int(b): int(rng.choice([-1, 1])) for b in range(0, 1450, timeout + 2)}
        engine = run_one(
            candles,
            FixedSignals(at=entries),
            {"sl_pips": sl, "tp_pips": tp, "timeout_bars": timeout, "exit_on_signal": 0},
            Cost(spread_pips=spread),
        ).trades
        exit_bar, _, exit_px, pips, reason = _kernel_run(
            candles, entries, sl=sl, tp=tp, timeout=timeout, spread=spread
        )
        np.testing.assert_array_equal(exit_bar, engine.exit_bar)
        np.testing.assert_array_equal(reason, engine.reason)
        np.testing.assert_allclose(exit_px, engine.exit_price, rtol=0, atol=1e-12)
        np.testing.assert_allclose(pips, engine.pips, rtol=0, atol=1e-9)
