"""The gates fail closed on unknown pockets and bad arguments, and notice a replaced ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autolearn.adapters.state import StateStore
from autolearn.core.apply_guard import ApplyKind
from autolearn.core.knobs import Owner
from autolearn.gates import Gates, OpenPosition
from autolearn.ledger.sql import SqlLedger
from autolearn.settings import load_registry
from autolearn.testing import make_trade

REGISTRY = load_registry(None)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(name="blocked")
def fixture_blocked(tmp_path: Path) -> Gates:
    """Gates over a state where the micro pocket is blocked by the operator."""
    url, state = f"sqlite:///{tmp_path / 'l.db'}", tmp_path / "state"
    SqlLedger.open(url).close()
    StateStore(state, REGISTRY).apply(
        Owner.OPERATOR, {"pockets.micro.allow_new": False}, NOW, kind=ApplyKind.OPERATOR
    )
    return Gates.open(url, state, REGISTRY, clock=lambda: 0.0)


class TestUnknownPockets:
    @pytest.mark.parametrize("pocket", ["mirco", "MICRO", "micro ", " micro", "micro\n", "x"])
    def test_unknown_pocket_is_denied(self, blocked: Gates, pocket: str) -> None:
        """A pocket the registry does not name is denied with unknown_pocket (never size 1.0)."""
        verdict = blocked.check_entry("MomentumPulse", pocket, "long", 150.0, NOW)
        assert not verdict.allowed and verdict.size_multiplier == 0.0
        (reason,) = verdict.reasons
        assert reason.code == "unknown_pocket" and repr(pocket) in reason.detail

    def test_the_real_pocket_stays_blocked_and_others_pass(self, blocked: Gates) -> None:
        """micro is blocked by policy; macro is allowed: the check adds no false denials."""
        assert (
            "policy_pocket_blocked"
            in blocked.check_entry("MomentumPulse", "micro", "long", 150.0, NOW).blocking_codes
        )
        assert blocked.check_entry("TrendMA", "macro", "long", 150.0, NOW).allowed


def _position(units: object) -> OpenPosition:
    return OpenPosition(
        strategy="TrendMA",
        pocket="macro",
        side="long",  # type: ignore[arg-type]
        units=units,  # type: ignore[arg-type]
        entry_price=150.0,
    )


class TestBadArguments:
    @pytest.mark.parametrize("price", [True, False, "150", None, float("nan"), -1.0, 0])
    def test_bad_price_is_invalid_input(self, blocked: Gates, price: object) -> None:
        """price=True is not 1.0: every non-number or non-positive price is invalid_input."""
        verdict = blocked.check_entry("TrendMA", "macro", "long", price, NOW)  # type: ignore[arg-type]
        assert not verdict.allowed
        assert [r.code for r in verdict.reasons] == ["invalid_input"]

    @pytest.mark.parametrize("units", [-1000, 0, True, 1.5])
    def test_bad_units_are_refused(self, units: object) -> None:
        """An open position with negative, zero, bool or fractional units is refused."""
        with pytest.raises(ValueError, match="units"):
            _position(units)

    def test_bad_units_smuggled_past_the_constructor(self, blocked: Gates) -> None:
        """Even a position whose units were changed after construction is invalid_input."""
        position = _position(1000)
        object.__setattr__(position, "units", -1000)
        verdict = blocked.check_entry("TrendMA", "macro", "long", 150.0, NOW, [position])
        assert [r.code for r in verdict.reasons] == ["invalid_input"]


class TestReplacedLedger:
    def test_recreated_ledger_is_reopened(self, tmp_path: Path) -> None:
        """A ledger deleted and recreated under running gates is reopened, not read stale."""
        path = tmp_path / "l.db"
        url = f"sqlite:///{path}"
        with SqlLedger.open(url) as ledger:
            ledger.upsert_trades(
                [
                    make_trade(close_at=NOW - timedelta(minutes=5 * i), pl_pips=-8.0)
                    for i in range(1, 21)
                ]
            )
        gates = Gates.open(url, tmp_path / "state", REGISTRY, clock=lambda: 0.0, refresh_s=0)
        assert not gates.check_entry("MomentumPulse", "micro", "long", 150.0, NOW).allowed
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        with SqlLedger.open(url) as fresh:
            fresh.upsert_trades([make_trade(close_at=NOW - timedelta(minutes=1), pl_pips=2.0)])
        verdict = gates.check_entry("MomentumPulse", "micro", "long", 150.0, NOW)
        assert verdict.allowed, verdict
        assert gates.aggregates.trades_seen == 1
