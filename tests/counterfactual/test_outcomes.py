"""signal_outcomes: placement on the candles, the reasons a signal is not placed, defaults."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from autolearn.backtest import Candles
from autolearn.core.model import EntrySignal, Side
from autolearn.counterfactual import _kernel
from autolearn.counterfactual.exits import resimulate_exits
from autolearn.counterfactual.outcomes import signal_outcomes


def _close_at(candles: Candles, bar: int) -> datetime:
    return datetime.fromtimestamp(int(candles.time_us[bar]) / 1e6, tz=UTC) + timedelta(
        seconds=candles.timeframe_s
    )


def _signal(
    candles: Candles,
    bar: int | None = None,
    *,
    at: datetime | None = None,
    k: int = 0,
    **kw: object,
) -> EntrySignal:
    at = at if at is not None else _close_at(candles, bar if bar is not None else 0)
    b = bar if bar is not None else 0
    args: dict[str, object] = {
        "signal_id": f"s{k}",
        "at": at,
        "instrument": candles.instrument,
        "pocket": "p",
        "strategy": "st",
        "side": Side.LONG,
        "price": float(candles.close[b]),
        "sl_pips": 5.0,
        "tp_pips": 8.0,
        "timeout_s": 600.0,
        "scores": {"confidence": 0.5},
        "taken": False,
        "not_taken": "threshold",
    }
    args.update(kw)
    return EntrySignal(**args)  # type: ignore[arg-type]


class TestPlacement:
    def test_signal_at_a_close_enters_at_the_next_open(
        self, make_candles: Callable[..., Candles]
    ) -> None:
        """A signal at bar 10's close is placed on bar 10 and equals the exit re-simulation."""
        candles = make_candles(300, seed=3)
        out = signal_outcomes(candles, [_signal(candles, 10)], spread_pips=0.6)
        assert out.placed.tolist() == [True] and out.bar.tolist() == [10]
        expected = resimulate_exits(
            candles,
            np.array([11]),
            np.array([1], np.int8),
            sl_pips=5.0,
            tp_pips=8.0,
            timeout_bars=10,
            spread_pips=0.6,
        )
        assert out.pips[0] == pytest.approx(expected[0], abs=1e-12)
        assert out.problems == ()

    def test_decision_inside_a_bar_never_fills_before_it(
        self, make_candles: Callable[..., Candles]
    ) -> None:
        """20 s into bar 11: decision bar 11, entry at bar 12's open (after the decision)."""
        candles = make_candles(300, seed=3)
        at = _close_at(candles, 10) + timedelta(seconds=20)
        out = signal_outcomes(candles, [_signal(candles, 11, at=at)], spread_pips=0.0)
        assert out.bar.tolist() == [11]

    def test_short_side_and_defaults(self, make_candles: Callable[..., Candles]) -> None:
        """No SL/TP/timeout: no levels, timeout_bars_default bars; short mirrors long."""
        candles = make_candles(300, seed=3)
        sig = _signal(candles, 10, side=Side.SHORT, sl_pips=None, tp_pips=None, timeout_s=None)
        out = signal_outcomes(candles, [sig], spread_pips=0.0, timeout_bars_default=7)
        assert out.exit_bar.tolist() == [17]
        assert out.exit_reason.tolist() == [_kernel.REASON_TIMEOUT]
        assert out.pips[0] == pytest.approx(
            -(candles.close[17] - candles.open[11]) / candles.pip, abs=1e-9
        )

    def test_timeout_seconds_round_up_to_bars(self, make_candles: Callable[..., Candles]) -> None:
        """A 150 s timeout on M1 bars exits at the close of the 3rd bar held."""
        candles = make_candles(300, seed=3)
        sig = _signal(candles, 10, sl_pips=None, tp_pips=None, timeout_s=150.0)
        out = signal_outcomes(candles, [sig], spread_pips=0.0)
        assert out.exit_bar.tolist() == [13]


class TestNotPlaced:
    def test_outside_in_gap_and_other_instrument(
        self, make_candles: Callable[..., Candles]
    ) -> None:
        """Before, after, in a hole, on the last bar, another pair: each named, NaN pips."""
        t = np.concatenate([np.arange(100), np.arange(200, 300)]).astype(np.int64) * 60_000_000
        candles = make_candles(200, seed=1, times=t + 1_772_409_600_000_000)
        first = _close_at(candles, 0)
        sigs = [
            _signal(candles, 0, at=first - timedelta(minutes=5), k=0),  # before
            _signal(candles, 99, at=_close_at(candles, 99) + timedelta(minutes=30), k=1),  # hole
            _signal(candles, 199, k=2),  # the last bar: nothing to enter on
            _signal(candles, 5, k=3, instrument="USD_JPY"),
            _signal(candles, 5, k=4),  # fine
        ]
        out = signal_outcomes(candles, sigs, spread_pips=0.5)
        assert out.placed.tolist() == [False, False, False, False, True]
        assert out.bar.tolist()[:4] == [-1, -1, -1, -1]
        assert np.isnan(out.pips[:4]).all() and np.isfinite(out.pips[4])
        codes = dict(out.problems)
        assert set(codes) == {"signal_outside_candles", "signal_in_gap", "signal_other_instrument"}
        assert codes["signal_outside_candles"].startswith("2 signals")
        assert "s1" in codes["signal_in_gap"]

    def test_a_few_far_prices_are_bad_rows(self, make_candles: Callable[..., Candles]) -> None:
        """One signal priced 100 pips off among ten: that one is not placed."""
        candles = make_candles(300, seed=2)
        sigs = [_signal(candles, 10 + i, k=i) for i in range(10)]
        sigs[3] = _signal(candles, 13, k=3, price=float(candles.close[13]) + 0.01)
        out = signal_outcomes(candles, sigs, spread_pips=0.0)
        assert out.placed.sum() == 9 and not out.placed[3]
        assert [c for c, _ in out.problems] == ["signal_price_far"]

    def test_most_prices_far_is_another_clock(self, make_candles: Callable[..., Candles]) -> None:
        """30 of 40 signals priced 60 pips off their bar: candle_clock, and nothing is placed."""
        candles = make_candles(1000, seed=2)
        sigs = [
            _signal(candles, 20 * i, k=i, price=float(candles.close[20 * i]) + 0.006 * (i < 30))
            for i in range(40)
        ]
        out = signal_outcomes(candles, sigs, spread_pips=0.0)
        assert not out.placed.any()
        assert (out.bar == -1).all() and np.isnan(out.pips).all()
        assert [c for c, _ in out.problems] == ["candle_clock"]
        assert dict(out.problems)["candle_clock"].startswith("30 of 40")
