"""``examples/bot/``: the example bot runs for a few simulated hours and its ledger checks out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autolearn.adapters.state import StateStore
from autolearn.ledger.sql import SqlLedger
from autolearn.oanda.tags import parse_client_extensions
from autolearn.settings import load_registry

REPO = Path(__file__).resolve().parents[1]
BOT = REPO / "examples" / "bot" / "bot.py"
BLOCK = "pockets.micro.strategies.MomentumPulse.allow_new"


def _run(bot_root: Path, start: str, hours: float) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOLEARN_")}
    done = subprocess.run(
        [sys.executable, str(BOT), "--bot-root", str(bot_root), "--start", start,
         "--hours", str(hours)],
        capture_output=True, text=True, env=env, cwd=bot_root, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def _events(lines: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in lines if e["event"] == name]


def test_example_bot_trades_tags_and_records_what_its_gates_allow(tmp_path: Path) -> None:
    """Six simulated hours: every allowed signal is a tagged order and a ledger trade pinned to
    the version its knobs came from; after a policy block every signal is denied and recorded
    as a shadow signal under the new version."""
    lines = _run(tmp_path, "2018-07-02T06:00:00+00:00", 6)
    signals = {e["order_id"]: e for e in _events(lines, "signal")}
    orders = {e["order_id"]: e for e in _events(lines, "order_sent")}
    assert len(orders) >= 5
    assert all(signals[o]["allowed"] for o in orders)
    first_version = {s["config_version"] for s in signals.values()}
    assert len(first_version) == 1
    for order_id, order in orders.items():
        tags = parse_client_extensions({"id": order_id, "tag": order["tag"]})
        assert (tags.pocket, tags.strategy) == ("micro", "MomentumPulse")
        assert tags.config_version == signals[order_id]["config_version"]
    url = f"sqlite:///{tmp_path / 'logs' / 'autolearn' / 'ledger.db'}"
    with SqlLedger.open(url) as ledger:
        trades = ledger.trades()
    closed = _events(lines, "trade_closed")
    assert len(trades) == len(closed) >= len(orders) - 1  # the last one may still be open
    for trade in trades:
        assert trade.client_order_id in orders
        assert trade.config_version == signals[trade.client_order_id]["config_version"]
        assert trade.entry_at < trade.close_at
    assert _events(lines, "run_finished")[0]["trades"] == len(trades)

    store = StateStore(tmp_path / "logs" / "tuning", load_registry(None))
    applied = store.apply("policy", {BLOCK: False}, datetime(2018, 7, 2, 12, 30, tzinfo=UTC))
    assert applied.applied
    lines = _run(tmp_path, "2018-07-02T13:00:00+00:00", 3)
    denied = _events(lines, "signal")
    assert denied
    assert not _events(lines, "order_sent")
    assert all(not s["allowed"] and s["config_version"] == applied.version_after for s in denied)
    with SqlLedger.open(url) as ledger:
        shadow = ledger.shadow_signals()
        assert ledger.count_trades() == len(trades)
    assert {s.signal_id for s in shadow} == {s["order_id"] for s in denied}
    assert {s.config_version for s in shadow} == {applied.version_after}
    assert applied.version_after not in first_version
