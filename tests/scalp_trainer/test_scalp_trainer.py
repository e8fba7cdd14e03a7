"""Scalp trainer: strategy filter, sufficiency gate, bounded steps, live judge and rollback."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.adapters.state import StateStore
from autolearn.core.apply_guard import ApplyKind
from autolearn.core.judge import VersionTimeline
from autolearn.core.knobs import is_on_grid
from autolearn.core.lifecycle import finalize
from autolearn.core.model import Side, Trade
from autolearn.ledger.sql import SqlLedger
from autolearn.scalp_trainer import Decision, ScalpInput, ScalpTrainerConfig, decide, run_cycle
from autolearn.scalp_trainer.rules import quantile_interval
from autolearn.settings import load_registry

NOW = datetime(2025, 10, 23, 3, 0, tzinfo=UTC)
REGISTRY = load_registry(None)
FAMILY = REGISTRY.families("scalp_trainer")["scalp.m1"]


def make_trades(
    n: int,
    *,
    win_rate: float,
    strategy: str = "M1Scalper",
    start: datetime = NOW - timedelta(days=2),
    stop_pips: float = 6.5,
    version: str = "",
    seed: int = 1,
    loss_pips: float | None = None,
    prefix: str = "T",
) -> list[Trade]:
    """``n`` EUR/USD scalps: wins take profit at +2 pips, losses stop out at -``stop_pips``."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        entry = start + timedelta(minutes=10 * i)
        win = rng.random() < win_rate
        pips = 2.0 if win else -(loss_pips if loss_pips is not None else stop_pips)
        pips += rng.uniform(-0.2, 0.2)
        out.append(
            Trade(
                broker_trade_id=f"{prefix}{i}",
                close_tx_id=f"C{prefix}{i}",
                instrument="EUR_USD",
                pocket="scalp",
                strategy=strategy,
                side=Side.LONG,
                units=10_000,
                entry_price=1.1,
                close_price=round(1.1 + pips * 0.0001, 6),
                entry_at=entry,
                close_at=entry + timedelta(minutes=5 if win else 9),
                pl_pips=round(pips, 3),
                pl_account=round(pips, 3),
                broker_close_reason="TAKE_PROFIT_ORDER" if win else "STOP_LOSS_ORDER",
                config_version=version,
            )
        )
    return out


def run_decide(trades: list[Trade], config: ScalpTrainerConfig | None = None) -> Decision:
    """A decision on the given trades with the registry defaults as current values."""
    return decide(
        ScalpInput(
            trades=trades,
            registry=REGISTRY,
            version="v000000000000",
            current=REGISTRY.defaults(),
            recent_changes={},
            writers={},
            state=None,
            version_values={},
            timeline=VersionTimeline((), "v000000000000"),
            now=NOW,
        ),
        config or ScalpTrainerConfig(),
    )


def test_other_strategies_are_not_evidence() -> None:
    """Trades of other scalp strategies never feed M1Scalper's knobs (the original mixed them)."""
    decision = run_decide(make_trades(300, win_rate=0.7, strategy="PulseBreak"))
    assert decision.decision == "freeze"
    assert "min_trades" in decision.reasons
    assert decision.metrics["n_other_strategies"] == 300
    assert decision.requests == {}


def test_gate_freezes_on_few_trades() -> None:
    """Below min_trades the family is frozen even with a striking win rate."""
    decision = run_decide(make_trades(20, win_rate=1.0))
    assert decision.decision == "freeze"
    assert {"min_trades", "win_rate_evidence"} <= set(decision.reasons)


def test_gate_freezes_a_clearly_losing_strategy() -> None:
    """A win-rate interval wholly below min_win_rate freezes (blocking it is the policy's job)."""
    decision = run_decide(make_trades(300, win_rate=0.1))
    assert "win_rate_floor" in decision.reasons
    assert decision.requests == {}


def test_gate_freezes_on_a_stale_ledger() -> None:
    """Trades that stopped arriving a while ago freeze the family (stale_ledger)."""
    old = make_trades(200, win_rate=0.7, start=NOW - timedelta(days=10))
    assert "stale_ledger" in run_decide(old).reasons


def test_ladder_and_distance_rules_move_by_at_most_max_step() -> None:
    """A high win rate and wide stops move knobs toward the original's targets, one max_step."""
    decision = run_decide(make_trades(300, win_rate=0.75, stop_pips=8.0))
    assert decision.decision == "apply"
    req = decision.requests
    # win >= 0.6 -> momentum 0.00118 (original 3.8); from 0.00125 by max_step 0.00005 -> 0.0012
    assert req["M1Scalper.fallback.momentum_thresh"] == pytest.approx(0.0012)
    # win >= 0.52 -> sl_atr_mult 2.15; 0.15 away = max_step, so reached in one step
    assert req["M1Scalper.fallback.sl_atr_mult"] == pytest.approx(2.15)
    # P85(stop distance ~8) + 0.5 is beyond the 7.2 bound: 6.0 moves up by max_step 0.3
    assert req["M1Scalper.fallback.sl_floor"] == pytest.approx(6.3)
    sl = next(c for c in decision.considered if c["knob"] == "M1Scalper.fallback.sl_floor")
    assert sl["approach"].startswith("clipped")


def test_an_apply_the_store_did_not_adopt_leaves_no_change_in_flight() -> None:
    """An APPLY not applied (guard raced, shadow) stores the state as if nothing was requested."""
    decision = run_decide(make_trades(300, win_rate=0.75, stop_pips=8.0))
    assert decision.kind is ApplyKind.APPLY and decision.state.in_flight is not None
    state = finalize(
        decision.state,
        decision.state_unapplied,
        applied=False,
        version_after="v000000000000",
        values_after={},
    )
    assert state.in_flight is None and state.changed_at is None
    assert state.lkg_values == {s.name: s.default for s in FAMILY}


@settings(max_examples=25, deadline=None)
@given(
    win_rate=st.floats(0.3, 0.95),
    stop_pips=st.floats(1.0, 15.0),
    n=st.integers(40, 250),
    seed=st.integers(0, 10_000),
)
def test_every_request_is_legal_and_bounded(
    win_rate: float, stop_pips: float, n: int, seed: int
) -> None:
    """Whatever the trades, requests stay in bounds, on the grid and within max_step."""
    decision = run_decide(make_trades(n, win_rate=win_rate, stop_pips=stop_pips, seed=seed))
    defaults = REGISTRY.defaults()
    for spec in FAMILY:
        value = decision.requests.get(spec.name)
        if value is None:
            continue
        assert spec.lower is not None and spec.upper is not None and spec.max_step is not None
        assert spec.lower <= value <= spec.upper
        assert is_on_grid(spec, float(value))
        assert abs(float(value) - float(defaults[spec.name])) <= spec.max_step + 1e-9


@given(
    values=st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=200),
    q=st.floats(0.05, 0.95),
)
def test_quantile_interval_brackets_the_estimate(values: list[float], q: float) -> None:
    """The order-statistic interval always contains the sample quantile."""
    iv = quantile_interval(values, q, 0.9)
    assert iv.low <= iv.estimate + 1e-9
    assert iv.estimate <= iv.high + 1e-9


def test_quantile_interval_covers_the_true_quantile() -> None:
    """Over many samples the 90 % interval holds the true median at least ~90 % of the time."""
    rng = random.Random(7)
    covered = 0
    for _ in range(400):
        iv = quantile_interval([rng.gauss(0, 1) for _ in range(60)], 0.5, 0.9)
        covered += iv.low <= 0.0 <= iv.high
    assert covered / 400 >= 0.86


@pytest.fixture(name="env")
def fixture_env(tmp_path: Path) -> tuple[StateStore, SqlLedger]:
    """A real state store and SQLite ledger in tmp_path."""
    ledger = SqlLedger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    return StateStore(tmp_path / "state", REGISTRY), ledger


def test_cycle_applies_then_rolls_back_a_worse_change(env: tuple[StateStore, SqlLedger]) -> None:
    """Live: apply a bounded step, judge it on its own trades, roll back to the LKG when worse."""
    store, ledger = env
    base = store.base_version()
    ledger.upsert_trades(make_trades(300, win_rate=0.75, stop_pips=8.0, version=base))
    first = run_cycle(store, ledger, ScalpTrainerConfig(), NOW)
    assert first["decision"] == "apply" and first["applied"]
    candidate = first["version_after"]
    assert store.current_values()["M1Scalper.fallback.sl_floor"] == pytest.approx(6.3)
    # the change makes things clearly worse: every trade under it loses 8 pips
    worse = make_trades(
        80,
        win_rate=0.0,
        start=NOW + timedelta(minutes=1),
        version=candidate,
        loss_pips=8.0,
        prefix="W",
    )
    ledger.upsert_trades(worse)
    later = NOW + timedelta(hours=14)
    second = run_cycle(store, ledger, ScalpTrainerConfig(), later)
    assert second["decision"] == "rollback", second["reasons"]
    assert second["verdicts"]["scalp.m1"]["outcome"] == "fail"
    assert store.read_effective().version == base
    assert store.read_mechanism("scalp_trainer")["cooldown_until"]
    records = store.history.read().records
    assert [r["decision"] for r in records] == ["apply", "rollback"]


def test_shadow_run_records_but_changes_nothing(env: tuple[StateStore, SqlLedger]) -> None:
    """--shadow decides the same, records the proposed diff, and writes no value or state."""
    store, ledger = env
    ledger.upsert_trades(make_trades(300, win_rate=0.75, stop_pips=8.0))
    record = run_cycle(store, ledger, ScalpTrainerConfig(), NOW, shadow=True)
    assert record["decision"] == "shadow" and record["intended"] == "apply"
    assert not record["applied"] and record["proposed_diff"]
    assert store.read_effective().version == store.base_version()
    assert store.read_mechanism("scalp_trainer") == {}
    assert store.history.read().records[-1]["proposed_diff"] == record["proposed_diff"]


def test_reconcile_adopts_an_operator_change_as_lkg_and_notices_external_reverts() -> None:
    """A human's values become the LKG; a change in flight reverted by someone else ends it."""
    from autolearn.core.lifecycle import FamilyState, FlightSettings, reconcile, start_flight

    state, notes = reconcile(None, FamilyState, {"k": 1.0}, "v1", {}, NOW)
    assert notes == ["lkg_bootstrap"] and state.lkg_values == {"k": 1.0}
    by_hand, notes = reconcile(state, FamilyState, {"k": 2.0}, "v2", {"k": "operator"}, NOW)
    assert notes == ["operator_change"] and by_hand.lkg_version == "v2"
    flying = start_flight(state, {"k": 3.0}, NOW, FlightSettings(), split_id="s/k/1")
    assert flying.in_flight is not None and flying.in_flight.split_id == "s/k/1"
    reverted, notes = reconcile(flying, FamilyState, {"k": 1.0}, "v1", {"k": "scalp_trainer"}, NOW)
    assert notes == ["in_flight_reverted_externally"] and reverted.in_flight is None
