"""Every strategy name the ledger can hold is blockable, enforced by the gates, shown by status."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import autolearn.cli._ops  # noqa: F401  registers the ops commands
from autolearn.adapters.state import StateStore
from autolearn.cli import main
from autolearn.core.knob_names import (
    is_strategy_key,
    strategy_from_key,
    strategy_key,
    strategy_knob_prefix,
)
from autolearn.core.model import Side, Trade
from autolearn.gates import Gates
from autolearn.gates.config import load_gates_config
from autolearn.ledger.sql import SqlLedger
from autolearn.policy.cycle import operator_unblock, read_states, run_policy
from autolearn.policy.machine import Status
from autolearn.settings import load_registry

T0 = datetime(2025, 10, 1, tzinfo=UTC)
NAMES = ("Micro-VWAP", "TrendMA-bear", "モメンタム")
_LOSSES = [-2.0, -1.5, -2.5, 0.6, -1.8, -2.2, -1.2, 0.4]


class TestStrategyKey:
    @pytest.mark.parametrize(
        ("name", "key"),
        [
            ("TrendMA", "TrendMA"),
            ("M1Scalper", "M1Scalper"),
            ("BB_RSI_Fast", "BB_RSI_Fast"),
            ("Micro-VWAP", "Micro%2DVWAP"),
            ("a.b/c d", "a%2Eb%2Fc%20d"),
            ("100%", "100%25"),
            ("モ", "%E3%83%A2"),
        ],
    )
    def test_plain_names_keep_their_key_others_are_escaped(self, name: str, key: str) -> None:
        """[A-Za-z0-9_] names are their own key (old state works); the rest is %XX of UTF-8."""
        assert strategy_key(name) == key
        assert strategy_from_key(key) == name

    @given(st.text(min_size=1))
    def test_round_trip_and_one_segment(self, name: str) -> None:
        """Every name has a key that is one dotted segment and decodes back to the name."""
        key = strategy_key(name)
        assert "." not in key and "/" not in key and is_strategy_key(key)
        assert strategy_from_key(key) == name

    @given(st.text(min_size=1), st.text(min_size=1))
    def test_injective(self, a: str, b: str) -> None:
        """Two different names never share a key."""
        assert (strategy_key(a) == strategy_key(b)) == (a == b)

    @pytest.mark.parametrize("key", ["", "%41", "%2d", "a%2", "a.b", "a-b", "%FF"])
    def test_non_canonical_keys_are_refused(self, key: str) -> None:
        """Only the one canonical key of a name decodes (so a name has exactly one knob)."""
        assert not is_strategy_key(key)
        with pytest.raises(ValueError):
            strategy_from_key(key)

    def test_prefix(self) -> None:
        """The policy knob prefix of a strategy uses its key."""
        assert strategy_knob_prefix("micro", None) == "pockets.micro."
        assert (
            strategy_knob_prefix("micro", "Micro-VWAP") == "pockets.micro.strategies.Micro%2DVWAP."
        )


def _trades(make_trade: Callable[..., Trade]) -> list[Trade]:
    """Losing trades for each odd-named strategy; winners of a plain one keep the pockets open."""
    out = []
    for pocket, strategy in [("micro", NAMES[0]), ("macro", NAMES[1]), ("micro", NAMES[2])]:
        out += [
            make_trade(
                close_at=T0 + timedelta(minutes=20 * i), pl_pips=_LOSSES[i % 8],
                pocket=pocket, strategy=strategy,
            )
            for i in range(16)
        ]  # fmt: skip
    for pocket in ("micro", "macro"):
        out += [
            make_trade(
                close_at=T0 + timedelta(minutes=20 * i + 7), pl_pips=6.0,
                pocket=pocket, strategy="Winner",
            )
            for i in range(16)
        ]  # fmt: skip
    return out


@pytest.fixture(name="blocked")
def fixture_blocked(
    tmp_path: Path, make_trade: Callable[..., Trade]
) -> tuple[str, Path, dict[str, object]]:
    """A ledger and state after a live policy run that blocked the three odd-named strategies."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with SqlLedger.open(url) as ledger:
        ledger.upsert_trades(_trades(make_trade))
        store = StateStore(tmp_path / "state", load_registry(None))
        record = run_policy(
            ledger=ledger, store=store, config=load_gates_config(), now=T0 + timedelta(hours=6)
        )
    return url, tmp_path / "state", record


def test_the_policy_writes_a_knob_for_every_name(
    blocked: tuple[str, Path, dict[str, object]],
) -> None:
    """Blocks of Micro-VWAP, TrendMA-bear and a unicode name become knobs, none is skipped."""
    _, state, record = blocked
    store = StateStore(state, load_registry(None))
    assert record["decision"] == "apply"
    assert not [s for s in record["verdicts"]["skipped"] if s["code"] == "strategy_not_registrable"]  # type: ignore[index]
    values = store.read_effective().values
    states = read_states(store)
    assert values["pockets.micro.strategies.Micro%2DVWAP.allow_new"] is False
    assert values["pockets.macro.strategies.TrendMA%2Dbear.allow_new"] is False
    assert values[f"pockets.micro.strategies.{strategy_key('モメンタム')}.allow_new"] is False
    for scope in ("micro/Micro-VWAP", "macro/TrendMA-bear", "micro/モメンタム"):
        assert states[scope].status is Status.BLOCKED
    assert states["micro"].status is Status.ACTIVE and states["macro"].status is Status.ACTIVE


def test_check_entry_denies_the_blocked_names(
    blocked: tuple[str, Path, dict[str, object]],
) -> None:
    """Gates.check_entry denies each blocked name by its policy knob; a plain one still enters."""
    url, state, _ = blocked
    gates = Gates.open(url, state, load_registry(None))
    now = T0 + timedelta(hours=6, minutes=1)
    for pocket, strategy in [("micro", NAMES[0]), ("macro", NAMES[1]), ("micro", NAMES[2])]:
        verdict = gates.check_entry(strategy, pocket, Side.LONG, 150.0, now)
        assert not verdict.allowed and "policy_strategy_blocked" in verdict.blocking_codes
    winner = gates.check_entry("Winner", "micro", Side.LONG, 150.0, now)
    assert "policy_strategy_blocked" not in winner.blocking_codes


def test_status_and_metrics_show_the_blocks_by_name(
    blocked: tuple[str, Path, dict[str, object]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """status --json lists the three blocks by their names; the metrics count and label them."""
    url, state, _ = blocked
    base = ["--state-dir", str(state), "--ledger", url, "--bot-root", str(tmp_path)]
    now = ["--now", "2025-10-01T06:05:00Z"]
    main([*base, "status", "--json", *now])
    report = json.loads(capsys.readouterr().out)
    shown = {(b["pocket"], b["strategy"]) for b in report["blocked"]}
    assert {("micro", NAMES[0]), ("macro", NAMES[1]), ("micro", NAMES[2])} <= shown
    metrics_dir = tmp_path / "metrics"
    assert main([*base, "metrics", "--textfile", str(metrics_dir), *now]) == 0
    text = (metrics_dir / "autolearn.prom").read_text(encoding="utf-8")
    assert f"autolearn_blocked_pockets {len(report['blocked'])}" in text
    for name in NAMES:
        assert f'strategy="{name}"' in text


def test_operator_unblock_of_an_escaped_name(
    blocked: tuple[str, Path, dict[str, object]],
) -> None:
    """`autolearn unblock micro/Micro-VWAP` lifts exactly that strategy's knob."""
    _, state, _ = blocked
    store = StateStore(state, load_registry(None))
    operator_unblock(
        store=store,
        scope="micro/Micro-VWAP",
        reason="checked",
        now=T0 + timedelta(hours=7),
        config=load_gates_config(),
    )
    values = store.read_effective().values
    assert "pockets.micro.strategies.Micro%2DVWAP.allow_new" not in values  # back at the preset
    assert values["pockets.micro.strategies.Micro%2DVWAP.size_mult"] == 0.5
    assert read_states(store)["micro/Micro-VWAP"].status is Status.PROBATION
