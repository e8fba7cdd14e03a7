"""Perf guard rules: warm-up, fail-fast, hard vs soft, modes, two-sided size, monotonicity."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.core.metrics import summarize
from autolearn.gates.config import FailFast, PerfGuardRules, PerfMode, load_gates_config
from autolearn.gates.perf_guard import WindowStats, evaluate_perf

RULES = PerfGuardRules()


def window(values: list[float], margin: int = 0, sl: int = 0) -> WindowStats:
    return WindowStats(stats=summarize(values), margin_closeouts=margin, sl_losses=sl)


def test_warmup_allows_with_full_size() -> None:
    """Fewer trades than min_trades are allowed at size 1 with a warm-up reason."""
    r = evaluate_perf(RULES, window([-1.0] * 5))
    assert r.allowed and r.size_multiplier == 1.0 and [x.code for x in r.reasons] == ["warmup"]


def test_low_pf_blocks_in_block_mode() -> None:
    """PF below pf_min after warm-up blocks with a soft perf_low reason."""
    values = [1.0] * 6 + [-1.2] * 6  # PF 0.83 < 0.9, win 0.5
    r = evaluate_perf(RULES, window(values))
    assert not r.allowed
    assert [x.code for x in r.reasons if x.blocking] == ["perf_low"]
    assert not r.reasons[0].hard


def test_reduce_mode_shrinks_soft_and_denies_hard() -> None:
    """REDUCE lets a soft failure through at reduce_mult but still denies a hard failure."""
    rules = replace(RULES, mode=PerfMode.REDUCE)
    soft = evaluate_perf(rules, window([1.0] * 6 + [-1.2] * 6))
    assert soft.allowed and soft.size_multiplier == rules.reduce_mult
    hard = evaluate_perf(rules, window([1.0] * 2 + [-2.0] * 10))  # PF 0.1 < hard_pf
    assert not hard.allowed and any(x.code == "failfast" and x.hard for x in hard.reasons)


def test_failfast_is_soft_when_only_one_metric_fails() -> None:
    """Fail-fast with only the win rate failing is soft (allowed in warn mode)."""
    rules = replace(RULES, mode=PerfMode.WARN, failfast=FailFast(win=0.5))
    values = [3.0] * 5 + [-1.0] * 7  # PF 2.14, win 0.42 < 0.5
    r = evaluate_perf(rules, window(values))
    assert r.allowed and any(x.code == "failfast" and not x.hard for x in r.reasons)


def test_margin_closeout_is_hard() -> None:
    """A margin closeout in the window denies in every mode."""
    for mode in PerfMode:
        r = evaluate_perf(replace(RULES, mode=mode), window([1.0] * 20, margin=1))
        assert not r.allowed and r.reasons[0].code == "margin_closeout"


def test_all_flat_pf_is_not_bad_evidence() -> None:
    """All-flat trades (PF NaN) trip no PF rule (the original read PF 0 and blocked)."""
    rules = replace(RULES, win_min=0.0, failfast=FailFast(win=0.0))
    r = evaluate_perf(rules, window([0.0] * 30))
    assert r.allowed and not [x for x in r.reasons if x.blocking]


def test_size_is_two_sided() -> None:
    """Strong results boost up to the cap; weak-but-passing results shrink toward the floor."""
    strong = evaluate_perf(RULES, window([2.0] * 18 + [-1.0] * 4))
    assert strong.size_multiplier == pytest.approx(1.15)
    weak = evaluate_perf(replace(RULES, pf_min=0.5, win_min=0.3), window([1.0] * 9 + [-1.0] * 11))
    assert weak.allowed and weak.size_multiplier == pytest.approx(0.8)


def test_per_pocket_and_strategy_thresholds() -> None:
    """Strategy overrides win over pocket overrides, which win over the section."""
    cfg = load_gates_config(
        None,
        {
            "perf_guard": {
                "pockets": {"micro": {"pf_min": 1.1}},
                "strategies": {"X": {"pf_min": 1.3}},
            }
        },
    )
    assert cfg.perf_rules("micro", "Y").pf_min == 1.1
    assert cfg.perf_rules("micro", "X").pf_min == 1.3
    assert cfg.perf_rules("macro", "Y").pf_min == 0.9
    assert cfg.perf_rules("scalp", "Y").sl_loss_rate_max == 0.65


def test_hour_slice_blocks_a_bad_hour() -> None:
    """With hourly on, a losing hour slice blocks even when the whole window passes."""
    rules = replace(RULES, hourly=True)
    r = evaluate_perf(rules, window([1.0] * 30), hour=window([-1.0] * 12 + [1.0] * 2))
    assert not r.allowed and [x.code for x in r.reasons if x.blocking] == ["perf_low_hour"]


pl = st.lists(st.floats(-10, 10, allow_nan=False), min_size=0, max_size=40)
modes = st.sampled_from(list(PerfMode))


def _rank(r) -> tuple[int, float]:
    return (0 if r.allowed else 1, -r.size_multiplier)


@settings(max_examples=200, deadline=None)
@given(pl, st.data(), modes)
def test_worse_outcome_never_loosens(
    values: list[float], data: st.DataObject, mode: PerfMode
) -> None:
    """Making any one trade worse never turns a denial into an allow nor raises the size."""
    if not values:
        return
    i = data.draw(st.integers(0, len(values) - 1))
    worse = list(values)
    worse[i] -= data.draw(st.floats(0, 10))
    sl = data.draw(st.integers(0, 2))
    rules = replace(
        RULES, mode=mode, sl_loss_rate_max=0.3, sl_loss_min_trades=5, expectancy_min=-0.5
    )
    a = evaluate_perf(rules, window(values, sl=min(sl, sum(v < 0 for v in values))))
    b = evaluate_perf(rules, window(worse, sl=min(sl, sum(v < 0 for v in values))))
    assert _rank(b) >= _rank(a)


@settings(max_examples=200, deadline=None)
@given(pl, st.floats(0.5, 1.5), st.floats(0, 0.5), st.floats(0.3, 0.6), st.floats(0, 0.2), modes)
def test_stricter_thresholds_never_loosen(
    values: list[float], pf_min: float, d_pf: float, win_min: float, d_win: float, mode: PerfMode
) -> None:
    """Raising pf_min / win_min never turns a denial into an allow."""
    lax = replace(RULES, mode=mode, pf_min=pf_min, win_min=win_min)
    strict = replace(lax, pf_min=pf_min + d_pf, win_min=win_min + d_win)
    a, b = evaluate_perf(lax, window(values)), evaluate_perf(strict, window(values))
    assert _rank(b) >= _rank(a)
