"""The order-path shims answer with the original's shapes, from ``autolearn.gates``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autolearn.compat.quantrabbit import perf_guard, reentry_gate
from autolearn.compat.quantrabbit.backend import Backend, configure
from autolearn.compat.quantrabbit.stage_tracker import StageTracker
from autolearn.core.model import Trade
from autolearn.gates import Gates
from autolearn.gates.config import load_gates_config
from autolearn.ledger.sql import SqlLedger

T0 = datetime(2026, 2, 2, 3, 0, tzinfo=UTC)  # 12:00 JST: no default time block


@pytest.fixture(name="ledger")
def _ledger(tmp_path: Path) -> Iterator[SqlLedger]:
    ledger = SqlLedger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield ledger
    ledger.close()


@pytest.fixture(name="use")
def _use(ledger: SqlLedger) -> Iterator[Callable[..., Gates]]:
    """Point the shims at a Gates over ``ledger`` with the given knob values."""

    def use(knobs: dict[str, Any] | None = None, config: dict[str, Any] | None = None) -> Gates:
        values = knobs or {}
        gates = Gates(
            ledger=ledger,
            config=load_gates_config(None, config),
            knobs=lambda k, d: values.get(k, d),
        )
        configure(Backend(gates=gates, knobs=lambda k, d: values.get(k, d), clock=lambda: 0.0))
        return gates

    yield use
    configure(None)


def losses(make_trade: Callable[..., Trade], n: int, **over: Any) -> list[Trade]:
    """``n`` losses of 5 pips, one a minute, the last a minute before T0."""
    return [
        make_trade(close_at=T0 - timedelta(minutes=n - i), pl_pips=-5.0, **over) for i in range(n)
    ]


class TestPerfGuard:
    def test_warmup_allows(self, use: Callable[..., Gates]) -> None:
        """Without trades the guard warms up: allowed, with the sample size."""
        use()
        decision = perf_guard.is_allowed("MomentumPulse", "micro", hour=3, now=T0)
        assert decision == perf_guard.PerfDecision(True, decision.reason, 0)
        assert decision.reason.startswith("warmup")

    def test_losing_strategy_is_blocked(
        self, use: Callable[..., Gates], ledger: SqlLedger, make_trade: Callable[..., Trade]
    ) -> None:
        """Twenty straight losses block (allowed False), and the sample is counted."""
        ledger.upsert_trades(losses(make_trade, 20))
        use()
        decision = perf_guard.is_allowed("MomentumPulse", "micro", now=T0)
        assert not decision.allowed and decision.sample == 20

    def test_pocket_guard_is_the_policy_block(self, use: Callable[..., Gates]) -> None:
        """is_pocket_allowed follows pockets.<p>.allow_new; manual is never checked."""
        use({"pockets.micro.allow_new": False})
        assert not perf_guard.is_pocket_allowed("micro").allowed
        assert perf_guard.is_pocket_allowed("macro").allowed
        assert perf_guard.is_pocket_allowed("manual") == perf_guard.PerfDecision(True, "skip", 0)

    def test_disabled_switch(self, use: Callable[..., Gates]) -> None:
        """gates.perf_guard.enabled false answers like the original's disabled mode."""
        use({"gates.perf_guard.enabled": False})
        assert perf_guard.is_allowed("X", "micro", now=T0) == perf_guard.PerfDecision(
            True, "disabled", 0
        )
        assert perf_guard.perf_scale("X", "micro", now=T0).multiplier == 1.0

    def test_scale_is_one_while_warming_up(self, use: Callable[..., Gates]) -> None:
        """perf_scale answers a PerfScaleDecision; 1.0 and 'insufficient' without a sample."""
        use()
        scale = perf_guard.perf_scale("MomentumPulse", "micro", now=T0)
        assert (scale.multiplier, scale.reason, scale.sample) == (1.0, "insufficient", 0)


class TestStageTracker:
    def test_loss_streak_blocks_the_side(
        self, use: Callable[..., Gates], ledger: SqlLedger, make_trade: Callable[..., Trade]
    ) -> None:
        """Three losses in a row on micro long: (True, seconds left, reason); short is flip-guarded
        for less; the size shrinks by the streak."""
        ledger.upsert_trades(losses(make_trade, 3))
        use()
        tracker = StageTracker()
        tracker.update_loss_streaks(now=T0, cooldown_map={"micro": 600}, range_active=False)
        blocked, left, reason = tracker.is_blocked("micro", "long", T0)
        assert blocked and reason == "loss_streak_cooldown" and 0 < left <= 600
        assert tracker.is_blocked("macro", "long", T0) == (False, None, None)
        assert tracker.size_multiplier("micro", "long", T0) < 1.0
        assert tracker.get_loss_profile("micro", "buy") == (3, 0)
        later = T0 + timedelta(hours=3)
        assert tracker.is_blocked("micro", "long", later) == (False, None, None)

    def test_naive_now_is_utc(self, use: Callable[..., Gates]) -> None:
        """The original's callers pass naive UTC datetimes: accepted, never a TypeError."""
        use()
        assert StageTracker().is_blocked("micro", "short", T0.replace(tzinfo=None)) == (
            False,
            None,
            None,
        )

    def test_bad_direction_is_an_error(self, use: Callable[..., Gates]) -> None:
        """A direction that is neither long/short nor buy/sell is a ValueError naming it."""
        use()
        with pytest.raises(ValueError, match="direction"):
            StageTracker().is_blocked("micro", "up", T0)


class TestReentryGate:
    def test_cooldown_after_a_loss(
        self, use: Callable[..., Gates], ledger: SqlLedger, make_trade: Callable[..., Trade]
    ) -> None:
        """Right after a long loss the same side waits (``cooldown``); short has no state."""
        ledger.upsert_trades([make_trade(close_at=T0 - timedelta(seconds=30), pl_pips=-3.0)])
        use()
        allowed, reason, details = reentry_gate.allow_entry(
            strategy_tag="MomentumPulse-long", units=1000, price=149.97, now=T0
        )
        assert (allowed, reason) == (False, "cooldown") and details["detail"]
        allowed, reason, _ = reentry_gate.allow_entry(
            strategy_tag="MomentumPulse", units=-1000, price=149.97, now=T0
        )
        assert (allowed, reason) == (True, "no_state")

    def test_no_strategy_and_disabled(self, use: Callable[..., Gates]) -> None:
        """The original's early answers: ``disabled`` (the switch), ``no_strategy`` (no tag)."""
        use({"gates.reentry.enabled": False})
        assert reentry_gate.allow_entry(strategy_tag="X", units=1, price=1.0) == (
            True,
            "disabled",
            {},
        )
        use()
        assert reentry_gate.allow_entry(strategy_tag=None, units=1, price=1.0) == (
            True,
            "no_strategy",
            {},
        )
        assert reentry_gate.needs_open_positions("X") is False

    def test_open_positions_in_the_original_shape(self, use: Callable[..., Gates]) -> None:
        """``{pocket: {"open_trades": [...]}}`` is read (base tag and side matched)."""
        use(config={"reentry": {"strategies": {"TrendMA": {"max_open_trades_hard": 2}}}})
        positions = {
            "macro": {
                "open_trades": [
                    {"strategy_tag": "TrendMA-bull", "units": 500, "price": 150.0},
                    {"entry_thesis": {"strategy_tag": "TrendMA"}, "units": 500, "price": 150.1},
                    {"strategy_tag": "TrendMA", "units": -500, "price": 150.1},
                ]
            },
            "__meta": {"open_trades": []},
        }
        allowed, reason, _ = reentry_gate.allow_entry(
            strategy_tag="TrendMA", units=700, price=150.0, open_positions=positions, now=T0
        )
        assert (allowed, reason) == (False, "open_hard_cap")
        assert reentry_gate.needs_open_positions("TrendMA")
