"""Deflated Sharpe (selection bias) and the objective family."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autolearn.autotune.objective import OBJECTIVES, ObjectiveParams, make_objective
from autolearn.autotune.selection import deflate, expected_max_sharpe, probabilistic_sharpe
from autolearn.errors import ConfigError


def test_expected_max_sharpe_grows_with_trials() -> None:
    """More trials raise the luck hurdle; one trial has none."""
    assert expected_max_sharpe(1, 0.01) == 0.0
    hurdles = [expected_max_sharpe(n, 0.01) for n in (2, 10, 100, 1000)]
    assert hurdles == sorted(hurdles) and hurdles[0] > 0


def test_expected_max_sharpe_matches_simulated_maxima() -> None:
    """The closed form is close to the mean of simulated maxima of N normal Sharpes."""
    rng = np.random.default_rng(3)
    sd = 0.1
    simulated = rng.normal(0, sd, size=(4000, 50)).max(axis=1).mean()
    assert expected_max_sharpe(50, sd**2) == pytest.approx(simulated, rel=0.05)


def test_best_of_many_noise_trials_is_rarely_accepted() -> None:
    """Picking the best of 50 skill-less trials passes DSR >= 0.95 about 5 % of the time at most,
    while the undeflated PSR (hurdle 0) would pass most of them."""
    rng = np.random.default_rng(11)
    accepted = naive = 0
    reps = 300
    for _ in range(reps):
        trials = rng.normal(0.0, 1.0, size=(50, 200))  # 50 strategies, 200 trades, no edge
        sharpes = trials.mean(axis=1) / trials.std(axis=1, ddof=1)
        best = trials[int(np.argmax(sharpes))]
        result = deflate(best.tolist(), sharpes.tolist(), 50)
        accepted += result.dsr >= 0.95
        naive += probabilistic_sharpe(result.sharpe, 0.0, 200, 0.0, 3.0) >= 0.95
    assert accepted / reps <= 0.1
    assert naive / reps >= 0.5


def test_a_real_edge_survives_deflation() -> None:
    """A strategy with a true per-trade Sharpe of 0.5 over 200 trades keeps a high DSR."""
    rng = np.random.default_rng(5)
    noise = rng.normal(0.0, 1.0, size=(49, 200))
    edge = rng.normal(0.5, 1.0, size=200)
    sharpes = [*(noise.mean(axis=1) / noise.std(axis=1, ddof=1)), edge.mean() / edge.std(ddof=1)]
    assert deflate(edge.tolist(), sharpes, 50).dsr > 0.99


def test_unknown_objective_lists_the_known_ones() -> None:
    """Config names an objective by key; a typo fails listing the registry."""
    with pytest.raises(ConfigError, match="risk_adjusted_expectancy"):
        make_objective("sharpe_typo", ObjectiveParams())


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_too_few_trades_is_nan_not_bad(name: str) -> None:
    """Below min_trades every objective says NaN (insufficient), never a low score."""
    objective = make_objective(name, ObjectiveParams(min_trades=10))
    assert math.isnan(objective.score([5.0, -1.0, 3.0]))


@given(
    pips=st.lists(
        st.floats(-20, 20, allow_nan=False).filter(lambda x: abs(x) > 1e-3),
        min_size=20,
        max_size=80,
    )
)
def test_drawdown_penalty_prefers_the_smoother_path(pips: list[float]) -> None:
    """Same trades, different order: the ordering with the larger drawdown never scores higher."""
    objective = make_objective("risk_adjusted_expectancy", ObjectiveParams(min_trades=20))
    smooth = sorted(pips, reverse=True)  # gains first: the smallest possible drawdown
    rough = sorted(pips)  # losses first: the largest
    a, b = objective.score(smooth), objective.score(rough)
    if math.isfinite(a) and math.isfinite(b):
        assert a >= b - 1e-12
