"""The operator's story end to end, through the CLI on a temp bot checkout.

``autolearn tune`` / ``autolearn policy`` are being written concurrently, so the runs here are
recorded through the StateStore exactly as a mechanism does (``apply`` with its run record, or
``record`` for a run that changes nothing).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from autolearn.adapters.state import StateStore
from autolearn.core.apply_guard import ApplyKind
from autolearn.core.knobs import Owner
from autolearn.core.model import Side, Trade
from autolearn.core.timestamps import format_utc
from autolearn.ledger.sql import SqlLedger
from autolearn.settings import load_registry

KNOB = "exit.lowvol.hazard_debounce_ticks"


def _trade(close_at: datetime) -> Trade:
    return Trade(
        broker_trade_id="1001",
        close_tx_id="1002",
        instrument="USD_JPY",
        pocket="scalp",
        strategy="M1Scalper",
        side=Side.LONG,
        units=1000,
        entry_price=150.0,
        close_price=150.02,
        entry_at=close_at - timedelta(minutes=3),
        close_at=close_at,
        pl_pips=2.0,
        pl_account=20.0,
        exit_reason="tp_hit",
    )


def _tuner_run(store: StateStore, at: datetime, n: int, **extra: object) -> None:
    store.record(
        {
            "at": format_utc(at),
            "run_id": f"tuner-{n}",
            "mechanism": "tuner",
            "mode": "live",
            "decision": "hold",
            "reasons": ["insufficient_trades"],
            "in_flight": None,
            **extra,
        }
    )


def test_operator_story(cli, bot_env, bot_repo: Path, git_run, tmp_path: Path) -> None:
    """Render, enable, run: OK; the tuner stops: STOPPED (2); a rollback shows with its reason."""
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    store = StateStore(Path(bot_env["AUTOLEARN_STATE_DIR"]), load_registry(None))
    ledger = SqlLedger.open(bot_env["AUTOLEARN_LEDGER_URL"])
    ledger.upsert_trades([_trade(t0 - timedelta(minutes=5))])
    ledger.close()

    units = tmp_path / "units"
    assert cli("systemd", "render", "--out", str(units)).code == 0
    assert (units / "autolearn-tuner.timer").exists()
    assert cli("systemd", "enable", "tuner", "--reason", "go live", "--no-systemctl").code == 0
    # enabling is recorded now (real clock); the runs below happen after it
    enabled_at = datetime.now(UTC)
    t0 = max(t0, enabled_at)

    # two tuner cycles: a hold, then an apply whose change is in flight
    _tuner_run(store, t0, 1)
    store.apply(
        Owner.TUNER,
        {KNOB: 3},
        t0 + timedelta(minutes=10),
        record={
            "run_id": "tuner-2",
            "mechanism": "tuner",
            "mode": "live",
            "decision": "apply",
            "reasons": ["ev_upper<0: tighten"],
            "in_flight": {"family": "exit.lowvol"},
            "verdicts": {"exit.lowvol": {"outcome": "inconclusive", "trades_needed": 40}},
        },
    )
    ok = cli("status", "--json", "--now", format_utc(t0 + timedelta(minutes=12)))
    assert ok.code == 0, ok.out
    report = json.loads(ok.out)
    tuner = next(m for m in report["mechanisms"] if m["mechanism"] == "tuner")
    assert tuner["health"] == "ok"
    assert tuner["last_apply"]["run_id"] == "tuner-2"
    assert tuner["verdicts"] == ["exit.lowvol: inconclusive: ~40 more trades"]
    assert [d["knob"] for d in tuner["changed_knobs"]] == [KNOB]

    # the tuner's timer dies: 25 minutes after its last run is > 2 cadences (20 min)
    stopped = cli("status", "--now", format_utc(t0 + timedelta(minutes=35)))
    assert stopped.code == 2
    assert "STOPPED" in stopped.out

    # the judge fails the change: the tuner rolls back to LKG and says why
    at = t0 + timedelta(minutes=40)
    store.apply(
        Owner.TUNER,
        {KNOB: 2},
        at,
        kind=ApplyKind.ROLLBACK,
        record={
            "run_id": "tuner-3",
            "mechanism": "tuner",
            "mode": "live",
            "decision": "rollback",
            "reasons": ["judge_fail: expectancy -0.8 pips below LKG"],
            "in_flight": None,
        },
    )
    after = cli("status", "--json", "--now", format_utc(at + timedelta(minutes=1)))
    assert after.code == 0, after.out
    tuner = next(m for m in json.loads(after.out)["mechanisms"] if m["mechanism"] == "tuner")
    (rollback,) = tuner["rollbacks_24h"]
    assert rollback["reasons"] == ["judge_fail: expectancy -0.8 pips below LKG"]
    assert rollback["source"] == "history.jsonl run_id=tuner-3"
    assert tuner["changed_knobs"] == []  # back at the preset
    history = cli("history", "--since", "24h", "--json")
    rows = [json.loads(line) for line in history.out.splitlines()]
    assert [r["decision"] for r in rows if r["mechanism"] == "tuner"][-1] == "rollback"
    assert rows[-1]["reasons"] == ["judge_fail: expectancy -0.8 pips below LKG"]
    # and none of this touched the checkout
    assert git_run(bot_repo, "status", "--porcelain") == ""
