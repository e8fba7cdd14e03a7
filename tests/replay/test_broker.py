"""The paper broker is the backtest engine's twin, and the low-vol exits do what they say."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.backtest import Candles, Cost, load_candles, run_one
from autolearn.backtest.strategies import get_strategy
from autolearn.replay import ExitCode, Exits, LowvolExit, PaperBroker, run_signals

DATA = Path(__file__).resolve().parents[1] / "data/fx/histdata-paskl-fxot"
SLICE = DATA / "DAT_ASCII_EURUSD_M1_201807.part-0001-1500.csv"
_CANDLES = load_candles(SLICE, instrument="EUR_USD")


def _engine_rows(strategy: str, params: dict[str, float], spread: float) -> list[tuple]:
    r = run_one(_CANDLES, strategy, params, Cost(spread_pips=spread))
    t = r.trades
    return [
        (int(a), int(b), int(s), float(ep), float(xp), str(reason).lower())
        for a, b, s, ep, xp, reason in zip(
            t.entry_bar, t.exit_bar, t.side, t.entry_price, t.exit_price, t.reasons(), strict=True
        )
    ]


@settings(max_examples=25, deadline=None)
@given(
    strategy=st.sampled_from(["sma_cross", "bb_rsi", "momentum_breakout"]),
    sl=st.sampled_from([0.0, 2.0, 5.0, 12.0]),
    tp=st.sampled_from([0.0, 3.0, 8.0]),
    timeout=st.sampled_from([0, 1, 5, 30]),
    spread=st.sampled_from([0.0, 0.8, 3.0]),
    exit_on_signal=st.booleans(),
)
def test_broker_matches_run_one(
    strategy: str, sl: float, tp: float, timeout: int, spread: float, exit_on_signal: bool
) -> None:
    """Same signals and exits give the same trades (bars, sides, prices, reasons) as run_one."""
    strat = get_strategy(strategy)
    params = {"sl_pips": sl, "tp_pips": tp, "timeout_bars": float(timeout)}
    params["exit_on_signal"] = 1.0 if exit_on_signal else 0.0
    signals = strat.signals(_CANDLES, [dict(strat.defaults)])[0]
    exits = Exits(sl_pips=sl, tp_pips=tp, timeout_bars=timeout, exit_on_signal=exit_on_signal)
    fills = run_signals(_CANDLES, signals, exits, spread)
    mine = [
        (
            f.position.entry_bar,
            f.exit_bar,
            f.position.side,
            f.position.entry_price,
            f.exit_price,
            f.reason.value,
        )
        for f in fills
    ]
    assert mine == _engine_rows(strategy, params, spread)


def _bars(closes: list[float], spread_high: float = 0.00002) -> Candles:
    """Flat-ish bars around the given closes (open = previous close)."""
    close = np.array(closes)
    open_ = np.r_[close[0], close[:-1]]
    return Candles(
        instrument="EUR_USD",
        timeframe_s=60,
        time_us=np.arange(len(close), dtype=np.int64) * 60_000_000,
        open=open_,
        high=np.maximum(open_, close) + spread_high,
        low=np.minimum(open_, close) - spread_high,
        close=close,
        volume=np.zeros(len(close)),
    )


def _lowvol(**kw: int | float) -> LowvolExit:
    base = {"timeout_bars": 50, "hazard_pips": 3.0, "hazard_debounce": 2}
    base |= {"grace_bars": 100, "scratch_events": 99}
    return LowvolExit(**(base | kw))  # type: ignore[arg-type]


def _run_one_long(candles: Candles, lowvol: LowvolExit) -> tuple[ExitCode, int]:
    broker = PaperBroker(candles, spread_pips=0.0)
    broker.open(
        key="k",
        strategy="s",
        side=1,
        bar=0,
        units=1,
        exits=Exits(sl_pips=50.0, tp_pips=50.0, lowvol=lowvol),
    )
    for i in range(len(candles)):
        fills = broker.step(i)
        if fills:
            return fills[0].reason, fills[0].exit_bar
    raise AssertionError("the position never closed")


def test_hard_timeout_closes_after_its_bar_count() -> None:
    """A low-vol position still open after timeout_bars bars closes there as hard_timeout."""
    candles = _bars([1.1 + 0.00001 * (i % 2) for i in range(20)])
    assert _run_one_long(candles, _lowvol(timeout_bars=7)) == (ExitCode.HARD_TIMEOUT, 6)


def test_hazard_needs_consecutive_adverse_closes() -> None:
    """One adverse close beyond the hazard distance is tolerated; the debounce-th one exits."""
    closes = [1.1, 1.0996, 1.1, 1.0996, 1.0995, 1.0995]  # -4, 0, -4, -5 pips
    assert _run_one_long(_bars(closes), _lowvol(hazard_debounce=2)) == (ExitCode.HAZARD_EXIT, 4)


def test_scratch_after_grace_and_events() -> None:
    """Flat closes only count after the grace; the events-th one scratches the position."""
    candles = _bars([1.1] * 12)
    assert _run_one_long(candles, _lowvol(grace_bars=3, scratch_events=2)) == (ExitCode.SCRATCH, 4)


@pytest.mark.parametrize(
    ("knob", "value", "field", "expected"),
    [
        ("upper_bound_max_sec", 4.8, "timeout_bars", 24),
        ("hazard_cost_spread_base", 0.4, "hazard_pips", 10 * 0.4 + 240 / 200),
        ("min_grace_before_scratch_ms", 0, "grace_bars", 0),
        ("scratch_requires_events", 2, "scratch_events", 3),
    ],
)
def test_lowvol_knob_mapping(knob: str, value: float, field: str, expected: float) -> None:
    """Each exit.lowvol knob moves its bar-time parameter as the strategies docstring says."""
    from autolearn.settings import load_registry

    knobs = dict(load_registry(None).defaults())
    knobs[f"exit.lowvol.{knob}"] = value
    assert getattr(LowvolExit.from_knobs(knobs), field) == pytest.approx(expected)
