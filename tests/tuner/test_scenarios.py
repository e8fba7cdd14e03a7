"""Scenario tests on simulated ledgers with known truth, through the real cycle, state and ledger.

Truth (``autolearn.knowntruth.Scenario``): the MomentumPulse micro strategy loses 1.5 pips a trade
at its preset ``min_confidence`` (0.65), so the tuner's rule tightens it; the tightened value's
mean is ``-1.5 + effect``. Per-trade sd is 5 pips (QuantRabbit's own), the bot passes each trade's
id as the unit, so the change in flight reaches only its concurrent arm (30 % of units). Each
scenario prints what it measured; ``bench/bench_judge.py`` runs the same with hundreds of seeds.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autolearn.core.lifecycle import FlightSettings, OnInconclusive
from autolearn.knowntruth import KNOB, PRESET, Scenario, first_flight
from autolearn.tuner import OnFail, TunerConfig

HARM = Scenario(name="harm", effect_pips=-2.3).truth()


def _changes(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("applied")]


def _assert_step_streaks_bounded(records: list[dict[str, Any]], k: int) -> None:
    """No knob takes more than K same-direction APPLY steps without a passing verdict."""
    streak: dict[str, tuple[int, int]] = {}
    for r in records:
        if r["decision"] == "promote":
            streak = {}
        if r["decision"] != "apply" or not r.get("applied"):
            continue
        for d in r["diff"]:
            direction = 1 if d["after"] > d["before"] else -1
            last_dir, count = streak.get(d["knob"], (0, 0))
            count = count + 1 if last_dir == direction else 1
            streak[d["knob"]] = (direction, count)
            assert count <= k, f"{d['knob']} took {count} same-direction steps without a pass"


def test_a_thin_market_never_moves_a_knob(make_bot: Callable[..., Any]) -> None:
    """(a) 24 simulated hours at ~2 trades an hour: every run freezes or holds, nothing changes."""
    bot = make_bot(lambda v: (-3.0, 5.0), seed=11, trades_per_hour=2.0)
    records = bot.run(24)
    assert not _changes(records)
    assert {r["decision"] for r in records} <= {"freeze", "hold"}
    assert any("micro.entry:min_trades" in r["reasons"] for r in records)
    assert bot.store.read_effective().values == {}
    print(f"\n[scenario a] {len(records)} runs, {bot.n_trades} trades, 0 knob changes")


def test_b_a_harmful_change_is_rolled_back_to_a_real_snapshot(
    make_bot: Callable[..., Any],
) -> None:
    """(b) Tightening truly hurts (-2.3 pips at sd 5): the judge rolls it back in ~100 trades."""
    delays = []
    for seed in range(4):
        bot = make_bot(HARM, seed=seed, trades_per_hour=40.0)
        records = bot.run(14)
        applies = [r for r in records if r["decision"] == "apply" and r["applied"]]
        rollbacks = [r for r in records if r["decision"] == "rollback" and r["applied"]]
        assert applies and rollbacks, "the rule should fire and the change be rolled back"
        first_apply, first_rollback = applies[0], rollbacks[0]
        assert first_rollback["at"] > first_apply["at"]
        (d,) = first_rollback["diff"]
        assert d["before"] != d["after"] == PRESET  # a real change back, never identical values
        assert first_rollback["target_version"] == first_apply["version_before"]
        assert first_rollback["restored_snapshot"] is True
        assert first_rollback["version_after"] == first_apply["version_before"]
        verdict = first_rollback["verdicts"]["micro.entry"]
        assert verdict["baseline_mode"] == "concurrent" and verdict["share"] == 0.3
        assert verdict["reason"] in {"worse_than_lkg", "hard_limit_drawdown"}
        delays.append(verdict["n_candidate"])
        # the arms ended with the flight: every unit sees the restored values again
        first_split = f"tuner/micro.entry/{first_apply['at']}"
        assert first_split not in {a.split_id for a in bot.store.read_effective().arms}
        _assert_step_streaks_bounded(records, TunerConfig().max_same_direction_steps)
    assert statistics.median(delays) <= 100
    print(
        f"\n[scenario b] harmful change (-2.3 pips, sd 5): rolled back after "
        f"{delays} candidate trades (median {statistics.median(delays)})"
    )


def test_the_baseline_arm_runs_concurrently_and_never_shrinks(
    make_bot: Callable[..., Any],
) -> None:
    """While in flight, both arms trade at once; the baseline count only ever grows."""
    bot = make_bot(lambda v: (-1.5, 5.0), seed=3, trades_per_hour=40.0)
    records = bot.run(16)
    judged = [r["verdicts"]["micro.entry"] for r in records if "micro.entry" in r["verdicts"]]
    assert len(judged) > 10
    started = {v["started_at"] for v in judged}
    for flight_start in started:
        counts = [v["n_baseline"] for v in judged if v["started_at"] == flight_start]
        assert counts == sorted(counts), "the baseline must never shrink during a flight"
        assert all(v["baseline_mode"] == "concurrent" for v in judged)
    effective_versions = {r["version_after"] for r in records}
    pinned = {entry for entry, _ in bot.trade_log}
    assert len(pinned) == bot.n_trades and len(effective_versions) >= 2


def test_b_repeated_harm_hits_the_step_limit(make_bot: Callable[..., Any]) -> None:
    """After K failed same-direction attempts the knob is not pushed again (step_limit)."""
    config = TunerConfig(
        max_same_direction_steps=2,
        flight=FlightSettings(cooldown=FlightSettings().cooldown / 6),
    )
    bot = make_bot(HARM, seed=3, config=config, trades_per_hour=40.0)
    records = bot.run(40, minutes=20)
    attempts = [r for r in records if r["decision"] == "apply" and r["applied"]]
    assert len(attempts) == 2
    assert any(e["code"] == "step_limit" for r in records[-10:] for e in r.get("considered", []))


def test_d_a_helpful_change_is_promoted(make_bot: Callable[..., Any]) -> None:
    """(d) Tightening truly helps (+2 pips at sd 5): promoted on evidence, becomes the LKG."""
    delays = []
    for seed in range(2):
        bot = make_bot(
            Scenario(name="help", effect_pips=2.0).truth(), seed=seed, trades_per_hour=40.0
        )
        records = bot.run(30, minutes=20)
        promoted = [r for r in records if r["decision"] == "promote"]
        assert promoted, "the helpful change should be promoted"
        assert promoted[0]["verdicts"]["micro.entry"]["reason"] == "better_than_lkg"
        state = bot.store.read_mechanism("tuner")["families"]["micro.entry"]
        assert state["lkg_values"][KNOB] > PRESET and state["lkg_bootstrap"] is False
        promoted_split = f"tuner/micro.entry/{promoted[0]['verdicts']['micro.entry']['started_at']}"
        # promoted: its split ended, everyone gets the values
        assert promoted_split not in {a.split_id for a in bot.store.read_effective().arms}
        delays.append(promoted[0]["verdicts"]["micro.entry"]["n_candidate"])
    print(
        f"\n[scenario d] helpful change (+2 pips, sd 5): promoted after {delays} candidate trades"
    )


def test_overlapping_windows_judge_like_with_like(make_bot: Callable[..., Any]) -> None:
    """5.1 overlapping windows: the verdict counts exactly the trades opened under the candidate."""
    bot = make_bot(HARM, seed=5, trades_per_hour=40.0)
    records = bot.run(10)
    judged = [r for r in records if "micro.entry" in (r.get("verdicts") or {})]
    assert judged
    for r in judged:
        verdict = r["verdicts"]["micro.entry"]
        opened_under_candidate = sum(
            1
            for entry, value in bot.trade_log
            if entry.isoformat() >= verdict["started_at"].replace("Z", "+00:00")
            and entry.isoformat() < r["at"].replace("Z", "+00:00")
            and value > PRESET
        )
        assert verdict["n_candidate"] == opened_under_candidate


def test_a_bot_without_unit_ids_falls_back_to_before_after(make_bot: Callable[..., Any]) -> None:
    """No unit id: every entry sees the candidate, the judge says before_after and still decides."""
    bot = make_bot(HARM, seed=2, trades_per_hour=40.0, pass_units=False)
    records = bot.run(16)
    judged = [r["verdicts"]["micro.entry"] for r in records if "micro.entry" in r["verdicts"]]
    decided = [v for v in judged if v["n_candidate"] >= 30]
    assert decided and all(v["baseline_mode"] == "before_after" for v in decided)
    assert any(r["decision"] == "rollback" for r in records)


def test_legacy_trades_without_version_are_attributed_by_entry_time(
    make_bot: Callable[..., Any],
) -> None:
    """Trades with an empty config_version are judged by entry time on the history's timeline."""
    bot = make_bot(HARM, seed=2, pin_version=False, pass_units=False, trades_per_hour=40.0)
    records = bot.run(16)
    judged = [r for r in records if "micro.entry" in (r.get("verdicts") or {})]
    assert judged and judged[-1]["verdicts"]["micro.entry"]["n_candidate"] > 0
    assert any(r["decision"] in {"rollback", "revert"} for r in records)


def test_on_fail_shadow_switches_the_tuner_to_shadow(make_bot: Callable[..., Any]) -> None:
    """With on_fail=shadow a failed change is rolled back and later runs only shadow."""
    bot = make_bot(HARM, seed=1, config=TunerConfig(on_fail=OnFail.SHADOW), trades_per_hour=40.0)
    records = bot.run(14)
    index = next(i for i, r in enumerate(records) if r["decision"] == "rollback")
    assert records[index]["verdicts"]["micro.entry"]["outcome"] == "fail"
    after = records[index + 1 :]
    assert after and all(r["mode"] == "shadow" and not r["applied"] for r in after)
    assert bot.store.read_mechanism("tuner")["mode"] == "shadow"


def test_an_undecided_change_pauses_at_its_deadline_when_configured(
    make_bot: Callable[..., Any],
) -> None:
    """on_inconclusive=pause: at the deadline the flight keeps both arms and says so each run."""
    flight = FlightSettings(deadline_trades=60, on_inconclusive=OnInconclusive.PAUSE)
    bot = make_bot(
        lambda v: (-1.5, 5.0), seed=4, config=TunerConfig(flight=flight), trades_per_hour=40.0
    )
    records = bot.run(20)
    paused = [
        r
        for r in records
        if r["decision"] == "pause" or "micro.entry:paused:deadline_undecided" in r["reasons"]
    ]
    assert paused, [r["reasons"] for r in records[-3:]]
    assert not any(r["decision"] == "revert" for r in records)
    assert bot.store.read_effective().arms, "a paused flight keeps its arms for the operator"
    state = bot.store.read_mechanism("tuner")["families"]["micro.entry"]
    assert state["in_flight"]["paused_at"] is not None


@pytest.mark.slow
def test_known_truth_first_flights(tmp_path: Path) -> None:
    """Few seeds of the bench's scenarios: harm caught, no-effect never rolled back or promoted."""
    outcomes = {
        name: [
            first_flight(
                Scenario(name=name, effect_pips=effect, minutes=minutes),
                seed,
                tmp_path / f"{name}{seed}",
            )
            for seed in range(seeds)
        ]
        for name, effect, minutes, seeds in (
            ("harm_2.3", -2.3, 10, 6),
            ("harm_0.8", -0.8, 30, 4),
            ("null", 0.0, 60, 3),
        )
    }
    harm = outcomes["harm_2.3"]
    assert all(o.decision == "rollback" for o in harm)
    assert statistics.median(o.n_candidate for o in harm) <= 80
    assert sum(o.decision in ("rollback", "revert") for o in outcomes["harm_0.8"]) >= 3
    assert all(o.decision in ("revert", "none") for o in outcomes["null"])
    print(
        "\n[known truth] "
        + "; ".join(
            f"{name}: " + ", ".join(f"{o.decision}@{o.n_candidate}" for o in group)
            for name, group in outcomes.items()
        )
    )
