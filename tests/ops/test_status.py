"""The pure status report: health from cadence, mode, progress, blocks, ledger, exit code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autolearn.core.timestamps import format_utc
from autolearn.ops.status import Health, LedgerProbe, Mode, StatusInputs, build_status

NOW = datetime(2025, 10, 23, 3, 0, tzinfo=UTC)
FRESH_LEDGER = LedgerProbe(
    source="sqlite:///l.db", last_close_at=NOW - timedelta(minutes=5), trades=9
)


def _run(minutes_ago: float, mechanism: str = "tuner", **extra: Any) -> dict[str, Any]:
    at = NOW - timedelta(minutes=minutes_ago)
    return {
        "at": format_utc(at),
        "run_id": f"{mechanism}-{minutes_ago}",
        "mechanism": mechanism,
        "decision": "hold",
        "reasons": ["no_signal"],
        "applied": False,
        **extra,
    }


def _enabled(*names: str, minutes_ago: float = 600) -> dict[str, Any]:
    at = format_utc(NOW - timedelta(minutes=minutes_ago))
    return {
        "mechanisms": {
            n: {"enabled": True, "enabled_at": at, "enabled_reason": "test"} for n in names
        }
    }


def _inputs(records: list[dict[str, Any]], **kw: Any) -> StatusInputs:
    kw.setdefault("ledger", FRESH_LEDGER)
    kw.setdefault("control", _enabled("tuner"))
    return StatusInputs(records=records, history_path="history.jsonl", **kw)


class TestHealth:
    # cadence of the tuner is 10 min: ok <= 15 min, late <= 20 min, stopped beyond
    @pytest.mark.parametrize(
        ("minutes_ago", "health", "code"),
        [
            (1, Health.OK, 0),
            (15, Health.OK, 0),
            (16, Health.LATE, 1),
            (20, Health.LATE, 1),
            (21, Health.STOPPED, 2),
            (24 * 60, Health.STOPPED, 2),
        ],
    )
    def test_age_against_cadence(self, minutes_ago: float, health: Health, code: int) -> None:
        """1.5 cadences is the end of OK, 2 cadences the end of LATE, then STOPPED (exit 2)."""
        report = build_status(_inputs([_run(minutes_ago)]), NOW)
        assert report.mechanism("tuner").health is health
        assert report.exit_code == code

    def test_never_run_is_pending_then_stopped(self) -> None:
        """An enabled mechanism without a run is pending after enabling, stopped past 2 cadences."""
        fresh = build_status(_inputs([], control=_enabled("tuner", minutes_ago=5)), NOW)
        assert fresh.mechanism("tuner").health is Health.PENDING
        assert fresh.exit_code == 0
        old = build_status(_inputs([], control=_enabled("tuner", minutes_ago=30)), NOW)
        assert old.mechanism("tuner").health is Health.STOPPED
        assert old.exit_code == 2

    def test_disabled_mechanism_never_alarms(self) -> None:
        """A mechanism nobody enabled is DISABLED whatever its last run, and exit stays 0."""
        report = build_status(_inputs([_run(600, "autotune")], control={}), NOW)
        assert report.mechanism("autotune").health is Health.DISABLED
        assert report.exit_code == 0

    def test_operator_records_are_not_runs(self) -> None:
        """A freeze recorded under the tuner's name does not count as the tuner having run."""
        freeze = _run(1, decision="operator_freeze")
        report = build_status(_inputs([_run(30), freeze]), NOW)
        tuner = report.mechanism("tuner")
        assert tuner.last_run is not None and tuner.last_run.run_id == "tuner-30"
        assert tuner.health is Health.STOPPED

    @given(st.floats(min_value=0, max_value=5000), st.floats(min_value=0, max_value=5000))
    def test_older_is_never_healthier(self, a: float, b: float) -> None:
        """Health is monotone in the age of the last run."""
        rank = {Health.OK: 0, Health.LATE: 1, Health.STOPPED: 2}
        young, old = sorted((a, b))
        h_young = build_status(_inputs([_run(young)]), NOW).mechanism("tuner").health
        h_old = build_status(_inputs([_run(old)]), NOW).mechanism("tuner").health
        assert rank[h_young] <= rank[h_old]


class TestModeAndProgress:
    def test_frozen_wins_and_names_its_reason(self) -> None:
        """A frozen mechanism shows FROZEN with the operator's reason as its source."""
        control = _enabled("tuner")
        control["mechanisms"]["tuner"].update(frozen=True, reason="bad feed", at="x")
        tuner = build_status(_inputs([_run(1, mode="shadow")], control=control), NOW).mechanism(
            "tuner"
        )
        assert tuner.mode is Mode.FROZEN
        assert "bad feed" in tuner.mode_source

    def test_shadow_from_the_last_run(self) -> None:
        """The last run's mode is shown, with its run id as the source."""
        tuner = build_status(_inputs([_run(1, mode="shadow")]), NOW).mechanism("tuner")
        assert tuner.mode is Mode.SHADOW
        assert tuner.mode_source == "history.jsonl run_id=tuner-1"

    def test_in_flight_and_inconclusive_verdict(self) -> None:
        """The latest in-flight change and an inconclusive verdict with the trades it needs."""
        verdict = {
            "outcome": "inconclusive",
            "trades_needed": 42,
            "n_candidate": 18,
            "n_baseline": 120,
            "reason": "interval straddles the band",
        }
        record = _run(
            2,
            in_flight={"family": "exit.lowvol", "version": "vabc"},
            verdicts={"exit.lowvol": verdict},
        )
        tuner = build_status(_inputs([record, _run(1, decision="lock_busy")]), NOW).mechanism(
            "tuner"
        )
        assert tuner.in_flight == "family=exit.lowvol, version=vabc"
        assert tuner.verdicts[0].startswith("exit.lowvol: inconclusive: ~42 more trades")
        assert tuner.progress_source == "history.jsonl run_id=tuner-2"

    def test_lkg_and_rollbacks_in_24h(self) -> None:
        """LKG comes from the mechanism state; only rollbacks of the last 24 h are counted."""
        records = [
            _run(25 * 60, decision="rollback", reasons=["judge_fail"]),
            _run(60, decision="rollback", reasons=["hard_limit: loss streak 10"]),
            _run(1),
        ]
        report = build_status(
            _inputs(records, mechanism_states={"tuner": {"lkg": {"version": "v123"}}}), NOW
        )
        tuner = report.mechanism("tuner")
        assert tuner.lkg == "v123"
        assert [r.reasons for r in tuner.rollbacks_24h] == [("hard_limit: loss streak 10",)]


class TestBlockedAndDiff:
    def test_blocked_pocket_with_policy_reason_and_expiry(self) -> None:
        """A false allow_new is a block; reason/until come from the policy state; expiry shown."""
        until = format_utc(NOW - timedelta(minutes=1))
        inputs = _inputs(
            [],
            effective_values={"pockets.micro.allow_new": False, "pockets.scalp.size_mult": 0.5},
            presets={"pockets.micro.allow_new": True, "pockets.scalp.size_mult": 1.0},
            owners={"pockets.micro.allow_new": "policy", "pockets.scalp.size_mult": "policy"},
            mechanism_states={
                "policy": {"pockets": {"micro": {"reason": "ev_upper<0", "until": until}}}
            },
            effective_version="v1",
        )
        report = build_status(inputs, NOW)
        (block,) = report.blocked
        assert (block.pocket, block.strategy, block.reason, block.expired) == (
            "micro",
            None,
            "ev_upper<0",
            True,
        )
        assert "mechanisms/policy.json" in block.source
        assert [d.knob for d in report.mechanism("policy").changed_knobs] == [
            "pockets.micro.allow_new",
            "pockets.scalp.size_mult",
        ]

    def test_block_reason_falls_back_to_the_history(self) -> None:
        """Without policy state, the reason is the applying record's, traced by run id."""
        knob = "pockets.scalp.strategies.M1Scalper.allow_new"
        record = _run(
            3,
            "policy",
            decision="apply",
            applied=True,
            reasons=["pf<0.9"],
            diff=[{"knob": knob, "before": True, "after": False}],
        )
        report = build_status(
            _inputs([record], effective_values={knob: False}, presets={knob: True}), NOW
        )
        (block,) = report.blocked
        assert block.strategy == "M1Scalper" and block.reason == "pf<0.9"
        assert "run_id=policy-3" in block.source


class TestDegraded:
    @pytest.mark.parametrize(
        ("kw", "needle"),
        [
            (
                {"ledger": LedgerProbe(source="l", last_close_at=NOW - timedelta(hours=7))},
                "ledger stale",
            ),
            ({"ledger": LedgerProbe(source="l", error="no such table")}, "ledger unreadable"),
            ({"ledger": LedgerProbe(source="l")}, "no closed trade"),
            ({"history_torn": True}, "torn last line"),
            ({"history_corrupt_lines": [3]}, "corrupt lines 3"),
            ({"effective_error": "bad json"}, "runtime state unreadable"),
        ],
    )
    def test_degradations_exit_one(self, kw: dict[str, Any], needle: str) -> None:
        """Each degradation gives exit 1 and a problem line saying what and where."""
        report = build_status(_inputs([_run(1)], **kw), NOW)
        assert report.exit_code == 1
        assert any(needle in p for p in report.problems), report.problems

    def test_stopped_beats_degraded(self) -> None:
        """A stopped enabled mechanism gives exit 2 even when something is also degraded."""
        report = build_status(_inputs([_run(60)], history_torn=True), NOW)
        assert report.exit_code == 2 and report.overall == "stopped"

    def test_json_is_serialisable_and_sourced(self) -> None:
        """The JSON form carries each claim's source."""
        import json

        doc = build_status(_inputs([_run(1)]), NOW).to_json()
        json.dumps(doc)
        tuner = doc["mechanisms"][0]
        assert tuner["last_run"]["source"] == "history.jsonl run_id=tuner-1"
        assert doc["ledger"]["source"] == "sqlite:///l.db"
