"""Re-entry gate: cooldowns, price distance modes, JST hours, open-stack caps."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.backtest import load_candles
from autolearn.core.model import Side
from autolearn.errors import ConfigError
from autolearn.gates.aggregates import Aggregates
from autolearn.gates.config import ReentryConfig, ReentryRule, SameDirMode, load_gates_config
from autolearn.gates.model import OpenPosition
from autolearn.gates.reentry import LastClose, evaluate_reentry
from autolearn.testing import make_trade

# Real USD/JPY H1 (tb-logs), 2022-02..06: a 115 -> 136 trend (tests/data/PROVENANCE.md).
TREND = Path(__file__).parents[1] / "data" / "fx" / "mt5-tb-logs" / "USDJPY_H1.part-2022-02-06.csv"

NOW = datetime(2025, 10, 22, 3, 0, tzinfo=UTC)  # 12:00 JST
CFG = ReentryConfig()
RULE = ReentryRule()


def last(pl: float, ago_s: float, price: float = 150.00) -> LastClose:
    return LastClose(
        close_at=NOW - timedelta(seconds=ago_s), close_price=price, pl_pips=pl, instrument="USD_JPY"
    )


def check(
    rule: ReentryRule = RULE,
    *,
    side: Side = Side.LONG,
    price: float = 150.00,
    prev: LastClose | None = None,
    stack=(),
    now: datetime = NOW,
):
    r = evaluate_reentry(
        cfg=CFG, rule=rule, side=side, price=price, now=now, last=prev, stack=stack
    )
    return r.allowed, r.reasons[0].code if r.reasons else ""


def test_no_state_allows() -> None:
    """Without an earlier close of the strategy and side the gate allows (no_state)."""
    assert check() == (True, "no_state")


def test_win_cooldown_then_distance() -> None:
    """After a win: blocked for 60 s, then 'return' mode needs price 1.8 pips below the close."""
    assert check(prev=last(2.0, 30)) == (False, "cooldown")
    assert check(prev=last(2.0, 61)) == (False, "price_distance")
    assert check(prev=last(2.0, 61), price=149.981) == (True, "ok")
    assert check(prev=last(2.0, 61), side=Side.SHORT, price=150.019) == (True, "ok")


def test_loss_cooldown_overridden_by_distance() -> None:
    """After a loss, mode return becomes both and a met distance overrides the 180 s cooldown."""
    assert check(prev=last(-2.0, 100)) == (False, "cooldown")
    assert check(prev=last(-2.0, 100), price=150.02) == (True, "cooldown_override_distance")
    strict = replace(RULE, loss_cooldown_allow_distance=False)
    assert check(strict, prev=last(-2.0, 100), price=150.02) == (False, "cooldown")


def test_follow_mode() -> None:
    """'follow' needs price beyond the last close in the position's direction."""
    rule = replace(RULE, same_dir_mode=SameDirMode.FOLLOW)
    assert check(rule, prev=last(1.0, 100), price=149.97) == (False, "price_distance")
    assert check(rule, prev=last(1.0, 100), price=150.02) == (True, "ok")


def test_jst_hour_lists() -> None:
    """Allow list excludes other JST hours; block list blocks its hours (12:00 JST here)."""
    assert check(replace(RULE, allow_jst_hours=(9, 10))) == (False, "time_filter")
    assert check(replace(RULE, block_jst_hours=(12,))) == (False, "time_block")
    assert check(replace(RULE, allow_jst_hours=(12,), block_jst_hours=(7,))) == (True, "no_state")


def test_empty_strategy_hour_list_inherits_default() -> None:
    """A strategy's empty block_jst_hours inherits the defaults' list (original 803dbc76f)."""
    cfg = load_gates_config(
        None,
        {
            "reentry": {
                "defaults": {"block_jst_hours": [7, 8]},
                "strategies": {"X": {"block_jst_hours": [], "cooldown_win_s": 30}},
            }
        },
    )
    assert cfg.reentry_rule("X").block_jst_hours == (7, 8)
    assert cfg.reentry_rule("X").cooldown_win_s == 30


def test_open_stack_caps_and_override() -> None:
    """Hard cap denies; soft cap is overridden when price beats the average entry enough."""
    pos = [
        OpenPosition(strategy="X", pocket="micro", side=Side.LONG, units=1000, entry_price=150.10)
    ] * 2
    assert check(replace(RULE, max_open_trades_hard=2), stack=pos) == (False, "open_hard_cap")
    soft = replace(RULE, max_open_trades=2, stack_reentry_pips=5.0)
    assert check(soft, stack=pos, price=150.08) == (False, "open_stack")
    assert check(soft, stack=pos, price=150.04) == (True, "stack_override")
    adverse = replace(RULE, max_open_adverse_pips=8.0)
    assert check(adverse, stack=pos, price=150.00) == (False, "open_adverse")


@settings(max_examples=200, deadline=None)
@given(
    st.floats(-5, 5),
    st.floats(0, 600),
    st.floats(149.9, 150.1),
    st.sampled_from(list(Side)),
    st.floats(0, 300),
    st.floats(0, 300),
    st.floats(0, 5),
    st.floats(0, 300),
    st.floats(0, 3),
)
def test_larger_cooldowns_and_distances_never_loosen(
    pl: float,
    ago: float,
    price: float,
    side: Side,
    cw: float,
    cl: float,
    d: float,
    extra_cd: float,
    extra_d: float,
) -> None:
    """Raising either cooldown or the distance never turns a denial into an allow."""
    lax = replace(RULE, cooldown_win_s=cw, cooldown_loss_s=cl, same_dir_reentry_pips=d)
    strict = replace(
        lax,
        cooldown_win_s=cw + extra_cd,
        cooldown_loss_s=cl + extra_cd,
        same_dir_reentry_pips=d + extra_d if d > 0 else 0.0,
    )
    a, _ = check(lax, side=side, price=price, prev=last(pl, ago))
    b, _ = check(strict, side=side, price=price, prev=last(pl, ago))
    assert a or not b


def test_expired_close_no_longer_needs_the_distance() -> None:
    """A win older than same_dir_max_age (4 h) no longer asks for the 1.8-pip pullback."""
    assert check(prev=last(2.0, 4 * 3600 - 1)) == (False, "price_distance")
    assert check(prev=last(2.0, 4 * 3600 + 1)) == (True, "distance_expired")
    pos = [OpenPosition(strategy="X", pocket="micro", side=Side.LONG, units=1, entry_price=150.1)]
    stacked = replace(RULE, max_open_trades_hard=1)
    assert check(stacked, prev=last(2.0, 5 * 3600), stack=pos) == (False, "open_hard_cap")


def test_max_age_must_outlast_every_cooldown() -> None:
    """A max age within a cooldown would switch the distance rule off silently: exit 78."""
    with pytest.raises(ConfigError, match="same_dir_max_age"):
        load_gates_config(None, {"reentry": {"defaults": {"same_dir_max_age": "2m"}}})
    with pytest.raises(ValueError, match="longer than every cooldown"):
        replace(RULE, cooldown_loss_s=4 * 3600.0)


def _entries_over_trend(overrides: dict[str, Any] | None = None) -> dict[Side, list[datetime]]:
    """A probe strategy on real H1 candles: each hour each side enters when the gates allow
    (at the close), holds 4 bars and exits at the close; its trades feed the real aggregates."""
    candles = load_candles(TREND)
    cfg = load_gates_config(None, overrides)
    rule, agg = cfg.reentry_rule("Probe"), Aggregates(cfg)
    open_at: dict[Side, tuple[int, float]] = {}
    entries: dict[Side, list[datetime]] = {Side.LONG: [], Side.SHORT: []}
    for i, (t_us, price) in enumerate(zip(candles.time_us, candles.close, strict=True)):
        now, price = datetime.fromtimestamp(int(t_us) / 1e6, UTC), float(price)
        for side, (j, entry) in list(open_at.items()):
            if i - j >= 4:
                trade = make_trade(
                    close_at=now,
                    pl_pips=(price - entry) * side.sign / 0.01,
                    strategy="Probe",
                    side=side,
                    entry_price=entry,
                    close_price=price,
                    entry_at=now - timedelta(hours=4),
                )
                agg.ingest([trade])
                del open_at[side]
        for side in Side:
            last_close = agg.latest_close("Probe", side)
            verdict = evaluate_reentry(
                cfg=cfg.reentry,
                rule=rule,
                side=side,
                price=price,
                now=now,
                last=last_close,
                stack=(),
            )
            if side not in open_at and verdict.allowed:
                open_at[side] = (i, price)
                entries[side].append(now)
    return entries


def test_no_lockout_over_a_multi_month_trend() -> None:
    """Five real months of a USD/JPY uptrend: both sides keep entering every month, and no side
    waits more than 3 days (a weekend plus the max age). With an unexpiring close (the bug) the
    longs make no entry after 2 February and the shorts wait 26 days in May."""
    months = ["2022-02", "2022-03", "2022-04", "2022-05", "2022-06"]
    for side, times in _entries_over_trend().items():
        per_month = Counter(t.strftime("%Y-%m") for t in times)
        assert all(per_month[m] >= 20 for m in months), (side, per_month)
        longest = max(b - a for a, b in pairwise(times))
        assert longest <= timedelta(days=3), (side, longest)
    stuck = _entries_over_trend({"reentry": {"defaults": {"same_dir_max_age": "3650d"}}})
    assert stuck[Side.LONG][-1] < datetime(2022, 2, 3, tzinfo=UTC)
    shorts = stuck[Side.SHORT]
    assert max(b - a for a, b in pairwise(shorts)) > timedelta(days=20)


@settings(max_examples=200, deadline=None)
@given(
    st.floats(-5, 5),
    st.floats(0, 3 * 86400),
    st.floats(149.9, 150.1),
    st.sampled_from(list(Side)),
    st.floats(0.1, 48),
    st.floats(0, 48),
)
def test_a_longer_max_age_never_loosens(
    pl: float, ago: float, price: float, side: Side, hours: float, extra: float
) -> None:
    """Remembering the last close longer never turns a denial into an allow."""
    short = replace(RULE, same_dir_max_age=timedelta(hours=hours))
    long = replace(RULE, same_dir_max_age=timedelta(hours=hours + extra))
    a, _ = check(short, side=side, price=price, prev=last(pl, ago))
    b, _ = check(long, side=side, price=price, prev=last(pl, ago))
    assert a or not b
