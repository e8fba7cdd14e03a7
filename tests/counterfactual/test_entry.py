"""choose_threshold: known truth, no false moves, fail-closed codes, and its invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.counterfactual.entry import EntryChoice, admitted, choose_threshold

GRID = [round(0.05 * k, 2) for k in range(21)]  # 0.00 .. 1.00


def _signals(
    rng: np.random.Generator, *, days: int, per_day: int, slope: float, best: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Uniform scores; outcome mean ``slope * (score - best)``, sd 5 pips (known truth)."""
    n = days * per_day
    scores = rng.uniform(0.0, 1.0, n)
    pips = slope * (scores - best) + rng.normal(0.0, 5.0, n)
    day = np.repeat(np.arange(days, dtype=np.int64) + 20_000, per_day)
    return scores, pips, day


def _true_ev(v: float, slope: float, best: float) -> float:
    """Expected pips per signal logged of admitting score >= v (scores uniform on [0, 1])."""
    return slope * ((1 - v * v) / 2 - best * (1 - v))


class TestKnownTruth:
    def test_moves_towards_the_best_and_never_to_a_worse_value(self) -> None:
        """With the best threshold at 0.6, a current 0.3 moves up in most seeds, never worse."""
        moved = 0
        for seed in range(20):
            rng = np.random.default_rng(seed)
            scores, pips, day = _signals(rng, days=30, per_day=10, slope=20.0, best=0.6)
            c = choose_threshold(
                scores=scores,
                pips=pips,
                day=day,
                grid=GRID,
                current=0.3,
                admits="above",
                max_steps=2,
            )
            assert _true_ev(c.value, 20.0, 0.6) >= _true_ev(0.3, 20.0, 0.6)
            if c.code == "cf_improves":
                moved += 1
                assert c.value > 0.3
                assert c.low > 0 and c.mean_diff_per_day > 0
        assert moved >= 14  # 79 of 100 seeds move at 300 signals/month (all at 600)

    def test_below_direction_mirrors_above(self) -> None:
        """A knob admitting scores <= value moves down towards a best at -0.6."""
        rng = np.random.default_rng(7)
        scores, pips, day = _signals(rng, days=30, per_day=10, slope=20.0, best=0.6)
        neg_grid = sorted(-v for v in GRID)
        c = choose_threshold(
            scores=-scores,
            pips=pips,
            day=day,
            grid=neg_grid,
            current=-0.3,
            admits="below",
            max_steps=2,
        )
        assert c.code == "cf_improves"
        assert c.value < -0.3

    def test_already_at_the_best_stays(self) -> None:
        """At the true best value, no neighbour is confirmed better."""
        rng = np.random.default_rng(3)
        scores, pips, day = _signals(rng, days=30, per_day=10, slope=20.0, best=0.6)
        c = choose_threshold(
            scores=scores,
            pips=pips,
            day=day,
            grid=GRID,
            current=0.6,
            admits="above",
            max_steps=2,
        )
        assert c.value == 0.6
        assert c.code == "cf_no_confirmed_gain"


class TestNoTrueDifference:
    def test_moves_in_under_five_percent_of_seeds(self) -> None:
        """Outcomes independent of the score (mean 0): false moves stay under 5 % of 100 seeds."""
        moves = 0
        for seed in range(100):
            rng = np.random.default_rng(1000 + seed)
            scores, pips, day = _signals(rng, days=20, per_day=15, slope=0.0, best=0.0)
            c = choose_threshold(
                scores=scores,
                pips=pips,
                day=day,
                grid=GRID,
                current=0.5,
                admits="above",
                max_steps=3,
            )
            moves += c.code == "cf_improves"
        assert moves < 5


class TestFailClosed:
    def test_too_few_days(self) -> None:
        """Fewer days than min_days: cf_insufficient, value unchanged."""
        rng = np.random.default_rng(0)
        scores, pips, day = _signals(rng, days=5, per_day=40, slope=20.0, best=0.6)
        c = choose_threshold(
            scores=scores,
            pips=pips,
            day=day,
            grid=GRID,
            current=0.3,
            admits="above",
            max_steps=2,
            min_days=6,
        )
        assert (c.code, c.value) == ("cf_insufficient", 0.3)

    def test_too_few_admitted_signals(self) -> None:
        """Under 30 admitted signals at every reachable value: cf_insufficient."""
        rng = np.random.default_rng(0)
        scores, pips, day = _signals(rng, days=20, per_day=10, slope=20.0, best=0.6)
        scores = scores * 0.1  # all below 0.1: a threshold near 0.9 admits none
        c = choose_threshold(
            scores=scores,
            pips=pips,
            day=day,
            grid=GRID,
            current=0.9,
            admits="above",
            max_steps=1,
        )
        assert (c.code, c.value) == ("cf_insufficient", 0.9)

    def test_nan_outcomes_are_excluded_and_counted(self) -> None:
        """NaN pips (unplaceable) and NaN scores (missing) are left out and counted."""
        rng = np.random.default_rng(0)
        scores, pips, day = _signals(rng, days=30, per_day=10, slope=20.0, best=0.6)
        pips[:7] = math.nan
        scores[7:10] = math.nan
        c = choose_threshold(
            scores=scores,
            pips=pips,
            day=day,
            grid=GRID,
            current=0.3,
            admits="above",
            max_steps=2,
        )
        assert (c.n_excluded, c.n_signals) == (10, 290)
        assert math.isfinite(c.mean_diff_per_day)

    def test_current_off_grid(self) -> None:
        """A current value not on the grid: cf_current_off_grid, value unchanged."""
        rng = np.random.default_rng(0)
        scores, pips, day = _signals(rng, days=30, per_day=10, slope=20.0, best=0.6)
        c = choose_threshold(
            scores=scores,
            pips=pips,
            day=day,
            grid=GRID,
            current=0.33,
            admits="above",
            max_steps=2,
        )
        assert (c.code, c.value) == ("cf_current_off_grid", 0.33)

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"admits": "sideways"}, "admits"),
            ({"grid": [0.2, 0.1]}, "increasing"),
            ({"max_steps": -1}, "max_steps"),
            ({"confidence": 1.0}, "confidence"),
        ],
    )
    def test_caller_bugs_raise(self, kwargs: dict[str, object], match: str) -> None:
        """Bad arguments are ValueErrors naming the argument, not evidence."""
        args: dict[str, object] = {
            "scores": np.zeros(3),
            "pips": np.zeros(3),
            "day": np.zeros(3, np.int64),
            "grid": GRID,
            "current": 0.3,
            "admits": "above",
            "max_steps": 1,
        }
        with pytest.raises(ValueError, match=match):
            choose_threshold(**{**args, **kwargs})  # type: ignore[arg-type]

    def test_as_dict_has_every_field(self) -> None:
        """as_dict carries the evidence numbers for the run record."""
        rng = np.random.default_rng(0)
        scores, pips, day = _signals(rng, days=30, per_day=10, slope=20.0, best=0.6)
        c = choose_threshold(
            scores=scores,
            pips=pips,
            day=day,
            grid=GRID,
            current=0.3,
            admits="above",
            max_steps=2,
        )
        d = c.as_dict()
        assert d["value"] == c.value and d["low"] == c.low and d["code"] == c.code
        assert set(d) >= {"n_signals", "n_days", "trades_current", "mean_pips_candidate"}


@st.composite
def _cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float], int, int]:
    n_grid = draw(st.integers(2, 8))
    grid = sorted(
        {round(x, 3) for x in draw(st.lists(st.floats(-5, 5), min_size=n_grid, max_size=n_grid))}
    )
    if len(grid) < 2:
        grid = [0.0, 1.0]
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    days = draw(st.integers(4, 14))
    n = draw(st.integers(30, 200))
    scores = rng.uniform(-6, 6, n)
    pips = rng.normal(draw(st.floats(-2, 2)), 5, n) + draw(st.floats(0, 3)) * scores
    day = rng.integers(0, days, n).astype(np.int64)
    cur = draw(st.integers(0, len(grid) - 1))
    steps = draw(st.integers(0, 3))
    return scores, pips, day, grid, cur, steps


class TestProperties:
    @settings(max_examples=80, deadline=None)
    @given(_cases())
    def test_value_on_grid_within_steps_and_symmetric(
        self, case: tuple[np.ndarray, np.ndarray, np.ndarray, list[float], int, int]
    ) -> None:
        """Chosen value is a grid value within max_steps; 'below' on -x mirrors 'above' on x."""
        scores, pips, day, grid, cur, steps = case
        above = choose_threshold(
            scores=scores,
            pips=pips,
            day=day,
            grid=grid,
            current=grid[cur],
            admits="above",
            max_steps=steps,
            min_days=4,
        )
        assert above.value in grid
        assert abs(grid.index(above.value) - cur) <= steps
        assert min(grid) <= above.value <= max(grid)
        if above.code == "cf_improves":
            assert above.mean_diff_per_day > 0 and above.low > 0
        else:
            assert above.value == grid[cur]
        below = choose_threshold(
            scores=-scores,
            pips=pips,
            day=day,
            grid=sorted(-g for g in grid),
            current=-grid[cur],
            admits="below",
            max_steps=steps,
            min_days=4,
        )
        assert below.code == above.code
        assert below.value == -above.value
        assert below.trades_candidate == above.trades_candidate

    @given(st.lists(st.floats(-10, 10), min_size=1, max_size=30), st.floats(-10, 10))
    def test_admitted_above_below_complement_off_ties(self, xs: list[float], v: float) -> None:
        """Every score is admitted by 'above' or 'below' (both exactly at the value)."""
        s = np.array(xs)
        a, b = admitted(s, v, "above"), admitted(s, v, "below")
        assert bool(np.all(a | b))
        assert bool(np.all((a & b) == (s == v)))


def test_entry_choice_is_frozen() -> None:
    """EntryChoice is a frozen value."""
    c = EntryChoice(
        value=1.0,
        code="x",
        detail="",
        candidate=1.0,
        best_unconstrained=1.0,
        n_signals=0,
        n_excluded=0,
        n_days=0,
        confirm_days=0,
        mean_diff_per_day=0.0,
        low=0.0,
        high=0.0,
        trades_current=0,
        trades_candidate=0,
        mean_pips_current=0.0,
        mean_pips_candidate=0.0,
    )
    with pytest.raises(AttributeError):
        c.value = 2.0  # type: ignore[misc]
