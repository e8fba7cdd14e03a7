"""Continuous allocation: sizes that follow P(expectancy > 0), slowly, within [floor, 1].

Known truth: a generator of trades with a chosen expectancy (sd 5 pips, 96 trades a day, an
hourly policy cycle) run through the real state machine with ``allocation`` on. Three seeds
each, and every assertion must hold for every seed.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autolearn.gates.config import parse_gates_config
from autolearn.policy.allocation import allocate, allocation_target, posterior_positive
from autolearn.policy.config import PolicyConfig
from autolearn.policy.machine import Evidence, ScopeState, Status, StepCode, step

CFG = PolicyConfig(allocation=True)
SEEDS = (0, 1, 2)
T0 = datetime(2026, 1, 5, tzinfo=UTC)


def _run(ev: float, seed: int, *, cfg: PolicyConfig = CFG, days: int = 40) -> list[float]:
    """Size after each hourly cycle of one scope whose trades are N(ev, 5) pips."""
    rng = random.Random(seed)
    state, trades, sizes = ScopeState(), [], []
    gap = timedelta(minutes=15)
    now = next_trade = T0
    while now < T0 + timedelta(days=days):
        now += timedelta(hours=1)
        while next_trade < now:
            if state.status is not Status.BLOCKED:  # a blocked scope makes no trades
                trades.append((next_trade, rng.gauss(ev, 5.0)))
            next_trade += gap
        since = max(now - cfg.lookback, state.since or now - cfg.lookback)
        values = [p for t, p in trades if t >= since]
        evidence = Evidence.of(values, cfg.confidence)
        state, _, _ = step(state, evidence, Evidence.shadow([], cfg), cfg, now)
        sizes.append(state.size_mult)
    return sizes


def _reversals(sizes: list[float]) -> int:
    """Direction changes of the size while trading (blocks excluded)."""
    count, last = 0, 0
    for a, b in itertools.pairwise(sizes):
        if a > 0 and b > 0 and a != b:
            direction = 1 if b > a else -1
            count += bool(last and direction != last)
            last = direction
    return count


class TestKnownTruth:
    @pytest.mark.parametrize("seed", SEEDS)
    def test_a_losing_pocket_trades_smaller_and_smaller(self, seed: int) -> None:
        """EV -0.5: after five days at or below the floor (or blocked) in 90 % of the cycles,
        never at full size, and no more exposure in all than the on/off machine (which, with
        its sequential probation exit, returns such a pocket to full size only rarely)."""
        sizes = _run(-0.5, seed)
        warm = sizes[5 * 24 :]
        assert sum(s <= CFG.probation_size for s in warm) >= 0.9 * len(warm)
        assert 0.0 in sizes  # the block still comes: allocation never replaces it
        on_off = _run(-0.5, seed, cfg=PolicyConfig())
        assert max(warm) < 1.0
        assert sum(sizes) <= sum(on_off)

    @pytest.mark.parametrize("seed", SEEDS)
    def test_a_winning_pocket_stays_at_full_size(self, seed: int) -> None:
        """EV +0.5: at full size in at least 90 % of the cycles after the first five days."""
        warm = _run(0.5, seed)[5 * 24 :]
        assert sum(s == 1.0 for s in warm) >= 0.9 * len(warm)
        assert min(warm) >= CFG.probation_size

    def test_a_marginal_pocket_settles_in_between_without_flapping(self) -> None:
        """EV +0.1 (0.02 sd): between floor and full size on average, moving slowly."""
        means = []
        for seed in SEEDS:
            sizes = _run(0.1, seed)
            steps = [abs(b - a) for a, b in itertools.pairwise(sizes) if a and b]
            assert max(steps) <= CFG.allocation_step + 1e-9
            assert _reversals(sizes) <= 40  # at most one change of direction a day
            means.append(sum(sizes[20 * 24 :]) / len(sizes[20 * 24 :]))
        assert CFG.probation_size + 0.1 < sum(means) / len(means) < 0.95

    def test_off_by_default_the_machine_is_on_off(self) -> None:
        """Without ``allocation`` the same marginal pocket only ever trades at 1, 0.5 or 0."""
        cfg = PolicyConfig()
        assert not cfg.allocation
        assert set(_run(0.1, 0, cfg=cfg, days=20)) <= {0.0, cfg.probation_size, 1.0}


class TestAllocate:
    def test_posterior_is_the_t_probability_of_a_positive_mean(self) -> None:
        """n=100, mean 0.5, sd 5: t = 1 on 99 df, P = 0.840; no evidence is NaN, not 0."""
        assert posterior_positive(100, 0.5, 5.0) == pytest.approx(0.8401, abs=1e-3)
        assert posterior_positive(100, -0.5, 5.0) == pytest.approx(0.1599, abs=1e-3)
        assert math.isnan(posterior_positive(1, 0.5, 5.0))
        assert posterior_positive(5, 0.2, 0.0) == 1.0

    def test_target_maps_probability_onto_floor_to_one(self) -> None:
        """p <= p_floor is the probation size, p >= p_full full size, linear between."""
        assert allocation_target(0.2, CFG) == CFG.probation_size
        assert allocation_target(0.95, CFG) == 1.0
        assert allocation_target(0.7, CFG) == pytest.approx(0.75)

    def test_few_trades_hold_the_size(self) -> None:
        """Below allocation_min_trades nothing moves (no evidence is never bad evidence)."""
        out = allocate(0.8, CFG.allocation_min_trades - 1, -3.0, 5.0, CFG)
        assert (out.size_mult, out.code) == (0.8, "allocation_insufficient")

    def test_hysteresis_holds_a_near_target(self) -> None:
        """A target less than the hysteresis away does not move the size."""
        n, sd = 400, 5.0
        mean = 1.2 * sd / math.sqrt(n)  # p ~ 0.885: target ~ 0.98, 0.05 above the size
        out = allocate(0.95, n, mean, sd, replace(CFG, allocation_p_full=0.95))
        assert out.code == "allocation_held" and out.size_mult == 0.95

    def test_a_target_at_full_size_is_reached_all_the_way(self) -> None:
        """A clearly good scope climbs to 1, not to one hysteresis short of it."""
        size = 0.5
        for _ in range(20):
            size = allocate(size, 500, 1.0, 5.0, CFG).size_mult
        assert size == 1.0

    @given(
        current=st.floats(0, 1),
        n=st.integers(0, 2000),
        mean=st.floats(-5, 5),
        sd=st.floats(0.01, 20),
    )
    def test_one_step_at_most_and_always_within_floor_and_one(
        self, current: float, n: int, mean: float, sd: float
    ) -> None:
        """Whatever the evidence, the size lands in [floor, 1], within one step of the held one."""
        out = allocate(current, n, mean, sd, CFG)
        on_grid = round(current / CFG.allocation_step) * CFG.allocation_step
        held = min(1.0, max(CFG.probation_size, on_grid))
        assert CFG.probation_size <= out.size_mult <= 1.0
        assert abs(out.size_mult - held) <= CFG.allocation_step + 1e-9

    @given(n=st.integers(30, 2000), a=st.floats(-3, 3), b=st.floats(-3, 3))
    def test_better_evidence_never_means_a_smaller_target(self, n: int, a: float, b: float) -> None:
        """The target is monotone in the mean (same n and sd)."""
        lo, hi = sorted((a, b))
        p_lo, p_hi = posterior_positive(n, lo, 5.0), posterior_positive(n, hi, 5.0)
        assert allocation_target(p_lo, CFG) <= allocation_target(p_hi, CFG)


class TestMachine:
    def test_probation_passed_keeps_the_probation_size_under_allocation(self) -> None:
        """Leaving probation does not jump to full size: allocation raises it step by step."""
        state = ScopeState(status=Status.PROBATION, since=T0, size_mult=0.5)
        good = Evidence.of([1.0, 2.0, 0.5, 1.5] * 5, CFG.confidence)
        after, code, detail = step(state, good, Evidence.shadow([], CFG), CFG, T0 + timedelta(1))
        assert code is StepCode.PROBATION_PASSED and after.status is Status.ACTIVE
        assert after.size_mult == 0.5 and "allocation" in detail

    def test_a_confidently_losing_scope_is_still_blocked(self) -> None:
        """Allocation sizes active scopes; the block for a confident loser still applies."""
        bad = Evidence.of([-2.0, -1.0, -3.0, -1.5] * 10, CFG.confidence)
        after, code, _ = step(ScopeState(), bad, Evidence.shadow([], CFG), CFG, T0)
        assert code is StepCode.BLOCK_NEGATIVE and after.size_mult == 0.0

    def test_gates_yaml_turns_it_on_and_refuses_a_bad_band(self) -> None:
        """``policy.allocation: true`` loads; p_floor >= p_full is a config error."""
        from autolearn.errors import ConfigError

        cfg = parse_gates_config({"policy": {"allocation": True, "allocation_p_full": 0.8}})
        assert cfg.policy.allocation and cfg.policy.allocation_p_full == 0.8
        with pytest.raises(ConfigError, match="allocation_p_floor"):
            parse_gates_config({"policy": {"allocation_p_floor": 0.9, "allocation_p_full": 0.8}})
