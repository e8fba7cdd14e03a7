"""The ``autolearn tune`` command: real QuantRabbit trades in shadow, lock contention, history."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autolearn.adapters.state import StateStore
from autolearn.cli import main
from autolearn.importers.quantrabbit import import_path
from autolearn.ledger.sql import SqlLedger
from autolearn.settings import load_registry

REAL_DB = Path(__file__).parents[1] / "data" / "quantrabbit" / "trades_home.db"


def _ledger(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = SqlLedger.open(url)
    ledger.upsert_trades(import_path(REAL_DB).accepted)
    ledger.close()
    return url


def _records(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_real_quantrabbit_trades_in_shadow_explain_every_freeze(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real trades (OANDA close reasons only, no regimes, strategy unknown) freeze loudly."""
    url = _ledger(tmp_path)
    state = tmp_path / "state"
    argv = ["--state-dir", str(state), "--ledger", url, "tune", "--shadow"]
    assert main([*argv, "--now", "2025-10-23T03:10:00Z"]) == 0
    (record,) = _records(capsys.readouterr().out)
    assert record["mode"] == "shadow" and record["decision"] == "shadow"
    assert record["intended"] == "freeze" and record["applied"] is False
    reasons = set(record["reasons"])  # type: ignore[arg-type]
    assert "exit.lowvol:signal_missing:exit_reason" in reasons
    assert "alloc.micro_share:signal_missing:regime_label" in reasons
    assert "micro.entry:signal_missing:strategy_outcome" in reasons
    assert "stale_ledger" not in reasons  # the clock was set to just after the last trade
    assert all(k["code"] == "frozen" for k in record["knobs"])  # type: ignore[union-attr]
    store = StateStore(state, load_registry(None))
    assert store.read_effective().values == {}
    assert store.read_mechanism("tuner") == {}  # shadow writes no tuner state
    # Run on today's clock: the stale ledger is named as well.
    assert main(argv) == 0
    (record,) = _records(capsys.readouterr().out)
    assert "stale_ledger" in record["reasons"]  # type: ignore[operator]


def test_now_requires_shadow(tmp_path: Path) -> None:
    """A live run may not pretend another time (exit 65, nothing recorded)."""
    url = _ledger(tmp_path)
    argv = [
        "--state-dir",
        str(tmp_path / "s"),
        "--ledger",
        url,
        "tune",
        "--now",
        "2025-10-23T03:10:00Z",
    ]
    assert main(argv) == 65


def test_concurrent_runs_never_both_apply(tmp_path: Path) -> None:
    """Two real tune processes while the lock is held: both record lock_busy and exit 0."""
    url = _ledger(tmp_path)
    state = tmp_path / "state"
    store = StateStore(state, load_registry(None))
    code = "import sys; from autolearn.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-c", code, "--state-dir", str(state), "--ledger", url, "tune"]
    with store.lock("tuner"):
        procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    decisions = [_records(o)[0]["decision"] for o in outs]
    assert decisions == ["lock_busy", "lock_busy"]
    history = store.history.read().records
    assert [r["decision"] for r in history] == ["lock_busy", "lock_busy"]
    assert not any(r.get("applied") for r in history)
    # With the lock free, one run proceeds normally.
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and _records(done.stdout)[0]["decision"] in {"freeze", "hold"}


def test_history_and_operator_rollback_show_tuner_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`history --since 24h` rebuilds the tuner's changes; `rollback --to` restores a snapshot."""
    from autolearn.tuner import TunerConfig, run_cycle

    registry = load_registry(None)
    store = StateStore(tmp_path / "state", registry)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = SqlLedger.open(url)
    now = datetime.now(UTC).replace(microsecond=0)
    from autolearn.core.model import Side, Trade

    trades = [
        Trade(
            broker_trade_id=f"t{i}",
            close_tx_id="c",
            instrument="USD_JPY",
            pocket="micro",
            strategy="MomentumPulse",
            side=Side.SHORT,
            units=100,
            entry_price=150.0,
            close_price=150.0,
            entry_at=now - timedelta(hours=3, minutes=-i),
            close_at=now - timedelta(hours=3, minutes=-i - 1),
            pl_pips=-1.0 + (0.5 if i % 2 else -0.5),
            pl_account=-10.0,
            config_version=store.read_effective().version,
        )
        for i in range(150)
    ]
    ledger.upsert_trades(trades)
    record = run_cycle(store, ledger, TunerConfig(), now)
    ledger.close()
    assert record["decision"] == "apply" and record["applied"]
    base = record["version_before"]
    assert (
        main(["--state-dir", str(tmp_path / "state"), "history", "--since", "24h", "--json"]) == 0
    )
    rows = _records(capsys.readouterr().out)
    assert [r["decision"] for r in rows] == ["apply"]
    assert rows[0]["diff"] == [
        {"knob": "strategies.MomentumPulse.min_confidence", "before": 0.65, "after": 0.67}
    ]
    assert "micro.entry:apply" in rows[0]["reasons"]  # type: ignore[operator]
    argv = [
        "--state-dir",
        str(tmp_path / "state"),
        "rollback",
        "--to",
        str(base),
        "--reason",
        "test",
    ]
    assert main(argv) == 0
    assert store.read_effective().version == base
    # The tuner sees the operator's rollback and stops judging its change.
    ledger = SqlLedger.open(url)
    after = run_cycle(store, ledger, TunerConfig(), now + timedelta(minutes=10))
    ledger.close()
    assert "micro.entry:in_flight_reverted_externally" in after["reasons"]
    assert after["in_flight"] is None
