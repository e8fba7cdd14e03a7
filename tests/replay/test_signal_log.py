"""The replay's signal log: every candidate entry, taken or not, consistent with trades, knobs."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.adapters.state import StateStore
from autolearn.backtest import Candles
from autolearn.backtest.strategies._indicators import rolling_percentile
from autolearn.core.model import EntrySignal, Trade
from autolearn.core.registry import Registry
from autolearn.core.timestamps import from_epoch_us
from autolearn.errors import ConfigError
from autolearn.ledger.sql import SqlLedger
from autolearn.replay import (
    REFERENCE_STRATEGIES,
    ReplayConfig,
    ReplayOutcome,
    run_replay,
    slice_candles,
)
from autolearn.replay.strategies import (
    Features,
    RangeExpansionBreak,
    RefStrategy,
    admits,
    percentile_rank,
)

THRESHOLDED = [s for s in REFERENCE_STRATEGIES if s.threshold is not None]
_CODES = {"threshold", "position_open", "reentry_block", "size_zero"}


def _read(run: ReplayOutcome) -> tuple[list[EntrySignal], list[Trade]]:
    ledger = SqlLedger.open(f"sqlite:///{run.run_dir / 'ledger.db'}")
    try:
        return ledger.signals(), ledger.trades()
    finally:
        ledger.close()


@pytest.fixture(name="logged", scope="module")
def fixture_logged(learning_run: ReplayOutcome) -> tuple[list[EntrySignal], list[Trade]]:
    """The signal log and the trades of the shared 4-day learning replay."""
    return _read(learning_run)


class TestSignalLog:
    def test_every_trade_has_exactly_one_taken_signal(
        self, logged: tuple[list[EntrySignal], list[Trade]]
    ) -> None:
        """Taken signals and trades are one to one through broker_trade_id, same entry."""
        signals, trades = logged
        taken = [s for s in signals if s.taken]
        by_trade = Counter(s.broker_trade_id for s in taken)
        assert all(s.broker_trade_id for s in taken)
        assert by_trade == Counter(t.broker_trade_id for t in trades)
        assert len(trades) > 20
        signal_of = {s.broker_trade_id: s for s in taken}
        for t in trades:
            s = signal_of[t.broker_trade_id]
            assert (s.strategy, s.pocket, s.side, s.config_version) == (
                t.strategy,
                t.pocket,
                t.side,
                t.config_version,
            )
            assert s.at <= t.entry_at  # decided at a close, filled at the next open
        assert not [s for s in signals if not s.taken and s.broker_trade_id]

    def test_not_taken_codes_are_the_documented_ones(
        self, logged: tuple[list[EntrySignal], list[Trade]], learning_run: ReplayOutcome
    ) -> None:
        """Every not-taken code is one the loop emits, and the summary counts the same rows."""
        signals, _ = logged
        codes = Counter(s.not_taken or "taken" for s in signals)
        assert all(c in _CODES | {"taken"} or c.startswith("gate:") for c in codes)
        assert codes["threshold"] > 0 and any(c.startswith("gate:") for c in codes)
        assert learning_run.summary["signal_log"] == dict(sorted(codes.items()))

    def test_units_and_exits_are_logged(
        self, logged: tuple[list[EntrySignal], list[Trade]]
    ) -> None:
        """unit_id is the arm unit (strategy@bar), ids are unique, exits match the strategy."""
        signals, _ = logged
        assert len({s.signal_id for s in signals}) == len(signals)
        assert len({s.unit_id for s in signals}) == len(signals)
        for s in signals:
            name, _, bar = s.unit_id.partition("@")
            assert name == s.strategy and bar.isdigit()
        pulse = [s for s in signals if s.strategy == "MomentumPulse"]
        assert pulse
        assert {(s.sl_pips, s.tp_pips, s.timeout_s) for s in pulse} == {(6.0, 9.0, 1800.0)}
        assert {s.timeout_s for s in signals if s.strategy == "TrendMA"} <= {None}

    @pytest.mark.parametrize("strategy", THRESHOLDED, ids=lambda s: s.name)
    def test_threshold_decides_taken_per_the_arm_value(
        self,
        strategy: RefStrategy,
        logged: tuple[list[EntrySignal], list[Trade]],
        learning_run: ReplayOutcome,
        registry: Registry,
    ) -> None:
        """A signal is denied by 'threshold' exactly when its score fails the arm's knob value;
        signals reach below that value down to the registry's loosest bound, never beyond."""
        assert strategy.threshold is not None
        t = strategy.threshold
        spec = registry.knobs[t.knob]
        assert (spec.score, spec.admits) == (t.score, t.admits)
        store = StateStore(learning_run.run_dir / "state", registry)
        defaults = registry.defaults()
        value_of: dict[str, float] = {}
        mine = [s for s in logged[0] if s.strategy == strategy.name]
        assert mine, f"{strategy.name} logged no signal in 4 days"
        below = 0
        for s in mine:
            if s.config_version not in value_of:
                values = store.read_snapshot(s.config_version)["values"]
                value_of[s.config_version] = float(values.get(t.knob, defaults[t.knob]))
            value = value_of[s.config_version]
            score = s.scores[t.score]
            assert admits(score, float(spec.lower), "above")  # none below the loosest value
            admitted = admits(score, value, t.admits)
            assert admitted == (s.not_taken != "threshold"), s
            below += not admitted
        assert below > 0  # the log holds signals the current value denies


@pytest.fixture(name="features", scope="module")
def fixture_features(month: Candles) -> Features:
    """A week of real bars with their indicators (shared: features are cached)."""
    week = slice_candles(month, None, from_epoch_us(int(month.time_us[7_000])))
    return Features.of(week)


class TestCandleStore:
    def test_bars_reach_the_ledger_only_after_their_close(
        self, learning_run: ReplayOutcome, slice_days: Candles
    ) -> None:
        """The run's ledger holds the replayed bars at the broker's spread, each written (on the
        simulated clock) after it closed, and every signal written after its decision."""
        db = sqlite3.connect(learning_run.run_dir / "ledger.db")
        try:
            bars = db.execute("SELECT time_us, ingested_at_us FROM candles").fetchall()
            late = db.execute(
                "SELECT count(*) FROM signals WHERE ingested_at_us < at_us"
            ).fetchone()[0]
        finally:
            db.close()
        assert late == 0
        assert len(bars) > 0.9 * len(slice_days)
        assert all(written >= opened + 60 * 1_000_000 for opened, written in bars)
        ledger = SqlLedger.open(f"sqlite:///{learning_run.run_dir / 'ledger.db'}")
        try:
            stored = ledger.candles(slice_days.instrument)
        finally:
            ledger.close()
        n = len(stored)
        assert np.array_equal(stored.time_us, slice_days.time_us[:n])
        assert np.array_equal(stored.close, slice_days.close[:n])
        assert stored.spread_pips is not None
        assert set(stored.spread_pips.tolist()) == {ReplayConfig().spread_pips}


class TestThresholdNesting:
    @pytest.mark.parametrize("strategy", THRESHOLDED, ids=lambda s: s.name)
    @settings(max_examples=15, deadline=None)
    @given(data=st.data())
    def test_stricter_value_admits_a_subset(
        self, strategy: RefStrategy, features: Features, registry: Registry, data: st.DataObject
    ) -> None:
        """For two grid values, the stricter one's candidates are a subset with the same sides,
        and each equals the loosest candidates filtered by their scores."""
        assert strategy.threshold is not None
        t = strategy.threshold
        spec = registry.knobs[t.knob]
        assert spec.lower is not None and spec.upper is not None and spec.step is not None
        n = round((spec.upper - spec.lower) / spec.step)
        a, b = sorted(data.draw(st.lists(st.integers(0, n), min_size=2, max_size=2)))
        knobs = dict(registry.defaults())
        loose = strategy.candidates(features, knobs | {t.knob: spec.lower})
        sides = []
        for k in (a, b):
            value = round(spec.lower + k * spec.step, spec.decimals)
            side = strategy.signals(features, knobs | {t.knob: value})
            with np.errstate(invalid="ignore"):
                kept = np.where(loose.scores[t.score] >= value, loose.side, 0)
            assert np.array_equal(side, kept)
            sides.append(side)
        loose_side, strict_side = sides
        assert np.all((strict_side == 0) | (strict_side == loose_side))

    def test_new_strategy_fires_across_its_range(
        self, features: Features, registry: Registry
    ) -> None:
        """RangeExpansionBreak fires at its default and fewer times at its strictest value."""
        spec = registry.knobs["strategies.RangeExpansionBreak.min_range_ratio"]
        knobs = dict(registry.defaults())
        s = RangeExpansionBreak()
        counts = [
            np.count_nonzero(s.signals(features, knobs | {spec.name: v}))
            for v in (spec.lower, spec.default, spec.upper)
        ]
        assert counts[0] > counts[1] > counts[2] > 0


@given(st.lists(st.integers(0, 40), min_size=30, max_size=80), st.integers(0, 100))
def test_percentile_rank_inverts_the_linear_percentile(values: list[int], pct: int) -> None:
    """x >= percentile(previous window, p) exactly when p <= rank (on a quantised price grid)."""
    x = np.asarray(values, dtype=np.float64) * 1e-5  # moves are multiples of a price tick
    window = 20
    rank = percentile_rank(x, window)
    with np.errstate(invalid="ignore"):
        direct = x >= rolling_percentile(x, window, float(pct))
        via_rank = rank >= pct
    assert np.array_equal(direct[window:], via_rank[window:])
    assert not via_rank[:window].any()


def test_a_registry_disagreeing_on_the_score_is_refused(
    slice_days: Candles, registry: Registry, tmp_path: Path
) -> None:
    """A registry whose knob names another score than the strategy compares stops the replay."""
    name = "strategies.RangeExpansionBreak.min_range_ratio"
    knobs = dict(registry.knobs)
    knobs[name] = dataclasses.replace(knobs[name], score="something_else")
    wrong = dataclasses.replace(registry, knobs=knobs)
    with pytest.raises(ConfigError, match="something_else"):
        run_replay(slice_days, tmp_path / "run", ReplayConfig(mechanisms=()), wrong)
