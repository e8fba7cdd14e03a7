"""The operator's story end to end, through the real CLI on a temp bot checkout.

A ledger of generated losing ``micro`` trades; ``autolearn tune`` and ``autolearn policy`` run
for real (live, on the clock); ``status --now`` moves the clock to show a healthy system, then a
stopped tuner (exit 2); the operator rolls the tuner's change back and ``status`` and
``history --since 24h`` show it with its reason; the tuner's next run sees the revert.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from autolearn.adapters.state import StateStore
from autolearn.core.timestamps import format_utc, parse_utc
from autolearn.ledger.sql import SqlLedger
from autolearn.settings import load_registry
from autolearn.testing import make_trade

KNOB = "strategies.MomentumPulse.min_confidence"
REASON = "operator: judge too slow, spread spike distorts the sample"


def _record(out: str) -> dict[str, Any]:
    (line,) = [x for x in out.splitlines() if x.startswith("{")]
    doc: dict[str, Any] = json.loads(line)
    return doc


def _mechanism(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in report["mechanisms"] if m["mechanism"] == name)


def test_operator_story(cli, bot_env, bot_repo: Path, git_run, tmp_path: Path) -> None:
    """Tune and policy run: OK; the tuner stops: STOPPED (2); a rollback shows with its reason."""
    now = datetime.now(UTC).replace(microsecond=0)
    base = StateStore(Path(bot_env["AUTOLEARN_STATE_DIR"]), load_registry(None)).base_version()
    # 150 micro trades losing ~1 pip each over the last 3 hours, pinned to the base version
    trades = [
        make_trade(
            close_at=now - timedelta(hours=3) + timedelta(minutes=i + 1),
            pl_pips=-1.0 + (0.5 if i % 2 else -0.5),
            side="short",
            config_version=base,
        )
        for i in range(150)
    ]
    ledger = SqlLedger.open(bot_env["AUTOLEARN_LEDGER_URL"])
    ledger.upsert_trades(trades)
    ledger.close()

    units = tmp_path / "units"
    assert cli("systemd", "render", "--out", str(units)).code == 0
    assert (units / "autolearn-tuner.timer").exists()
    for mechanism in ("tuner", "policy"):
        enable = cli("systemd", "enable", mechanism, "--reason", "go live", "--no-systemctl")
        assert enable.code == 0, enable.err

    tune = cli("tune")
    assert tune.code == 0, tune.err
    applied = _record(tune.out)
    assert applied["decision"] == "apply" and applied["applied"] is True
    assert [d["knob"] for d in applied["diff"]] == [KNOB]
    policy = cli("policy")
    assert policy.code == 0, policy.err
    assert _record(policy.out)["mechanism"] == "policy"
    t0 = parse_utc(applied["at"])

    ok = cli("status", "--json", "--now", format_utc(t0 + timedelta(minutes=12)))
    assert ok.code == 0, ok.out
    report = json.loads(ok.out)
    tuner = _mechanism(report, "tuner")
    assert tuner["health"] == "ok" and _mechanism(report, "policy")["health"] == "ok"
    assert tuner["last_apply"]["run_id"] == applied["run_id"]
    assert tuner["in_flight"] is not None and "micro.entry" in tuner["in_flight"]
    assert [d["knob"] for d in tuner["changed_knobs"]] == [KNOB]
    assert report["reconcile"]["state"] == "not_configured"  # no OANDA here: not degraded

    # the tuner's timer dies: 35 minutes after its last run is > 2 cadences (20 min)
    stopped = cli("status", "--now", format_utc(t0 + timedelta(minutes=35)))
    assert stopped.code == 2
    assert "STOPPED" in stopped.out

    # the operator undoes the tuner's change, with a reason
    back = cli("rollback", "--to", applied["version_before"], "--reason", REASON)
    assert back.code == 0, back.err
    after = cli("status", "--json", "--now", format_utc(datetime.now(UTC) + timedelta(minutes=1)))
    report = json.loads(after.out)
    (rollback,) = report["operator_rollbacks_24h"]
    assert rollback["reasons"] == [f"operator: {REASON}"]
    assert rollback["source"].startswith("history.jsonl run_id=")
    assert _mechanism(report, "tuner")["changed_knobs"] == []  # back at the preset
    history = cli("history", "--since", "24h", "--json")
    rows = [json.loads(line) for line in history.out.splitlines()]
    assert rows[-1]["decision"] == "rollback" and rows[-1]["reasons"] == [f"operator: {REASON}"]
    assert rows[-1]["version_after"] == applied["version_before"]

    # the tuner's next run sees its change reverted and stops judging it
    again = _record(cli("tune").out)
    assert "micro.entry:in_flight_reverted_externally" in again["reasons"]
    assert again["in_flight"] is None
    # and none of this touched the checkout
    assert git_run(bot_repo, "status", "--porcelain") == ""
