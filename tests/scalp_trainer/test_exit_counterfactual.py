"""The scalp trainer's timeout knob on re-simulated trades (issue 12, the exit family).

Known truth (``_exit_market``): after each entry the price drifts the trade's way for
``edge_bars`` bars, then back; the live timeout is 900 s (15 bars). 12 trades a day (~260 a
month, the rate of a real scalper), per-bar sd 1.2 pips (~5 pips per trade over 15 bars).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from autolearn.adapters.state import StateStore
from autolearn.backtest.candles import Candles
from autolearn.core.model import Trade
from autolearn.ledger.sql import SqlLedger
from autolearn.scalp_trainer import ScalpTrainerConfig, run_cycle
from autolearn.scalp_trainer.counterfactual import (
    ExitCfData,
    ExitCfSettings,
    evaluate_timeout,
    minute_grid,
)
from autolearn.settings import load_registry
from tests.scalp_trainer._exit_market import START, ExitMarket, make_exit_market

REGISTRY = load_registry(None)
KNOB = "M1Scalper.timeout_sec"
SPEC = REGISTRY.spec(KNOB)
SETTINGS = ExitCfSettings()
NOW = START + timedelta(days=29, hours=12)  # a Wednesday noon, after 30 days of trades
SEEDS = range(40)


@cache
def _market(seed: int, **kw: float) -> ExitMarket:
    return make_exit_market(seed, **kw)  # type: ignore[arg-type]


def _data(m: ExitMarket, **changes: object) -> ExitCfData:
    data = ExitCfData(signals=tuple(m.signals), candles=m.candles, recorded=m.recorded, until=NOW)
    return replace(data, **changes)  # type: ignore[arg-type]


def _proposals(**kw: float) -> Counter[float]:
    return Counter(
        evaluate_timeout(_data(_market(seed, **kw)), SPEC, 900.0, SETTINGS).proposed
        for seed in SEEDS
    )


def test_the_grid_is_the_knobs_grid_at_whole_minutes() -> None:
    """600..1500 s in 30 s steps: the bar-aligned values 600, 660, ..., 1500."""
    assert minute_grid(SPEC) == [float(v) for v in range(600, 1501, 60)]


class TestKnownTruth:
    def test_a_longer_edge_lengthens_the_timeout_and_never_shortens_it(self) -> None:
        """Best timeout 20 bars: +2 bars (max_step 120 s) in 24 of 40 seeds, never down."""
        moves = _proposals()
        assert moves[1020.0] >= 18
        assert set(moves) <= {900.0, 1020.0}

    def test_a_shorter_edge_shortens_it_and_never_lengthens_it(self) -> None:
        """Best timeout 13 bars: -2 bars in 28 of 40 seeds, never up."""
        moves = _proposals(edge_bars=13)
        assert moves[780.0] >= 18
        assert set(moves) <= {900.0, 780.0}

    def test_no_edge_moves_nothing(self) -> None:
        """No drift at all: a false move in 1 of 40 seeds (at most 3 here)."""
        moves = _proposals(push_pips=0.0)
        assert moves[900.0] >= 37

    def test_the_forecast_is_the_paired_effect_with_its_band(self) -> None:
        """A moved knob carries the per-trade effect: 2 bars x 0.25 pips = +0.5 in expectation."""
        answers = [evaluate_timeout(_data(_market(seed)), SPEC, 900.0, SETTINGS) for seed in SEEDS]
        forecasts = [a.forecast for a in answers if a.moves and a.forecast is not None]
        assert forecasts
        for f in forecasts:
            assert f["low"] <= f["estimate"] <= f["high"] and f["value"] == 1020.0
        assert 0.2 < float(np.mean([f["estimate"] for f in forecasts])) < 0.9


class TestFreezes:
    def test_recorded_pl_the_candles_do_not_explain_freezes_with_mismatch(self) -> None:
        m = _market(0)
        shifted = {k: v + 4.0 for k, v in m.recorded.items()}
        answer = evaluate_timeout(_data(m, recorded=shifted), SPEC, 900.0, SETTINGS)
        assert [c for c, _ in answer.freeze] == ["counterfactual_mismatch"]
        assert not answer.moves and answer.proposed == 900.0

    def test_too_few_trades_with_their_pl_is_unverified(self) -> None:
        m = _market(0)
        few = dict(list(m.recorded.items())[:5])
        answer = evaluate_timeout(_data(m, recorded=few), SPEC, 900.0, SETTINGS)
        assert [c for c, _ in answer.freeze] == ["cf_unverified"]

    def test_missing_candles_freeze(self) -> None:
        answer = evaluate_timeout(_data(_market(0), candles=None), SPEC, 900.0, SETTINGS)
        assert [c for c, _ in answer.freeze] == ["candles_missing"]

    def test_a_hole_in_the_candles_freezes(self) -> None:
        """Three hours missing on a Tuesday: candles_gap, nothing moves."""
        c = _market(0).candles
        cut = START + timedelta(days=8, hours=10)
        t0 = int((cut - START).total_seconds() * 1e6) + int(c.time_us[0])
        keep = (c.time_us < t0) | (c.time_us >= t0 + 3 * 3_600_000_000)
        holed = Candles(
            instrument=c.instrument,
            timeframe_s=60,
            time_us=c.time_us[keep],
            open=c.open[keep],
            high=c.high[keep],
            low=c.low[keep],
            close=c.close[keep],
            volume=c.volume[keep],
            source=c.source,
            spread_pips=None if c.spread_pips is None else c.spread_pips[keep],
        )
        answer = evaluate_timeout(_data(_market(0), candles=holed), SPEC, 900.0, SETTINGS)
        assert "candles_gap" in [code for code, _ in answer.freeze]
        assert not answer.moves

    def test_a_signal_log_gone_quiet_freezes(self) -> None:
        late = NOW + SETTINGS.stale_after + timedelta(days=2)
        answer = evaluate_timeout(_data(_market(0), until=late), SPEC, 900.0, SETTINGS)
        assert "stale_signals" in [code for code, _ in answer.freeze]

    def test_a_current_value_off_the_minute_grid_moves_nothing(self) -> None:
        answer = evaluate_timeout(_data(_market(0)), SPEC, 930.0, SETTINGS)
        assert answer.code == "cf_current_off_grid" and not answer.moves


def _trades(m: ExitMarket) -> list[Trade]:
    out = []
    for s in m.signals:
        pips = m.recorded[s.broker_trade_id]
        close_at = s.at + timedelta(minutes=16)
        if close_at > NOW:
            continue
        out.append(
            Trade(
                broker_trade_id=s.broker_trade_id,
                close_tx_id=f"C{s.broker_trade_id}",
                instrument="USD_JPY",
                pocket="scalp",
                strategy="M1Scalper",
                side=s.side,
                units=1000,
                entry_price=s.price,
                close_price=s.price,
                entry_at=s.at + timedelta(minutes=1),
                close_at=close_at,
                pl_pips=pips,
                pl_account=pips * 10,
            )
        )
    return out


@pytest.fixture(name="env")
def fixture_env(tmp_path: Path) -> tuple[StateStore, SqlLedger]:
    ledger = SqlLedger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    return StateStore(tmp_path / "state", REGISTRY), ledger


def test_the_cycle_applies_on_re_simulated_trades_with_a_forecast(
    env: tuple[StateStore, SqlLedger],
) -> None:
    """Through the real shell: signals, trades and candles from the ledger; the record carries
    the evidence and the flight its forecast; the next run judges it against that forecast."""
    store, ledger = env
    m = _market(0)
    ledger.upsert_signals(m.signals)
    ledger.upsert_trades(_trades(m))
    ledger.upsert_candles(m.candles)
    record = run_cycle(store, ledger, ScalpTrainerConfig(), NOW)  # the first run may move it
    assert record["decision"] == "apply", record["reasons"]
    assert store.current_values()[KNOB] == 1020
    (entry,) = [c for c in record["considered"] if c["knob"] == KNOB]
    assert entry["rule"] == "cf_improves" and entry["counterfactual"]["choice"]["low"] > 0
    flight = store.read_mechanism("scalp_trainer")["in_flight"]
    assert flight["forecast"]["value"] == 1020.0
    assert flight["forecast"]["low"] <= flight["forecast"]["estimate"]
    later = run_cycle(store, ledger, ScalpTrainerConfig(), NOW + timedelta(hours=3))
    assert later["verdicts"]["scalp.m1"]["forecast"]["estimate"] == flight["forecast"]["estimate"]


def test_without_a_signal_log_the_rules_decide_as_before(
    env: tuple[StateStore, SqlLedger],
) -> None:
    """No signals for M1Scalper: no counterfactual entry, the record has no such evidence."""
    store, ledger = env
    ledger.upsert_trades(_trades(_market(0)))
    record = run_cycle(store, ledger, ScalpTrainerConfig(), NOW)
    (entry,) = [c for c in record["considered"] if c["knob"] == KNOB]
    assert "counterfactual" not in entry
