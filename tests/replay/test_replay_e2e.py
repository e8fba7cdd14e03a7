"""End to end on a real slice: the closed loop's invariants, determinism, and a clean checkout."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from autolearn.adapters.state import StateStore
from autolearn.backtest import Candles
from autolearn.cli import main
from autolearn.core.knobs import problems_with_value
from autolearn.core.registry import Registry
from autolearn.core.timestamps import parse_utc
from autolearn.ledger.sql import SqlLedger
from autolearn.replay import ReplayConfig, ReplayOutcome, run_replay

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _load(run: ReplayOutcome, registry: Registry) -> tuple[StateStore, list[dict], list]:
    store = StateStore(run.run_dir / "state", registry)
    ledger = SqlLedger.open(f"sqlite:///{run.run_dir / 'ledger.db'}")
    try:
        trades = ledger.trades()
    finally:
        ledger.close()
    return store, store.history.read().records, trades


def test_the_loop_ran(learning_run: ReplayOutcome) -> None:
    """Every mechanism ran at its cadence, trades were written, and the policy acted."""
    s = learning_run.summary
    assert s["cycles"] == {"policy": 384, "scalp_trainer": 32, "tuner": 576}  # 4 days / cadence
    assert s["trades"] > 20
    assert s["counts"]["applies"] >= 1  # the policy blocked a losing pocket in these 4 days
    assert set(s["by_pocket"]) == {"macro", "micro", "scalp"}


def test_every_trade_carries_the_version_in_force_at_entry(
    learning_run: ReplayOutcome, registry: Registry
) -> None:
    """A trade's config_version is the version the history says was effective at its entry."""
    store, records, trades = _load(learning_run, registry)
    changes = sorted(
        (parse_utc(r["at"]), r["version_after"])
        for r in records
        if r.get("applied") and r.get("version_after")
    )
    assert changes, "nothing applied: the invariant would be vacuous"
    for t in trades:
        version = store.base_version()
        for at, after in changes:
            if at <= t.entry_at:
                version = after
        assert t.config_version == version, t
    assert {t.config_version for t in trades} - {store.base_version()}  # some after a change


def test_applied_changes_are_in_the_history_and_within_bounds(
    learning_run: ReplayOutcome, registry: Registry
) -> None:
    """Snapshots and the effective version come from applied records; no knob leaves its bounds."""
    store, records, _ = _load(learning_run, registry)
    applied = [r for r in records if r.get("applied")]
    versions = {r["version_after"] for r in applied}
    snapshots = {p.stem for p in store.snapshots_dir.glob("v*.json")}
    assert snapshots == versions
    effective = store.read_effective()
    assert effective.version == applied[-1]["version_after"]
    for knob, changes in effective.changes.items():
        recorded = [
            (parse_utc(r["at"]), d["after"])
            for r in applied
            for d in r["diff"]
            if d["knob"] == knob
        ]
        assert [(c.at, c.after) for c in changes] == recorded[-len(changes) :]
    for r in applied:
        for d in r["diff"]:
            assert problems_with_value(registry.spec(d["knob"]), d["after"]) == []
    for knob, value in effective.values.items():
        assert problems_with_value(registry.spec(knob), value) == []


def test_ledger_and_state_are_consistent(learning_run: ReplayOutcome, registry: Registry) -> None:
    """Every pinned version has a snapshot; the summary counts what the ledger holds."""
    store, records, trades = _load(learning_run, registry)
    for version in {t.config_version for t in trades}:
        store.read_snapshot(version)  # raises when unknown or corrupt
    assert learning_run.summary["trades"] == len(trades)
    assert learning_run.summary["records"] == len(records)
    assert all(r["run_id"].startswith(f"replay-{r['mechanism']}-") for r in records)
    reasons = {t.exit_reason for t in trades}
    assert reasons and reasons <= {
        "sl",
        "tp",
        "timeout",
        "signal",
        "end",
        "hard_timeout",
        "hazard_exit",
        "scratch",
    }
    warm = parse_utc(learning_run.summary["first_bar"]) + timedelta(days=1, minutes=30)
    late = [t for t in trades if t.entry_at >= warm]  # the regime baseline needs one day
    assert late and all(t.regime_micro and t.regime_macro for t in late)


def test_replay_is_deterministic(
    learning_run: ReplayOutcome, slice_days: Candles, registry: Registry, tmp_path: Path
) -> None:
    """The same candles replayed again give byte-identical files (ledger, history, state)."""
    again = run_replay(slice_days, tmp_path / "again", ReplayConfig(), registry)

    def files(root: Path) -> dict[str, bytes]:
        return {
            p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()
        }

    first, second = files(learning_run.run_dir), files(again.run_dir)
    assert {"ledger.db", "summary.json", "state/history.jsonl", "state/effective.json"} <= set(
        first
    )
    assert sorted(first) == sorted(second)
    assert [k for k in first if first[k] != second[k]] == []
    rows = sqlite3.connect(again.run_dir / "ledger.db").execute("select count(*) from trades")
    assert rows.fetchone()[0] == learning_run.summary["trades"]


def test_static_run_changes_nothing(
    slice_days: Candles, registry: Registry, tmp_path: Path
) -> None:
    """--static: no cycle, no record, every trade on the presets' version."""
    run = run_replay(slice_days, tmp_path / "static", ReplayConfig(mechanisms=()), registry)
    store, records, trades = _load(run, registry)
    assert records == [] and run.summary["cycles"] == {}
    assert {t.config_version for t in trades} == {store.base_version()}


def test_cli_compare_and_report_leave_the_checkout_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`replay --compare` and `report` in a clone print the table and write only ignored files."""
    clone = tmp_path / "clone"
    (clone / "data").mkdir(parents=True)
    shutil.copy(REPO / ".gitignore", clone / ".gitignore")
    shutil.copy(REPO / "examples/data/fx/DAT_ASCII_EURUSD_M1_201807.csv", clone / "data")
    for args in (
        ["init", "-q"],
        ["add", "."],
        ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"],
    ):
        subprocess.run(["git", "-C", str(clone), *args], check=True)
    monkeypatch.chdir(clone)
    candles = "data/DAT_ASCII_EURUSD_M1_201807.csv"
    argv = ["replay", "--candles", candles, "--from", "2018-07-02", "--to", "2018-07-04"]
    assert main([*argv, "--compare", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "learning" in out and "static" in out and "bars/s" in out and "net P/L (USD)" in out
    assert main(["report", "logs/replay"]) == 0
    assert (clone / "logs/replay/report.html").stat().st_size > 1_000_000  # plotly inlined
    summary = json.loads((clone / "logs/replay/learning/summary.json").read_text())
    assert summary["first_bar"].startswith("2018-07-02")
    status = subprocess.run(
        ["git", "-C", str(clone), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert status.stdout == ""
