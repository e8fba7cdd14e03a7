"""Proposers (shared contract), sufficiency, config, and the original's 5.1 failure cases."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.adapters.state import StateStore
from autolearn.core.apply_guard import ApplyKind
from autolearn.core.judge import VersionTimeline
from autolearn.core.knobs import Owner
from autolearn.core.model import Side, Trade
from autolearn.core.timestamps import parse_utc
from autolearn.errors import ConfigError
from autolearn.ledger.sql import SqlLedger
from autolearn.settings import load_registry
from autolearn.tuner import (
    PROPOSERS,
    TunerConfig,
    TunerState,
    decide,
    parse_tuner_config,
    run_cycle,
)
from autolearn.tuner.decide import TuneInput, finalize_state
from autolearn.tuner.proposers import max_steps

REGISTRY = load_registry(None)
NOW = datetime(2025, 10, 23, 3, 0, tzinfo=UTC)
CONFIG = TunerConfig()


def _trade(i: int, **kw: object) -> Trade:
    fields: dict[str, object] = {
        "broker_trade_id": f"t{i}",
        "close_tx_id": "c",
        "instrument": "USD_JPY",
        "pocket": "scalp",
        "strategy": "MomentumPulse",
        "side": Side.LONG,
        "units": 100,
        "entry_price": 150.0,
        "close_price": 150.0,
        "entry_at": NOW - timedelta(hours=5, minutes=-i),
        "close_at": NOW - timedelta(hours=5, minutes=-i - 1),
        "pl_pips": 1.0,
        "pl_account": 10.0,
    }
    fields.update(kw)
    return Trade(**fields)  # type: ignore[arg-type]


def _input(trades: list[Trade]) -> TuneInput:
    return TuneInput(
        trades=trades,
        registry=REGISTRY,
        version="v0",
        current=REGISTRY.defaults(),
        recent_changes={},
        writers={},
        state=TunerState(),
        version_values={"v0": {}},
        timeline=VersionTimeline((), "v0"),
        last_close_at=max((t.close_at for t in trades), default=None),
        now=NOW,
    )


@pytest.mark.parametrize("family", sorted(PROPOSERS))
@given(
    pips=st.lists(st.floats(-20, 20, allow_nan=False), min_size=0, max_size=80),
    reasons=st.lists(st.sampled_from(["", "hard_timeout", "hazard_exit", "scratch", "tp_hit"])),
)
@settings(max_examples=40, deadline=None)
def test_proposer_contract(family: str, pips: list[float], reasons: list[str]) -> None:
    """Every proposer: one proposal per knob, within max_step, deterministic."""
    proposer = PROPOSERS[family]
    specs = REGISTRY.families(Owner.TUNER)[family]
    trades = [
        _trade(
            i,
            pocket=pocket,
            pl_pips=p,
            exit_reason=reasons[i % len(reasons)] if reasons else "",
            regime_micro="quiet_low_vol" if i % 2 else "",
        )
        for i, p in enumerate(pips)
        for pocket in ("scalp", "micro")
    ]
    first = proposer.propose(trades, specs, REGISTRY.defaults(), CONFIG)
    assert first == proposer.propose(trades, specs, REGISTRY.defaults(), CONFIG)
    assert [p.knob for p in first.proposals] == [s.name for s in specs]
    for proposal, spec in zip(first.proposals, specs, strict=True):
        assert abs(proposal.steps) <= max_steps(spec)


@given(
    n=st.integers(0, CONFIG.min_trades - 1),
    mean=st.floats(-5, 5),
    pocket=st.sampled_from(["scalp", "micro"]),
)
@settings(max_examples=40, deadline=None)
def test_below_thresholds_no_knob_moves(n: int, mean: float, pocket: str) -> None:
    """Property: with fewer relevant trades than min_trades, no family requests any change."""
    trades = [
        _trade(
            i,
            pocket=pocket,
            pl_pips=mean + (i % 3 - 1),
            exit_reason="hard_timeout",
            regime_micro="quiet_low_vol",
        )
        for i in range(n)
    ]
    decision = decide(_input(trades), CONFIG)
    assert decision.requests == {}
    assert decision.decision in {"freeze", "hold"}


def test_oanda_close_reasons_only_never_move_exit_knobs() -> None:
    """5.1: OANDA close reasons are not exit reasons: signal_missing, and no 3.7/100/0 drift."""
    trades = [
        _trade(i, broker_close_reason="STOP_LOSS_ORDER" if i % 3 else "TAKE_PROFIT_ORDER")
        for i in range(300)
    ]
    decision = decide(_input(trades), CONFIG)
    assert "exit.lowvol:signal_missing:exit_reason" in decision.reasons
    assert not any(k.startswith("exit.") for k in decision.requests)


def test_with_exit_reasons_the_exit_rule_moves_the_current_value() -> None:
    """With the bot's exit reasons a high timeout share moves the *current* value by max_step."""
    trades = [_trade(i, exit_reason="hard_timeout" if i % 2 else "tp_hit") for i in range(300)]
    inp = _input(trades)
    current = {**REGISTRY.defaults(), "exit.lowvol.upper_bound_max_sec": 4.0}
    decision = decide(
        TuneInput(**{**{f: getattr(inp, f) for f in inp.__dataclass_fields__}, "current": current}),
        CONFIG,
    )
    assert decision.requests["exit.lowvol.upper_bound_max_sec"] == 3.8  # 4.0 - max_step 0.2
    assert decision.requests["exit.lowvol.min_grace_before_scratch_ms"] == 110  # no scratches


def test_an_apply_the_store_did_not_adopt_leaves_no_change_in_flight() -> None:
    """An APPLY not applied (guard raced, shadow) stores the state as if nothing was requested."""
    trades = [_trade(i, exit_reason="hard_timeout" if i % 2 else "tp_hit") for i in range(300)]
    inp = _input(trades)
    current = {**REGISTRY.defaults(), "exit.lowvol.upper_bound_max_sec": 4.0}
    inp = TuneInput(
        **{**{f: getattr(inp, f) for f in inp.__dataclass_fields__}, "current": current}
    )
    decision = decide(inp, CONFIG)
    assert decision.kind is ApplyKind.APPLY and decision.family is not None
    assert decision.state.families[decision.family].in_flight is not None  # had it been applied
    state = finalize_state(decision, applied=False, version_after="v0", values_after=current)
    family = state.families[decision.family]
    assert family.in_flight is None and family.changed_at is None and family.streaks == {}
    assert family.lkg_values["exit.lowvol.upper_bound_max_sec"] == 4.0
    # The next run therefore proposes the same change again instead of judging a phantom flight.
    again = decide(replace(inp, state=state), CONFIG)
    assert again.kind is ApplyKind.APPLY and again.requests == decision.requests


def test_pocket_is_never_a_regime() -> None:
    """5.1: micro trades without regime labels freeze the alloc family, however good they are."""
    trades = [_trade(i, pocket="micro", pl_pips=5.0 + i % 2) for i in range(300)]
    decision = decide(_input(trades), CONFIG)
    assert "alloc.micro_share:signal_missing:regime_label" in decision.reasons
    assert "alloc.regime.quiet_low_vol.micro_share" not in decision.requests
    labelled = [
        _trade(i, pocket="micro", pl_pips=5.0 + i % 2, regime_micro="quiet_low_vol")
        for i in range(300)
    ]
    assert decide(_input(labelled), CONFIG).requests.get(
        "alloc.regime.quiet_low_vol.micro_share"
    ) in (None, 0.4)  # may lose to micro.entry under max_in_flight=1, never moves by pocket


def test_mixed_timestamp_formats_run_through_the_cycle(tmp_path: Path) -> None:
    """5.1: T/space, with/without fractions, Z/+00:00 timestamps all count; nothing crashes."""
    stamps = [
        "2025-10-23 01:00:00Z",
        "2025-10-23T01:05:00.123+00:00",
        "2025-10-23T01:10:00.123456789Z",
        "2025-10-23 01:15:00.5+00:00",
        "2025-10-23T10:20:00+09:00",
    ]
    trades = [
        _trade(i, entry_at=parse_utc(s), close_at=parse_utc(s) + timedelta(seconds=30))
        for i, s in enumerate(stamps)
    ]
    ledger = SqlLedger.open(f"sqlite:///{tmp_path / 'l.db'}")
    ledger.upsert_trades(trades)
    store = StateStore(tmp_path / "state", REGISTRY)
    record = run_cycle(store, ledger, CONFIG, NOW, shadow=True)
    ledger.close()
    assert record["metrics"]["window"]["trades"] == len(stamps)
    assert record["intended"] == "freeze"


def test_config_yaml_rejects_unknown_keys_and_bad_values() -> None:
    """A typo or an out-of-range threshold is a ConfigError listing every problem."""
    with pytest.raises(ConfigError) as err:
        parse_tuner_config({"min_trade": 5, "flight": {"judge": {"bandd": 1}}})
    text = str(err.value)
    assert "min_trade: unknown key" in text and "flight.judge.bandd: unknown key" in text
    config = parse_tuner_config(
        {
            "flight": {"cooldown": "2h", "judge": {"mixture_scale": 0.5}},
            "on_fail": "shadow",
            "exit_pockets": ["scalp"],
        }
    )
    assert config.flight.cooldown == timedelta(hours=2)
    assert config.flight.judge.mixture_scale == 0.5
    with pytest.raises(ConfigError):
        parse_tuner_config({"on_fail": "explode"})
