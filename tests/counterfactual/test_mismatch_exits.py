"""check_recorded (the model guard) and choose_exit (exit knobs on re-simulated trades)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from autolearn.backtest import Candles
from autolearn.counterfactual.exits import choose_exit, resimulate_exits
from autolearn.counterfactual.mismatch import check_recorded


class TestCheckRecorded:
    def test_small_slippage_is_verified(self) -> None:
        """Recorded = simulated +/- 0.5 pips: cf_verified."""
        rng = np.random.default_rng(0)
        sim = rng.normal(0, 5, 200)
        c = check_recorded(sim, sim + rng.uniform(-0.5, 0.5, 200), tolerance_pips=2.0)
        assert (c.ok, c.code, c.n) == (True, "cf_verified", 200)
        assert c.mean_abs_diff < 0.5

    def test_another_clock_is_a_mismatch(self) -> None:
        """Recorded outcomes unrelated to the simulated ones: counterfactual_mismatch."""
        rng = np.random.default_rng(0)
        c = check_recorded(rng.normal(0, 5, 200), rng.normal(0, 5, 200), tolerance_pips=2.0)
        assert (c.ok, c.code) == (False, "counterfactual_mismatch")
        assert c.mean_abs_diff > 2.0

    def test_too_many_trades_far_off(self) -> None:
        """30 % of trades 10 pips off with a small mean: still a mismatch (share rule)."""
        sim = np.zeros(100)
        rec = np.where(np.arange(100) < 30, 3.0, 0.0)
        c = check_recorded(sim, rec, tolerance_pips=2.0)
        assert c.mean_abs_diff < 2.0 and c.share_off == pytest.approx(0.3)
        assert not c.ok

    def test_nan_pairs_are_excluded_and_few_pairs_unverified(self) -> None:
        """NaN on either side is dropped and counted; under min_trades: cf_unverified."""
        sim = np.array([1.0, math.nan, 2.0, 3.0])
        rec = np.array([1.0, 1.0, math.nan, 3.0])
        c = check_recorded(sim, rec, tolerance_pips=1.0)
        assert (c.ok, c.code, c.n, c.n_excluded) == (True, "cf_unverified", 2, 2)

    def test_bad_arguments_raise(self) -> None:
        """Different lengths or a tolerance of 0 are caller bugs."""
        with pytest.raises(ValueError, match="one length"):
            check_recorded(np.zeros(2), np.zeros(3), tolerance_pips=1.0)
        with pytest.raises(ValueError, match="tolerance_pips"):
            check_recorded(np.zeros(2), np.zeros(2), tolerance_pips=0.0)


def _trades(candles: Candles, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    entry = np.sort(rng.choice(np.arange(10, len(candles) - 200), n, replace=False))
    side = rng.choice(np.array([-1, 1], np.int8), n)
    day = (candles.time_us[entry] // 86_400_000_000).astype(np.int64)
    return entry.astype(np.int64), side, day


class TestChooseExit:
    def test_costly_tight_stop_is_loosened(self, make_candles: Callable[..., Candles]) -> None:
        """Trades that are right over 20 bars: a 1-pip SL stops them out, a looser one is better."""
        candles = make_candles(20 * 1440, seed=9)
        entry, _, day = _trades(candles, 600, 1)
        side = np.where(candles.close[entry + 19] > candles.open[entry], 1, -1).astype(np.int8)
        c = choose_exit(
            candles=candles,
            entry_bar=entry,
            side=side,
            day=day,
            param="sl_pips",
            grid=[1.0, 2.0, 4.0, 8.0, 16.0],
            current=1.0,
            sl_pips=1.0,
            tp_pips=0.0,
            timeout_bars=20,
            spread_pips=2.0,
            max_steps=2,
        )
        assert c.code == "cf_improves"
        assert c.value in (2.0, 4.0)
        assert c.mean_pips_candidate > c.mean_pips_current
        assert c.as_dict()["param"] == "sl_pips"

    def test_no_true_difference_rarely_moves(self, make_candles: Callable[..., Candles]) -> None:
        """Timeout choice on a driftless random walk, no spread: moves in under 5 of 40 seeds."""
        moves = 0
        for seed in range(40):
            candles = make_candles(12 * 1440, seed=100 + seed)
            entry, side, day = _trades(candles, 300, seed)
            c = choose_exit(
                candles=candles,
                entry_bar=entry,
                side=side,
                day=day,
                param="timeout_bars",
                grid=[10, 20, 30, 40, 60],
                current=30,
                sl_pips=0.0,
                tp_pips=0.0,
                timeout_bars=0,
                spread_pips=0.0,
                max_steps=1,
            )
            moves += c.code == "cf_improves"
            assert c.value in (20.0, 30.0, 40.0)
        assert moves < 5

    def test_fail_closed_codes(self, make_candles: Callable[..., Candles]) -> None:
        """Off-grid current and too few trades keep the current value."""
        candles = make_candles(5 * 1440, seed=9)
        entry, side, day = _trades(candles, 20, 1)
        kw: dict[str, object] = {
            "candles": candles,
            "entry_bar": entry,
            "side": side,
            "day": day,
            "param": "tp_pips",
            "grid": [5.0, 10.0],
            "sl_pips": 5.0,
            "tp_pips": 0.0,
            "timeout_bars": 20,
            "spread_pips": 0.5,
            "max_steps": 1,
        }
        off = choose_exit(current=7.0, **kw)  # type: ignore[arg-type]
        few = choose_exit(current=5.0, **kw)  # type: ignore[arg-type]
        assert (off.code, off.value) == ("cf_current_off_grid", 7.0)
        assert (few.code, few.value) == ("cf_insufficient", 5.0)
        with pytest.raises(ValueError, match="param"):
            choose_exit(current=5.0, **{**kw, "param": "trail"})  # type: ignore[arg-type]

    def test_resimulate_matches_per_trade_parameters(
        self, make_candles: Callable[..., Candles]
    ) -> None:
        """Per-trade parameters give the same pips as one call per trade."""
        candles = make_candles(3000, seed=5)
        entry, side, _ = _trades(candles, 50, 2)
        sl = np.linspace(2, 12, 50)
        together = resimulate_exits(
            candles, entry, side, sl_pips=sl, tp_pips=6.0, timeout_bars=30, spread_pips=0.4
        )
        one = [
            resimulate_exits(
                candles,
                entry[k : k + 1],
                side[k : k + 1],
                sl_pips=sl[k],
                tp_pips=6.0,
                timeout_bars=30,
                spread_pips=0.4,
            )[0]
            for k in range(50)
        ]
        np.testing.assert_allclose(together, one, rtol=0, atol=1e-12)
