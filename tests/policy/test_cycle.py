"""The policy cycle end to end: SQLite ledger, state store, knobs, records, operator unblock."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autolearn.adapters.history import HistoryFile
from autolearn.adapters.state import StateStore
from autolearn.cli import main
from autolearn.core.model import ShadowSignal, Trade
from autolearn.errors import ConfigError
from autolearn.gates.config import load_gates_config
from autolearn.importers.quantrabbit import import_path
from autolearn.ledger.sql import SqlLedger
from autolearn.policy.cycle import operator_unblock, read_states, run_policy
from autolearn.policy.decide import validate_overlay
from autolearn.policy.machine import Status
from autolearn.settings import load_registry

T0 = datetime(2025, 10, 1, tzinfo=UTC)
DATA = Path(__file__).resolve().parents[1] / "data" / "quantrabbit"


@pytest.fixture(name="env")
def fixture_env(tmp_path: Path) -> tuple[SqlLedger, StateStore]:
    """A fresh SQLite ledger and state store in tmp_path."""
    ledger = SqlLedger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    store = StateStore(tmp_path / "state", load_registry(None))
    yield ledger, store
    ledger.close()


def _losing_regime(make_trade: Callable[..., Trade], start: datetime, n: int = 16) -> list[Trade]:
    pattern = [-2.0, -1.5, -2.5, 0.6, -1.8, -2.2, -1.2, 0.4]
    return [
        make_trade(close_at=start + timedelta(minutes=20 * i), pl_pips=pattern[i % 8])
        for i in range(n)
    ]


def _winning_regime(make_trade: Callable[..., Trade], start: datetime, n: int = 12) -> list[Trade]:
    pattern = [1.5, 2.0, -0.4, 1.2, 0.9, 1.8]
    return [
        make_trade(close_at=start + timedelta(minutes=20 * i), pl_pips=pattern[i % 6])
        for i in range(n)
    ]


def _run(ledger: SqlLedger, store: StateStore, now: datetime, **kw: object) -> dict:
    return run_policy(ledger=ledger, store=store, config=load_gates_config(), now=now, **kw)


def test_blocked_in_a_bad_regime_and_unblocked_after_it_turns(
    env: tuple[SqlLedger, StateStore],
    make_trade: Callable[..., Trade],
    make_signal: Callable[..., ShadowSignal],
) -> None:
    """A losing strategy is blocked; shadow wins move it to probation; real wins make it active."""
    ledger, store = env
    ledger.upsert_trades(_losing_regime(make_trade, T0))
    t1 = T0 + timedelta(hours=6)
    rec = _run(ledger, store, t1)
    assert rec["decision"] == "apply"
    values = store.current_values()
    assert values["pockets.micro.allow_new"] is False
    assert store.registry.find("pockets.micro.strategies.MomentumPulse.allow_new") is not None
    assert (
        store.read_effective().values["pockets.micro.strategies.MomentumPulse.allow_new"] is False
    )
    assert read_states(store)["micro/MomentumPulse"].status is Status.BLOCKED

    # Blocked: no trades. The bot records shadow signals; the regime has turned (40 signals,
    # mean +1.6 pips, sd 1.4: a confidence sequence above 0; 8 good ones no longer unblock).
    outcomes = [3.0, 1.0, 2.5, -0.5, 2.0] * 8
    ledger.upsert_shadow_signals(
        [
            make_signal(at=t1 + timedelta(minutes=3 * i), outcome_pips=v)
            for i, v in enumerate(outcomes)
        ]
    )
    t2 = t1 + timedelta(hours=2, minutes=30)  # well before the 12 h expiry
    rec = _run(ledger, store, t2)
    assert {"scope": "micro/MomentumPulse", "from": "blocked", "to": "probation"}.items() <= {
        **next(t for t in rec["transitions"] if t["scope"] == "micro/MomentumPulse")
    }.items()
    eff = store.read_effective().values
    assert "pockets.micro.strategies.MomentumPulse.allow_new" not in eff  # back at the preset
    assert eff["pockets.micro.strategies.MomentumPulse.size_mult"] == 0.5

    # 24 winning trades: the sequential probation test passes no one before 20 trades.
    ledger.upsert_trades(_winning_regime(make_trade, t2 + timedelta(minutes=5), n=24))
    t3 = t2 + timedelta(hours=9)
    rec = _run(ledger, store, t3)
    assert read_states(store)["micro/MomentumPulse"].status is Status.ACTIVE
    assert read_states(store)["micro"].status is Status.ACTIVE
    assert "pockets.micro.strategies.MomentumPulse.size_mult" not in store.read_effective().values
    assert store.current_values()["pockets.micro.allow_new"] is True
    # The old losses are still inside the 14-day lookback but do not re-block: evidence is
    # counted from the state's start (hysteresis), so the next run holds.
    rec = _run(ledger, store, t3 + timedelta(minutes=15))
    assert rec["decision"] == "hold" and rec["transitions"] == []


def test_block_expires_into_probation_without_any_signal(
    env: tuple[SqlLedger, StateStore], make_trade: Callable[..., Trade]
) -> None:
    """With no shadow signals at all, the block still lifts at its end time (never sticky)."""
    ledger, store = env
    ledger.upsert_trades(_losing_regime(make_trade, T0))
    t1 = T0 + timedelta(hours=6)
    _run(ledger, store, t1)
    rec = _run(ledger, store, t1 + timedelta(hours=12))
    assert any(t["code"] == "block_expired" for t in rec["transitions"])
    assert store.current_values()["pockets.micro.allow_new"] is True
    assert store.current_values()["pockets.micro.size_mult"] == 0.5


def test_shadow_mode_records_without_applying(
    env: tuple[SqlLedger, StateStore], make_trade: Callable[..., Trade]
) -> None:
    """--shadow records the proposed diff but changes neither knobs nor policy state."""
    ledger, store = env
    ledger.upsert_trades(_losing_regime(make_trade, T0))
    rec = _run(ledger, store, T0 + timedelta(hours=6), shadow=True)
    assert rec["decision"] == "shadow" and rec["mode"] == "shadow" and rec["applied"] is False
    assert {d["knob"] for d in rec["proposed_diff"]} >= {"pockets.micro.allow_new"}
    assert store.read_effective().values == {}
    assert read_states(store) == {}
    history = store.history.read().records
    assert len(history) == 1 and history[0]["decision"] == "shadow"


def test_frozen_policy_decides_but_applies_nothing(
    env: tuple[SqlLedger, StateStore], make_trade: Callable[..., Trade]
) -> None:
    """The operator kill switch leaves knobs alone and records decision 'frozen'."""
    ledger, store = env
    ledger.upsert_trades(_losing_regime(make_trade, T0))
    store.set_control("policy", {"frozen": True, "reason": "incident 42"})
    rec = _run(ledger, store, T0 + timedelta(hours=6))
    assert rec["decision"] == "frozen" and rec["frozen_reason"] == "incident 42"
    assert store.read_effective().values == {}


def test_one_record_per_run_and_lock_busy(
    env: tuple[SqlLedger, StateStore], make_trade: Callable[..., Trade]
) -> None:
    """Each run appends exactly one history record; a held lock records lock_busy."""
    ledger, store = env
    ledger.upsert_trades(_losing_regime(make_trade, T0))
    _run(ledger, store, T0 + timedelta(hours=6))
    _run(ledger, store, T0 + timedelta(hours=7))
    with store.lock("policy"):
        rec = _run(ledger, store, T0 + timedelta(hours=8))
    assert rec["decision"] == "lock_busy"
    decisions = [r["decision"] for r in store.history.read().records]
    assert decisions == ["apply", "hold", "lock_busy"]


def test_unknown_pockets_are_reported_never_written(
    env: tuple[SqlLedger, StateStore], make_trade: Callable[..., Trade]
) -> None:
    """Trades of an unregistered pocket are listed as skipped and produce no knob."""
    ledger, store = env
    ledger.upsert_trades(
        [
            make_trade(close_at=T0 + timedelta(minutes=i), pl_pips=-3.0, pocket="manual")
            for i in range(20)
        ]
    )
    rec = _run(ledger, store, T0 + timedelta(hours=1))
    assert rec["verdicts"]["skipped"][0]["code"] == "unknown_pocket"
    assert not any("manual" in d["knob"] for d in rec["diff"])


def test_overlay_validation_names_the_known_pockets() -> None:
    """Unknown pockets and keys are errors that list what is allowed."""
    registry = load_registry(None)
    with pytest.raises(ConfigError) as err:
        validate_overlay(
            {
                "pockets.manual.allow_new": False,
                "pockets.micro.bias": 1,
                "exit.lowvol.upper_bound_max_sec": 3.7,
            },
            registry,
        )
    text = str(err.value)
    assert "known: macro, micro, scalp" in text and "allowed: allow_new, size_mult" in text
    assert "not a policy key" in text


def test_operator_unblock_is_recorded_and_sticks(
    env: tuple[SqlLedger, StateStore], make_trade: Callable[..., Trade]
) -> None:
    """`unblock` lifts a block to probation with the operator's reason in the history."""
    ledger, store = env
    ledger.upsert_trades(_losing_regime(make_trade, T0))
    t1 = T0 + timedelta(hours=6)
    _run(ledger, store, t1)
    rec = operator_unblock(
        store=store,
        scope="micro",
        reason="news over, checked by hand",
        now=t1 + timedelta(minutes=1),
        config=load_gates_config(),
    )
    assert rec["decision"] == "operator_unblock" and rec["applied"] is True
    assert store.current_values()["pockets.micro.allow_new"] is True
    assert read_states(store)["micro"].status is Status.PROBATION
    last = store.history.read().records[-1]
    assert last["operator_reason"] == "news over, checked by hand"
    assert store.read_effective().sources["pockets.micro.allow_new"]["writer"] == "operator"
    # The next cycle judges only trades since the unblock, so it does not re-block at once.
    rec = _run(ledger, store, t1 + timedelta(minutes=16))
    assert read_states(store)["micro"].status is Status.PROBATION


def test_operator_unblock_refuses_unknown_pockets_and_empty_reasons(
    env: tuple[SqlLedger, StateStore],
) -> None:
    """An unknown pocket or a blank reason is a ConfigError, nothing is written."""
    _, store = env
    with pytest.raises(ConfigError, match="known: macro, micro, scalp"):
        operator_unblock(
            store=store, scope="manual/X", reason="r", now=T0, config=load_gates_config()
        )
    with pytest.raises(ConfigError, match="--reason"):
        operator_unblock(store=store, scope="micro", reason=" ", now=T0, config=load_gates_config())
    assert store.history.read().records == []


def test_real_quantrabbit_trades_run_through_the_policy(
    env: tuple[SqlLedger, StateStore],
) -> None:
    """The real Oct-2025 trades: every pocket's decision is explained with its numbers."""
    ledger, store = env
    for name in ("trades_home.db", "trades_latest.part-0001-0300.csv"):
        ledger.upsert_trades(import_path(DATA / name).accepted)
    now = ledger.last_close_at() + timedelta(minutes=1)
    rec = _run(ledger, store, now)
    scopes = rec["verdicts"]["scopes"]
    for pocket in ("macro", "micro", "scalp"):
        entry = scopes[pocket]
        trades = ledger.trades(closed_since=now - timedelta(days=14), pocket=pocket)
        assert entry["trades"]["n"] == len(trades)
        assert entry["trades"]["net"] == pytest.approx(sum(t.pl_pips for t in trades), abs=1e-6)
        assert f"n={len(trades)}" in entry["detail"] and entry["code"]
        # Blocked exactly when the interval's upper bound is below zero, as the config says.
        blocked = entry["trades"]["upper"] < 0.0
        assert (entry["status"] == "blocked") == blocked
        assert store.current_values()[f"pockets.{pocket}.allow_new"] is (not blocked)
    # TrendMA made money in its 14 trades (independent sum); it must not be blocked.
    trend = [t for t in ledger.trades(strategy="TrendMA")]
    assert sum(t.pl_pips for t in trend) > 0
    assert scopes["macro/TrendMA"]["status"] == "active"
    json.dumps(rec)  # the record is plain JSON


def test_cli_policy_and_unblock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`policy --shadow` prints one JSON record; `unblock` of an unknown pocket exits 78."""
    ledger_url = f"sqlite:///{tmp_path / 'l.db'}"
    SqlLedger.open(ledger_url).close()
    base = ["--state-dir", str(tmp_path / "s"), "--ledger", ledger_url, "--bot-root", str(tmp_path)]
    assert main([*base, "policy", "--shadow"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(line)["decision"] == "shadow"
    assert main([*base, "unblock", "manual", "--reason", "x"]) == 78
    assert main([*base, "unblock", "micro/MomentumPulse", "--reason", "checked"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["decision"] == "operator_unblock" and out["scope"] == "micro/MomentumPulse"


def test_cli_policy_now_runs_a_shadow_policy_on_historical_trades(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`policy --shadow --now T` reads the 14 days before T (the real Oct-2025 trades); on the
    wall clock it sees none of them; `--now` without `--shadow` exits 65, recording nothing."""
    ledger_url = f"sqlite:///{tmp_path / 'l.db'}"
    with SqlLedger.open(ledger_url) as ledger:
        ledger.upsert_trades(import_path(DATA / "trades_home.db").accepted)
        last = ledger.last_close_at()
    assert last is not None
    state = tmp_path / "s"
    base = ["--state-dir", str(state), "--ledger", ledger_url, "--bot-root", str(tmp_path)]
    at = (last + timedelta(minutes=1)).isoformat()
    assert main([*base, "policy", "--shadow", "--now", at]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec["decision"] == "shadow" and rec["metrics"]["trades"] > 0
    assert rec["verdicts"]["scopes"]["micro"]["trades"]["n"] > 0
    assert main([*base, "policy", "--shadow"]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec["metrics"]["trades"] == 0  # the wall clock's 14 days hold none of them
    assert main([*base, "policy", "--now", at]) == 65
    # every segment (a record of Oct 2025 rotates out of the active file)
    records = HistoryFile(state / "history.jsonl").read().records
    assert len(records) == 2  # the refused live run recorded nothing


def test_cli_knobs_lists_the_wildcard_policy_knobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`knobs --json` and `knobs` list pockets.{pocket}.strategies.*.allow_new/size_mult, the
    patterns every per-strategy knob the policy writes is registered under."""
    base = ["--bot-root", str(tmp_path), "--state-dir", str(tmp_path / "s")]
    assert main([*base, "knobs", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    registry = load_registry(None)
    for pocket in registry.pockets:
        for key in ("allow_new", "size_mult"):
            row = rows[f"pockets.{pocket}.strategies.*.{key}"]
            assert row["owner"] == "policy" and row["pattern"] is True
    assert rows["pockets.micro.allow_new"]["pattern"] is False
    monkeypatch.setenv("COLUMNS", "200")
    assert main([*base, "knobs"]) == 0
    assert "pockets.scalp.strategies.*.size_mult" in capsys.readouterr().out


@pytest.mark.parametrize(
    "lift",
    [
        ["undo", "--last-by", "policy", "--reason", "block was news, checked"],
        ["set", "pockets.micro.allow_new", "true", "--reason", "block was news, checked"],
    ],
)
def test_an_operator_lift_of_a_block_survives_the_next_policy_run(
    tmp_path: Path,
    make_trade: Callable[..., Trade],
    capsys: pytest.CaptureFixture[str],
    lift: list[str],
) -> None:
    """`undo`/`set` of a policy knob go through the policy's state (as `unblock`): the next
    `autolearn policy` keeps the operator's value instead of re-applying the block."""
    ledger_url = f"sqlite:///{tmp_path / 'l.db'}"
    start = datetime.now(UTC) - timedelta(hours=6)
    with SqlLedger.open(ledger_url) as ledger:
        ledger.upsert_trades(_losing_regime(make_trade, start))
    state = tmp_path / "s"
    base = ["--state-dir", str(state), "--ledger", ledger_url, "--bot-root", str(tmp_path)]
    assert main([*base, "policy"]) == 0
    store = StateStore(state, load_registry(None))
    assert store.current_values()["pockets.micro.allow_new"] is False
    capsys.readouterr()
    assert main([*base, *lift]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["policy_scopes"]["micro"] in ("active", "probation")
    assert store.current_values()["pockets.micro.allow_new"] is True
    assert read_states(store)["micro"].status is not Status.BLOCKED
    assert main([*base, "policy"]) == 0
    assert store.current_values()["pockets.micro.allow_new"] is True
    assert read_states(store)["micro"].status is not Status.BLOCKED


def test_a_block_set_by_hand_is_kept_by_the_policy_until_unblocked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`set allow_new false` is a policy block (kept by the next run); `unblock` lifts it."""
    ledger_url = f"sqlite:///{tmp_path / 'l.db'}"
    SqlLedger.open(ledger_url).close()
    state = tmp_path / "s"
    base = ["--state-dir", str(state), "--ledger", ledger_url, "--bot-root", str(tmp_path)]
    store = StateStore(state, load_registry(None))
    assert main([*base, "set", "pockets.micro.allow_new", "false", "--reason", "news"]) == 0
    blocked = read_states(store)["micro"]
    assert blocked.status is Status.BLOCKED and blocked.until is not None
    assert main([*base, "policy"]) == 0
    assert store.current_values()["pockets.micro.allow_new"] is False
    assert main([*base, "unblock", "micro", "--reason", "news over"]) == 0
    assert main([*base, "policy"]) == 0
    assert store.current_values()["pockets.micro.allow_new"] is True
    assert read_states(store)["micro"].status is Status.PROBATION
