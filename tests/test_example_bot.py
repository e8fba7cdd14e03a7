"""``examples/bot/``: the example bot runs for a few simulated hours and its ledger checks out:
trades, pinned versions and the signal log (every evaluated signal, taken or not)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from autolearn.adapters.state import StateStore
from autolearn.core.model import EntrySignal
from autolearn.ledger.sql import SqlLedger
from autolearn.oanda.tags import parse_client_extensions
from autolearn.settings import load_registry
from autolearn.testing.oanda_v20 import FakeV20Server, v20_candle

REPO = Path(__file__).resolve().parents[1]
BOT = REPO / "examples" / "bot" / "bot.py"
BLOCK = "pockets.micro.strategies.MomentumPulse.allow_new"
THRESHOLD = "strategies.MomentumPulse.min_confidence"
START = "2018-07-02T06:00:00+00:00"
TOKEN = "example-bot-token"


def _run(
    bot_root: Path, start: str, hours: float, *, oanda_url: str | None = None
) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOLEARN_", "OANDA_"))}
    args = [sys.executable, str(BOT), "--bot-root", str(bot_root), "--start", start,
            "--hours", str(hours)]  # fmt: skip
    if oanda_url is not None:
        args += ["--oanda-url", oanda_url]
        env["OANDA_TOKEN"] = TOKEN
    bot_root.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=bot_root, check=False)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def _events(lines: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in lines if e["event"] == name]


def _url(bot_root: Path) -> str:
    return f"sqlite:///{bot_root / 'logs' / 'autolearn' / 'ledger.db'}"


def _bot_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_bot", BOT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module while the file runs
    spec.loader.exec_module(module)
    return module


def test_example_bot_logs_every_signal_and_records_what_its_gates_allow(tmp_path: Path) -> None:
    """Six simulated hours: every evaluated signal is in the ledger's signal log with its score,
    unit id, version and reason; every taken one is a tagged order and every trade has its taken
    signal naming it; after a policy block every signal is gate-denied and recorded as a shadow
    signal under the new version without losing its scores."""
    lines = _run(tmp_path, START, 6)
    signals = {e["order_id"]: e for e in _events(lines, "signal")}
    orders = {e["order_id"]: e for e in _events(lines, "order_sent")}
    assert len(orders) >= 5
    assert {o for o, s in signals.items() if s["taken"]} == set(orders)
    reasons = Counter(s["not_taken"] for s in signals.values())
    assert {"threshold", "position_open"} <= set(reasons)  # the window has both
    first_version = {s["config_version"] for s in signals.values()}
    assert len(first_version) == 1
    for order_id, order in orders.items():
        tags = parse_client_extensions({"id": order_id, "tag": order["tag"]})
        assert (tags.pocket, tags.strategy) == ("micro", "MomentumPulse")
        assert tags.config_version == signals[order_id]["config_version"]

    spec = load_registry(None).spec(THRESHOLD)
    with SqlLedger.open(_url(tmp_path)) as ledger:
        trades = ledger.trades()
        logged = {s.signal_id: s for s in ledger.signals()}
    assert set(logged) == set(signals)  # every signal it evaluated, none twice
    for signal_id, row in logged.items():
        said = signals[signal_id]
        assert row.unit_id == signal_id  # the unit it passed to Tuning.arm
        assert (row.taken, row.not_taken) == (said["taken"], said["not_taken"])
        assert row.config_version == said["config_version"]
        assert row.scores == said["scores"]
        assert row.timeout_s is not None and row.sl_pips is not None and row.tp_pips is not None
        confidence = row.scores["confidence"]
        assert spec.lower is not None and confidence >= spec.lower  # candidates at the loosest
        # The knob is at its default (nothing applied yet): "admits: above" decides threshold.
        assert (row.not_taken == "threshold") == (confidence < spec.default)
    closed = _events(lines, "trade_closed")
    assert len(trades) == len(closed) >= len(orders) - 1  # the last one may still be open
    for trade in trades:
        taken = logged[trade.client_order_id]
        assert taken.taken and taken.broker_trade_id == trade.broker_trade_id
        assert trade.config_version == taken.config_version
        assert trade.entry_at == taken.at < trade.close_at
    open_taken = {s.signal_id for s in logged.values() if s.taken} - {
        t.client_order_id for t in trades
    }
    assert len(open_taken) <= 1 and all(logged[s].broker_trade_id for s in open_taken)
    assert _events(lines, "run_finished")[0]["trades"] == len(trades)

    store = StateStore(tmp_path / "logs" / "tuning", load_registry(None))
    applied = store.apply("policy", {BLOCK: False}, datetime(2018, 7, 2, 12, 30, tzinfo=UTC))
    assert applied.applied
    lines = _run(tmp_path, "2018-07-02T13:00:00+00:00", 3)
    later = _events(lines, "signal")
    assert not _events(lines, "order_sent")
    assert all(not s["taken"] and s["config_version"] == applied.version_after for s in later)
    denied = {s["order_id"] for s in later if s["not_taken"].startswith("gate:")}
    assert denied
    with SqlLedger.open(_url(tmp_path)) as ledger:
        shadow = ledger.shadow_signals()
        assert ledger.count_trades() == len(trades)
        relogged: dict[str, EntrySignal] = {s.signal_id: s for s in ledger.signals()}
    assert {s.signal_id for s in shadow} == denied
    assert {s.config_version for s in shadow} == {applied.version_after}
    assert applied.version_after not in first_version
    assert all("confidence" in relogged[s].scores for s in denied)  # not the shadow's copy


def test_example_bot_polling_the_v20_candles_endpoint_trades_as_from_the_file(
    tmp_path: Path,
) -> None:
    """Polled from the local v20 server's candles endpoint (complete bars only, page after the
    last one it has), the bot evaluates and takes exactly the signals it does from the file."""
    bot = _bot_module()
    start = datetime.fromisoformat(START)
    end = start + timedelta(hours=3)
    bars = list(bot.read_bars(bot.CANDLES, start, end + timedelta(minutes=1)))
    with FakeV20Server(account_id="001-001-0000001-001", token=TOKEN) as server:
        server.add_candles(
            "EUR_USD",
            "M1",
            [
                v20_candle(b.at, mid=(b.open, b.high, b.low, b.close), spread=0.0001, decimals=4)
                for b in bars
            ],
        )  # the newest bar (at ``end``) is served incomplete, as while the market is open
        polled = _run(tmp_path / "polled", START, 3, oanda_url=server.base_url)
        requests = server.requests
    from_file = _run(tmp_path / "file", START, 3)
    assert _events(polled, "signal") == _events(from_file, "signal")
    assert _events(polled, "order_sent") == _events(from_file, "order_sent")
    assert _events(polled, "signal")
    assert len(requests) >= 2 and all(r.path.endswith("/EUR_USD/candles") for r in requests)
    assert requests[0].query["includeFirst"] == "true"
    assert all(r.query["includeFirst"] == "false" for r in requests[1:])  # page after the last


@pytest.mark.parametrize("token", ["", None])
def test_example_bot_refuses_to_poll_without_a_token(tmp_path: Path, token: str | None) -> None:
    """``--oanda-url`` without ``OANDA_TOKEN`` stops at once, saying what is missing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOLEARN_", "OANDA_"))}
    if token is not None:
        env["OANDA_TOKEN"] = token
    done = subprocess.run(
        [sys.executable, str(BOT), "--bot-root", str(tmp_path), "--oanda-url", "http://127.0.0.1:9"],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "OANDA_TOKEN" in done.stderr
