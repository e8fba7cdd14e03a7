"""Why learning won: the learning-minus-static P/L split by the decisions that made it (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.core.run_record import RunRecord
from autolearn.report.attribution import (
    attribute,
    block_effects,
    block_intervals,
    pnl_by,
)
from autolearn.report.why import clip
from autolearn.testing import make_signal, make_trade

T0 = datetime(2025, 3, 3, tzinfo=UTC)
END = T0 + timedelta(days=2)


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _trade(entry_min: float, pl: float, pocket: str = "micro", strategy: str = "A") -> Any:
    entry = _at(entry_min)
    return make_trade(
        close_at=entry + timedelta(minutes=5),
        pl_pips=pl / 10.0,
        entry_at=entry,
        pocket=pocket,
        strategy=strategy,
    )


def _policy(at_min: float, scope: str, to: str, code: str, detail: str = "") -> RunRecord:
    return RunRecord.from_json(
        {
            "at": _at(at_min).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "mechanism": "policy",
            "decision": "apply",
            "applied": True,
            "run_id": f"policy-{at_min}",
            "reasons": [code],
            "diff": [
                {"knob": f"pockets.{scope}.allow_new", "before": True, "after": to != "blocked"}
            ],
            "transitions": [{"scope": scope, "from": "active", "to": to, "code": code}],
            "verdicts": {"scopes": {scope: {"code": code, "detail": detail or code}}},
        }
    )


def _change(at_min: float, mechanism: str, knob: str) -> RunRecord:
    return RunRecord.from_json(
        {
            "at": _at(at_min).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "mechanism": mechanism,
            "decision": "apply",
            "applied": True,
            "run_id": f"{mechanism}-{at_min}",
            "reasons": ["better"],
            "diff": [{"knob": knob, "before": 1, "after": 2}],
        }
    )


def _net(trades: Any) -> float:
    return sum(t.pl_account for t in trades)


class TestPnlBy:
    def test_sums_per_pocket_for_both_runs(self) -> None:
        """Each pocket's trade count and net P/L, per run, and their difference."""
        learning = [_trade(0, 10, "micro"), _trade(10, -5, "scalp")]
        static = [_trade(0, 10, "micro"), _trade(20, -30, "micro")]
        rows = {r.key: r for r in pnl_by("pocket", learning, static)}
        assert rows["micro"].learning_trades == 1 and rows["micro"].static_trades == 2
        assert rows["micro"].difference == pytest.approx(30.0)
        assert rows["scalp"].static_trades == 0 and rows["scalp"].learning_net == -5.0

    def test_rejects_an_unknown_field(self) -> None:
        """Only pocket and strategy are breakdowns."""
        with pytest.raises(ValueError, match="pocket"):
            pnl_by("side", [], [])


class TestAttribute:
    def test_a_denied_entry_under_a_block_is_charged_to_the_block(self) -> None:
        """A static-only entry inside a block of its pocket: policy, direct, its loss avoided."""
        records = [_policy(60, "micro", "blocked", "block_negative_expectancy")]
        static = [_trade(0, 5), _trade(90, -20)]
        learning = [_trade(0, 5)]
        (effect,) = attribute(learning, static, records, END)
        assert effect.cause.mechanism == "policy" and effect.cause.direct
        assert effect.denied_trades == 1 and effect.denied_net == -20.0
        assert effect.effect == pytest.approx(20.0)

    def test_a_change_naming_the_scope_is_direct_another_is_indirect(self) -> None:
        """An admitted entry after a tuner change of its pocket's knob is direct; a scalp entry
        after it (no scalp knob changed) is a knock-on effect of the same change."""
        records = [_change(30, "tuner", "pockets.micro.min_score")]
        learning = [_trade(40, 7, "micro"), _trade(50, 3, "scalp", "S")]
        effects = {e.cause.direct: e for e in attribute(learning, [], records, END)}
        assert effects[True].cause.label == "change tuner-30"
        assert effects[True].admitted_net == 7.0
        assert effects[False].cause.mechanism == "tuner" and effects[False].admitted_net == 3.0

    def test_same_entry_other_exit_is_a_changed_trade(self) -> None:
        """One entry in both runs closed at a different P/L: the difference, not the trade."""
        records = [_change(5, "tuner", "exit.micro.tp_pips")]
        (effect,) = attribute([_trade(10, 12)], [_trade(10, 4)], records, END)
        assert effect.changed_trades == 1 and effect.changed_net == pytest.approx(8.0)
        assert effect.admitted_trades == effect.denied_trades == 0

    def test_identical_runs_have_nothing_to_explain(self) -> None:
        """Same entries, same P/L: no cause at all."""
        trades = [_trade(0, 5), _trade(10, -3)]
        assert attribute(trades, trades, [], END) == []

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(st.tuples(st.integers(0, 600), st.integers(-40, 40), st.booleans()), max_size=25),
        st.lists(st.tuples(st.integers(0, 600), st.integers(-40, 40), st.booleans()), max_size=25),
        st.lists(st.integers(0, 600), max_size=3),
        st.one_of(st.none(), st.integers(0, 600)),
    )
    def test_effects_add_up_to_the_difference(
        self,
        mine: list[tuple[int, int, bool]],
        theirs: list[tuple[int, int, bool]],
        change_at: list[int],
        block_at: int | None,
    ) -> None:
        """Whatever the trades and decisions, the effects sum to learning net minus static net,
        and every bucketed entry is counted once."""
        learning = [_trade(m, pl, "micro" if p else "scalp") for m, pl, p in mine]
        static = [_trade(m, pl, "micro" if p else "scalp") for m, pl, p in theirs]
        records = [_change(m, "tuner", "pockets.scalp.x") for m in change_at]
        if block_at is not None:
            records.append(_policy(block_at, "micro", "blocked", "block"))
        records.sort(key=lambda r: r.at or T0)
        effects = attribute(learning, static, records, END)
        assert sum(e.effect for e in effects) == pytest.approx(_net(learning) - _net(static))
        keys_l = {(t.pocket, t.strategy, t.entry_at) for t in learning}
        keys_s = {(t.pocket, t.strategy, t.entry_at) for t in static}
        assert sum(e.admitted_trades for e in effects) == len(keys_l - keys_s)
        assert sum(e.denied_trades for e in effects) == len(keys_s - keys_l)


class TestBlocks:
    def test_intervals_run_from_block_to_release_or_end(self) -> None:
        """A block lifted later closes there; one still open runs to the end of the replay."""
        records = [
            _policy(10, "micro", "blocked", "block_negative_expectancy"),
            _policy(100, "micro", "active", "unblock_recovered"),
            _policy(200, "scalp/S", "blocked", "block_negative_expectancy"),
        ]
        intervals = block_intervals(records, END)
        assert [(b.scope, b.start, b.stop) for b in intervals] == [
            ("micro", _at(10), _at(100)),
            ("scalp/S", _at(200), END),
        ]
        assert intervals[1].covers("scalp", "S", _at(300))
        assert not intervals[1].covers("scalp", "Other", _at(300))

    def test_block_effect_counts_shadow_outcomes_and_static_pl(self) -> None:
        """The shadow outcomes denied by the block and the static P/L in its scope and interval
        say what it saved; the last verdict while blocked is the evidence that kept it."""
        records = [
            _policy(10, "micro", "blocked", "block_negative_expectancy", "n=12 mean=-2"),
            RunRecord.from_json(
                {
                    "at": _at(50).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
                    "mechanism": "policy",
                    "decision": "hold",
                    "applied": False,
                    "reasons": ["no_transition"],
                    "verdicts": {
                        "scopes": {"micro": {"code": "shadow_still_bad", "detail": "n=19 net=-40"}}
                    },
                }
            ),
        ]
        signals = [
            make_signal(
                at=_at(20), outcome_pips=-3.0, pocket="micro", reason="policy_pocket_blocked"
            ),
            make_signal(
                at=_at(30), outcome_pips=1.0, pocket="micro", reason="policy_pocket_blocked"
            ),
            make_signal(at=_at(30), outcome_pips=9.0, pocket="micro", reason="perf_low"),
            make_signal(
                at=_at(5), outcome_pips=9.0, pocket="micro", reason="policy_pocket_blocked"
            ),
        ]
        static = [_trade(20, -25), _trade(40, 5), _trade(0, 100), _trade(20, 50, "scalp")]
        (effect,) = block_effects(records, signals, static, END)
        assert effect.evidence == "shadow_still_bad: n=19 net=-40"
        assert effect.shadow_signals == 2 and effect.shadow_pips == pytest.approx(-2.0)
        assert effect.static_trades == 2 and effect.saved_account == pytest.approx(20.0)


class TestClip:
    @pytest.mark.parametrize(
        ("text", "limit", "expected"),
        [("abc", 3, "abc"), ("abcd", 3, "ab\u2026"), ("", 1, "")],
    )
    def test_cut_is_marked(self, text: str, limit: int, expected: str) -> None:
        """A cut text ends with an ellipsis and never exceeds the limit; a short one is kept."""
        assert clip(text, limit) == expected

    @given(st.text(max_size=50), st.integers(1, 40))
    def test_never_longer_than_the_limit(self, text: str, limit: int) -> None:
        """Whatever the text, the clip fits, and is the text itself when it fits already."""
        out = clip(text, limit)
        assert len(out) <= limit
        assert (out == text) == (len(text) <= limit)
