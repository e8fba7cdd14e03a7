"""EntrySignal validates itself naming the bad field; its plausibility check bounds every field."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from autolearn.core.model import EntrySignal, Side
from autolearn.core.plausibility import TradeLimits, implausible_entry_signal

T0 = datetime(2025, 10, 22, 8, 0, tzinfo=UTC)


def make(**overrides: Any) -> EntrySignal:
    """A valid not-taken MomentumPulse signal; keyword arguments override fields."""
    fields: dict[str, Any] = {
        "signal_id": "sig-1",
        "at": T0,
        "instrument": "USD_JPY",
        "pocket": "micro",
        "strategy": "MomentumPulse",
        "side": "long",
        "price": 151.5,
        "sl_pips": 8.0,
        "tp_pips": 12.0,
        "timeout_s": 1800.0,
        "scores": {"confidence": 0.61},
        "taken": False,
        "not_taken": "threshold",
    }
    fields.update(overrides)
    return EntrySignal(**fields)


class TestEntrySignal:
    def test_valid_signal_normalises_side_and_numbers(self) -> None:
        """A plain-string side becomes Side; integer scores become floats."""
        s = make(side="short", scores={"accel_pctile": 75})
        assert s.side is Side.SHORT
        assert s.scores == {"accel_pctile": 75.0}
        assert isinstance(s.scores["accel_pctile"], float)

    def test_scores_and_extra_are_copied(self) -> None:
        """Mutating the caller's dicts afterwards does not change the signal."""
        scores, extra = {"confidence": 0.7}, {"why": "x"}
        s = make(scores=scores, extra=extra)
        scores["confidence"] = 0.1
        extra["why"] = "y"
        assert s.scores == {"confidence": 0.7}
        assert s.extra == {"why": "x"}

    def test_taken_signal_has_no_reason(self) -> None:
        """A taken signal with not_taken '' and a trade id is valid."""
        s = make(taken=True, not_taken="", broker_trade_id="T1")
        assert s.taken and s.not_taken == ""

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"signal_id": ""}, "signal_id"),
            ({"at": datetime(2025, 10, 22, 8, 0)}, "at"),  # naive on purpose
            ({"price": math.nan}, "price"),
            ({"price": math.inf}, "price"),
            ({"sl_pips": math.nan}, "sl_pips"),
            ({"tp_pips": -math.inf}, "tp_pips"),
            ({"timeout_s": math.inf}, "timeout_s"),
            ({"timeout_s": 0.0}, "timeout_s"),
            ({"scores": {"confidence": math.nan}}, "scores['confidence']"),
            ({"scores": {"confidence": True}}, "scores['confidence']"),
            ({"scores": {"confidence": "0.6"}}, "scores['confidence']"),
            ({"scores": {"": 1.0}}, "score name"),
            ({"taken": True}, "not_taken"),  # taken, yet a reason
            ({"not_taken": ""}, "not_taken"),  # not taken, no reason
            ({"taken": 1, "not_taken": ""}, "taken"),
            ({"side": "up"}, "side"),
            ({"extra": {"k": 1}}, "extra"),
        ],
    )
    def test_invalid_field_is_named(self, overrides: dict[str, Any], field: str) -> None:
        """Each invalid value raises ValueError naming the signal and the field."""
        with pytest.raises(ValueError, match=r"signal_id|signal sig-1") as caught:
            make(**overrides)
        assert field in str(caught.value)

    def test_equal_values_compare_equal(self) -> None:
        """Two signals built from equal values are equal (a read equals what was written)."""
        assert make() == make()
        assert make() != make(scores={"confidence": 0.62})

    def test_any_utc_offset_is_accepted(self) -> None:
        """An aware time in another offset is a valid decision time."""
        tokyo = timezone(timedelta(hours=9))
        assert make(at=T0.astimezone(tokyo)).at == T0


class TestEntrySignalPlausibility:
    def test_ordinary_signal_is_plausible(self) -> None:
        """A signal at now with ordinary values has no finding."""
        assert implausible_entry_signal(make(), T0, TradeLimits()) == []

    def test_future_beyond_the_skew_is_named(self) -> None:
        """At more than future_tolerance after now: 'at' is named; within it: plausible."""
        limits = TradeLimits(future_tolerance=timedelta(minutes=5))
        assert implausible_entry_signal(make(at=T0 + timedelta(minutes=5)), T0, limits) == []
        (found,) = implausible_entry_signal(make(at=T0 + timedelta(minutes=6)), T0, limits)
        assert found.field == "at" and "in the future" in found.reason

    def test_every_absurd_magnitude_is_named(self) -> None:
        """Price, SL, TP, timeout and each score beyond their limits are each reported."""
        s = make(
            price=1e300,
            sl_pips=1e9,
            tp_pips=-1e9,
            timeout_s=1e12,
            scores={"confidence": 0.6, "z": 1e300},
        )
        fields = {f.field for f in implausible_entry_signal(s, T0, TradeLimits())}
        assert fields == {"price", "sl_pips", "tp_pips", "timeout_s", "scores['z']"}

    def test_score_limit_is_configurable(self) -> None:
        """max_abs_signal_score bounds scores and must itself be a positive finite number."""
        limits = TradeLimits(max_abs_signal_score=1.0)
        assert [f.field for f in implausible_entry_signal(make(), T0, limits)] == []
        s = make(scores={"vwap_z_abs": 2.2})
        found = [f.field for f in implausible_entry_signal(s, T0, limits)]
        assert found == ["scores['vwap_z_abs']"]
        with pytest.raises(ValueError, match="max_abs_signal_score"):
            TradeLimits(max_abs_signal_score=0.0)
