"""The counterfactual entry proposer, its freezes, the forecast judge and the tuner's use of them.

Pure parts (``evaluate_entry``, ``judge_forecast``, ``decide``) on a synthetic market from
``autolearn.knowntruth.make_market``, where the best threshold is known; no disk, no clock.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.backtest.candles import Candles
from autolearn.core.judge import (
    ForecastBand,
    HardLimits,
    JudgeParams,
    Outcome,
    VersionTimeline,
    judge,
    judge_forecast,
)
from autolearn.core.model import EntrySignal, Side, Trade
from autolearn.knowntruth import KNOB, PRESET, START, CfMarket, CfScenario, make_market
from autolearn.settings import load_registry
from autolearn.tuner import TunerConfig, TunerState, decide
from autolearn.tuner.decide import TuneInput, cf_due
from autolearn.tuner.proposers.counterfactual_entry import (
    CfForecast,
    CounterfactualData,
    evaluate_entry,
    grid_of,
    scored_specs,
)
from autolearn.tuner.state import FamilyState, InFlight

REGISTRY = load_registry(None)
CONFIG = TunerConfig()
SPEC = REGISTRY.spec(KNOB)
DAYS = 18
SCENARIO = CfScenario(name="t", s_star=None, days=DAYS)
WEEKDAY = START + timedelta(days=17, hours=12)  # a Thursday noon: the ledger is not stale


@cache
def _market(s_star: float | None, seed: int = 3) -> CfMarket:
    return make_market(replace(SCENARIO, s_star=s_star), seed)


def _signals(market: CfMarket, *, taken_at: float = PRESET) -> list[EntrySignal]:
    return [
        EntrySignal(
            signal_id=f"S{k}",
            at=market.at[k],
            instrument="USD_JPY",
            pocket="micro",
            strategy="MomentumPulse",
            side=market.side[k],
            price=market.price[k],
            sl_pips=SCENARIO.sl_pips,
            tp_pips=SCENARIO.tp_pips,
            timeout_s=SCENARIO.timeout_bars * 60.0,
            scores={"confidence": market.score[k]},
            taken=market.score[k] >= taken_at,
            not_taken="" if market.score[k] >= taken_at else "threshold",
            broker_trade_id=f"T{k}" if market.score[k] >= taken_at else "",
        )
        for k in range(len(market.at))
    ]


def _data(
    market: CfMarket,
    signals: list[EntrySignal] | None = None,
    candles: Candles | None = None,
    end: datetime = START + timedelta(days=DAYS),
) -> CounterfactualData:
    return CounterfactualData(
        signals=tuple(s for s in (signals or _signals(market)) if s.at < end),
        candles={"USD_JPY": candles if candles is not None else market.candles},
        since=START,
        until=end,
    )


def _recorded(market: CfMarket, shift: float = 0.0) -> dict[str, float]:
    return {f"T{k}": market.pips[k] + shift for k in range(len(market.at))}


def _evaluate(data: CounterfactualData, recorded: dict[str, float]):  # type: ignore[no-untyped-def]
    return evaluate_entry(data, [SPEC], REGISTRY.defaults(), recorded, CONFIG)


class TestEvaluateEntry:
    def test_a_confirmed_gain_moves_toward_the_known_best_value_with_a_forecast(self) -> None:
        """s* = 0.60: the signals below the preset pay; the knob loosens by at most max_step."""
        market = _market(0.60)
        evidence = _evaluate(_data(market), _recorded(market))
        assert evidence.freeze == ()
        (knob,) = evidence.knobs
        assert knob.code == "cf_improves"
        assert -2 <= knob.steps < 0  # loosen, never more than max_step (0.02 = 2 steps)
        assert knob.choice is not None and knob.choice["low"] > 0
        assert knob.forecast is not None
        assert knob.forecast.value == pytest.approx(PRESET + knob.steps * 0.01)
        assert knob.forecast.low <= knob.forecast.estimate <= knob.forecast.high
        assert evidence.metrics["model_check"]["code"] == "cf_verified"

    def test_no_true_difference_does_not_move(self) -> None:
        """No signal has an edge: no confirmed gain, nothing moves."""
        market = _market(None)
        (knob,) = _evaluate(_data(market), _recorded(market)).knobs
        assert knob.steps == 0 and knob.forecast is None

    def test_signals_without_the_knobs_score_freeze_the_family(self) -> None:
        """A signal lacking ``confidence`` freezes with signal_missing:score:confidence."""
        market = _market(0.60)
        signals = _signals(market)
        signals[5] = replace(signals[5], scores={"other": 1.0})
        evidence = _evaluate(_data(market, signals), _recorded(market))
        assert [code for code, _ in evidence.freeze] == ["signal_missing:score:confidence"]
        assert all(k.steps == 0 for k in evidence.knobs)

    def test_recorded_pl_the_candles_do_not_explain_freezes_with_mismatch(self) -> None:
        """Recorded P/L 4 pips off the simulated one: counterfactual_mismatch, nothing moves."""
        market = _market(0.60)
        evidence = _evaluate(_data(market), _recorded(market, shift=4.0))
        assert "counterfactual_mismatch" in [code for code, _ in evidence.freeze]
        assert all(k.steps == 0 for k in evidence.knobs)

    def test_missing_candles_freeze(self) -> None:
        """Signals of an instrument without candles: candles_missing."""
        market = _market(0.60)
        data = replace(_data(market), candles={})
        codes = [code for code, _ in _evaluate(data, _recorded(market)).freeze]
        assert codes == ["candles_missing"]

    def test_a_hole_in_the_candles_freezes(self) -> None:
        """Three trading hours without bars in the middle of the week: candles_gap."""
        market = _market(0.60)
        c = market.candles
        keep = np.ones(len(c.time_us), dtype=bool)
        keep[2000:2180] = False
        holed = Candles(
            instrument=c.instrument,
            timeframe_s=60,
            time_us=c.time_us[keep],
            open=c.open[keep],
            high=c.high[keep],
            low=c.low[keep],
            close=c.close[keep],
            volume=c.volume[keep],
        )
        codes = {code for code, _ in _evaluate(_data(market, candles=holed), {}).freeze}
        assert "candles_gap" in codes

    def test_candles_on_another_clock_freeze(self) -> None:
        """Candles shifted by 3 hours (a broker clock): the family freezes."""
        market = _market(0.60)
        c = market.candles
        shifted = replace(c, time_us=c.time_us + 3 * 3600 * 1_000_000)
        codes = {code for code, _ in _evaluate(_data(market, candles=shifted), {}).freeze}
        assert codes & {"candle_clock", "signal_price_far", "candles_gap"}


class TestJudgeForecast:
    @staticmethod
    def _sample(rng: random.Random, mean: float, n: int) -> list[float]:
        return [rng.gauss(mean, 5.0) for _ in range(n)]

    def test_a_loosening_lower_per_trade_by_design_is_confirmed_not_rolled_back(self) -> None:
        """Candidate 0.8 pips/trade lower, as forecast: judge() fails it, the forecast judge not."""
        rng = random.Random(1)
        cand, base = self._sample(rng, 1.2, 1500), self._sample(rng, 2.0, 3500)
        params = JudgeParams()
        assert judge(cand, base, params).outcome is Outcome.FAIL
        band = ForecastBand(estimate=-0.8, low=-1.2, high=-0.4, confirm_trades=40)
        verdict = judge_forecast(cand, base, band, params)
        assert verdict.outcome is Outcome.PASS and verdict.reason == "cf_confirmed"

    def test_a_live_effect_far_below_the_forecast_is_contradicted(self) -> None:
        """Forecast +0.5, live -4 pips a trade: cf_contradicted."""
        rng = random.Random(2)
        cand, base = self._sample(rng, -3.0, 39), self._sample(rng, 1.0, 100)
        band = ForecastBand(estimate=0.5, low=0.0, high=1.0, confirm_trades=40)
        verdict = judge_forecast(cand, base, band, JudgeParams())
        assert verdict.outcome is Outcome.FAIL and verdict.reason == "cf_contradicted"

    @given(
        n=st.integers(2, 120),
        shift=st.floats(-3.0, 3.0),
        seed=st.integers(0, 10_000),
        confirm=st.integers(30, 80),
    )
    @settings(max_examples=60, deadline=None)
    def test_never_confirmed_early_never_contradicted_inside_the_band(
        self, n: int, shift: float, seed: int, confirm: int
    ) -> None:
        """PASS needs confirm_trades; FAIL needs the whole live sequence below the band."""
        rng = random.Random(seed)
        cand, base = self._sample(rng, shift, n), self._sample(rng, 0.0, 100)
        band = ForecastBand(estimate=0.0, low=-0.5, high=0.5, confirm_trades=confirm)
        verdict = judge_forecast(cand, base, band, JudgeParams())
        if verdict.outcome is Outcome.PASS:
            assert n >= confirm
        if verdict.outcome is Outcome.FAIL:
            assert verdict.upper < band.low


def _input(
    state: TunerState, data: dict[str, CounterfactualData], trades: list[Trade], now: datetime
) -> TuneInput:
    return TuneInput(
        trades=trades,
        registry=REGISTRY,
        version="v0",
        current=REGISTRY.defaults(),
        recent_changes={},
        writers={},
        state=state,
        version_values={"v0": {}},
        timeline=VersionTimeline((), "v0"),
        last_close_at=max((t.close_at for t in trades), default=None),
        now=now,
        counterfactual=data,
    )


def _trades(market: CfMarket, until: datetime) -> list[Trade]:
    out = []
    for k, (at, score) in enumerate(zip(market.at, market.score, strict=True)):
        if score < PRESET or market.close_at[k] >= until:
            continue
        out.append(
            Trade(
                broker_trade_id=f"T{k}",
                close_tx_id=f"C{k}",
                instrument="USD_JPY",
                pocket="micro",
                strategy="MomentumPulse",
                side=market.side[k],
                units=1000,
                entry_price=market.price[k],
                close_price=market.price[k],
                entry_at=at,
                close_at=max(market.close_at[k], at + timedelta(seconds=1)),
                pl_pips=market.pips[k],
                pl_account=market.pips[k] * 10,
                config_version="v0",
            )
        )
    return out


class TestDecide:
    def test_the_proposal_carries_its_evidence_and_the_flight_its_forecast(self) -> None:
        """An apply on counterfactual evidence: the record's entry and the flight's forecast."""
        market = _market(0.60)
        now = WEEKDAY
        boot = decide(_input(TunerState(), {}, [], now - timedelta(days=1)), CONFIG).state
        data = _data(market, end=now)
        decision = decide(_input(boot, {"micro.entry": data}, _trades(market, now), now), CONFIG)
        assert decision.decision == "apply" and list(decision.requests) == [KNOB]
        (entry,) = [c for c in decision.considered if c["knob"] == KNOB]
        assert entry["rule"] == "cf_improves" and entry["counterfactual"]["low"] > 0
        assert entry["forecast"]["value"] == decision.requests[KNOB]
        flight = decision.state.families["micro.entry"].in_flight
        assert isinstance(flight, InFlight) and flight.forecast == entry["forecast"]
        assert decision.state.families["micro.entry"].cf_at == now
        # the stored state keeps the forecast (the tuner's flight type survives a reload)
        again = TunerState.from_json(decision.state.to_json())
        assert again.families["micro.entry"].in_flight == flight

    def test_a_family_without_signals_keeps_the_expectancy_rules(self) -> None:
        """No signal at all: the trade rules decide, and the record says so."""
        market = _market(0.60)
        now = WEEKDAY
        empty = replace(_data(market, end=now), signals=())
        boot = decide(_input(TunerState(), {}, [], now - timedelta(days=1)), CONFIG).state
        decision = decide(_input(boot, {"micro.entry": empty}, _trades(market, now), now), CONFIG)
        assert "micro.entry:cf_fallback:no_signals" in decision.reasons
        assert all("counterfactual" not in c for c in decision.considered)

    def test_a_contradicted_forecast_rolls_back_and_freezes_the_family(self) -> None:
        """Live candidate trades far below the forecast: rollback, then cf_contradicted holds."""
        now = START + timedelta(days=3)
        started = START + timedelta(days=1)
        forecast = CfForecast(
            knob=KNOB,
            strategy="MomentumPulse",
            current=0.65,
            value=0.63,
            estimate=0.5,
            se=0.2,
            low=0.1,
            high=0.9,
            n_current=100,
            n_candidate=150,
        )
        flight = InFlight(
            version="v1",
            values={**_family_defaults(), KNOB: 0.63},
            baseline_version="v0",
            baseline_values=_family_defaults(),
            started_at=started,
            split_id="s",
            share=0.3,
            forecast=forecast.to_json(),
        )
        fs = FamilyState(lkg_version="v0", lkg_values=_family_defaults(), in_flight=flight)
        rng = random.Random(5)
        trades = [
            _trade(
                i,
                started + timedelta(minutes=10 * i),
                "v1" if i % 3 == 0 else "v0",
                rng.gauss(-4.0 if i % 3 == 0 else 1.0, 5.0),
            )
            for i in range(240)
        ]
        inp = replace(
            _input(TunerState(families={"micro.entry": fs}), {}, trades, now),
            current={**REGISTRY.defaults(), KNOB: 0.63},
            version="v1",
            version_values={"v0": {}, "v1": {KNOB: 0.63}},
        )
        # hard limits out of the way: this is about the forecast rule
        loose = replace(
            CONFIG,
            flight=replace(
                CONFIG.flight, hard_limits=HardLimits(drawdown_sd=50.0, min_loss_streak=50)
            ),
        )
        decision = decide(inp, loose)
        assert decision.decision == "rollback"
        assert decision.verdicts["micro.entry"]["reason"] == "cf_contradicted"
        after = decision.state.families["micro.entry"]
        assert after.frozen_code == "cf_contradicted" and after.frozen_until is not None
        assert not cf_due(
            after, REGISTRY.families()["micro.entry"], now + timedelta(days=1), CONFIG
        )


def _family_defaults() -> dict[str, object]:
    return {s.name: s.default for s in REGISTRY.families()["micro.entry"]}


def _trade(i: int, entry: datetime, version: str, pips: float) -> Trade:
    return Trade(
        broker_trade_id=f"L{i}",
        close_tx_id=f"LC{i}",
        instrument="USD_JPY",
        pocket="micro",
        strategy="MomentumPulse",
        side=Side.LONG,
        units=1000,
        entry_price=150.0,
        close_price=150.0,
        entry_at=entry,
        close_at=entry + timedelta(minutes=5),
        pl_pips=pips,
        pl_account=pips * 10,
        config_version=version,
    )


def test_grid_and_scored_specs_come_from_the_registry() -> None:
    """Every micro.entry knob with a score is scored; its grid spans its bounds on its step."""
    specs = REGISTRY.families()["micro.entry"]
    assert KNOB in {s.name for s in scored_specs(specs)}
    assert "strategies.BB_RSI_Fast.reentry_block_s" not in {s.name for s in scored_specs(specs)}
    grid = grid_of(SPEC)
    assert grid[0] == 0.55 and grid[-1] == 0.75 and len(grid) == 21


class TestFreeze:
    @staticmethod
    def _frozen(now: datetime) -> FamilyState:
        return FamilyState(
            lkg_version="v0",
            lkg_values=_family_defaults(),
            frozen_code="cf_contradicted",
            frozen_until=now + timedelta(days=7),
        )

    def test_a_frozen_family_moves_nothing_whatever_the_evidence(self) -> None:
        """cf_contradicted holds the family even when the counterfactual would move it."""
        market = _market(0.60)
        state = TunerState(families={"micro.entry": self._frozen(WEEKDAY)})
        data = {"micro.entry": _data(market, end=WEEKDAY)}
        decision = decide(_input(state, data, _trades(market, WEEKDAY), WEEKDAY), CONFIG)
        assert decision.decision != "apply" and not decision.requests
        assert "micro.entry:cf_contradicted" in decision.reasons
        assert decision.families["micro.entry"]["frozen"] is True

    def test_an_operators_set_lifts_the_freeze(self) -> None:
        """A human wrote the family's knob: the freeze ends, the values become the LKG."""
        state = TunerState(families={"micro.entry": self._frozen(WEEKDAY)})
        inp = replace(
            _input(state, {}, [], WEEKDAY),
            current={**REGISTRY.defaults(), KNOB: 0.70},
            writers={KNOB: "operator"},
        )
        decision = decide(inp, CONFIG)
        after = decision.state.families["micro.entry"]
        assert "micro.entry:unfrozen_by_operator" in decision.reasons
        assert after.frozen_code == "" and after.frozen_until is None
        assert after.lkg_values[KNOB] == 0.70


def test_a_model_nobody_could_check_moves_nothing() -> None:
    """No taken signal has its trade in the ledger: cf_unverified freezes, nothing moves."""
    market = _market(0.60)
    evidence = _evaluate(_data(market), {})
    assert [code for code, _ in evidence.freeze] == ["cf_unverified"]
    assert all(k.steps == 0 for k in evidence.knobs)


def _shadow_outcomes(market: CfMarket, shift: float = 0.0) -> dict[str, float]:
    """The bot's own recorded outcome of every signal it did not take (as for shadows)."""
    return {
        f"S{k}": market.pips[k] + shift for k in range(len(market.at)) if market.score[k] < PRESET
    }


class TestBlockedPocket:
    """A pocket the policy blocked trades nothing: the counterfactual still learns from its
    signal log, checked against the outcomes the bot recorded for its shadow signals."""

    def test_shadow_outcomes_check_the_model_when_no_trade_has(self) -> None:
        """No taken signal has its trade, but the shadows' recorded outcomes agree: verified."""
        market = _market(0.60)
        data = replace(_data(market), shadow_outcomes=_shadow_outcomes(market))
        evidence = _evaluate(data, {})
        assert evidence.freeze == ()
        check = evidence.metrics["model_check"]
        assert check["code"] == "cf_verified" and check["n_trades"] == 0
        assert check["n_shadow"] >= 10 and "shadow outcomes" in check["detail"]
        (knob,) = evidence.knobs
        assert knob.code == "cf_improves" and knob.steps < 0

    def test_shadow_outcomes_the_candles_do_not_explain_freeze_with_mismatch(self) -> None:
        """Shadow outcomes 4 pips off the simulation: counterfactual_mismatch, nothing moves."""
        market = _market(0.60)
        data = replace(_data(market), shadow_outcomes=_shadow_outcomes(market, shift=4.0))
        evidence = _evaluate(data, {})
        assert [code for code, _ in evidence.freeze] == ["counterfactual_mismatch"]
        assert all(k.steps == 0 for k in evidence.knobs)

    def test_trades_come_first_when_there_are_enough(self) -> None:
        """With enough taken signals checked against their trades, shadows are not consulted
        (a wrong shadow bookkeeping cannot override the broker's P/L)."""
        market = _market(0.60)
        data = replace(_data(market), shadow_outcomes=_shadow_outcomes(market, shift=4.0))
        evidence = _evaluate(data, _recorded(market))
        assert evidence.freeze == ()
        assert evidence.metrics["model_check"]["n_shadow"] == 0

    def test_a_quiet_trade_ledger_does_not_hold_the_counterfactual(self) -> None:
        """No trade closed for days (the pocket is blocked), signals fresh, shadows recorded:
        the family is evaluated and moves; the stale ledger is still reported."""
        market = _market(0.60)
        now = WEEKDAY
        old = now - timedelta(days=5)  # trades stopped 5 days ago: stale_ledger (> 24 h)
        boot = decide(_input(TunerState(), {}, [], now - timedelta(days=1)), CONFIG).state
        data = replace(_data(market, end=now), shadow_outcomes=_shadow_outcomes(market))
        decision = decide(_input(boot, {"micro.entry": data}, _trades(market, old), now), CONFIG)
        assert "stale_ledger" in decision.reasons
        assert decision.decision == "apply" and list(decision.requests) == [KNOB]
        assert decision.state.families["micro.entry"].cf_at == now

    def test_a_stale_signal_log_freezes_the_counterfactual(self) -> None:
        """The newest signal is older than stale_after: stale_signals, nothing moves."""
        market = _market(0.60)
        data = _data(market, end=START + timedelta(days=9))  # signals to Wednesday 00:00
        late = replace(data, until=data.until + CONFIG.stale_after + timedelta(hours=1))
        evidence = _evaluate(late, _recorded(market))
        assert "stale_signals" in [code for code, _ in evidence.freeze]
        assert all(k.steps == 0 for k in evidence.knobs)

    def test_a_weekend_without_signals_is_not_stale(self) -> None:
        """Signals to Friday 21:00, evaluated Sunday 23:00 (50 h later, 2 h of trading time)."""
        market = _market(0.60)
        data = _data(market, end=START + timedelta(days=4, hours=21))
        sunday = replace(data, until=START + timedelta(days=6, hours=23))
        evidence = _evaluate(sunday, _recorded(market))
        assert "stale_signals" not in [code for code, _ in evidence.freeze]
