"""The ``scalp-train`` and ``autotune`` commands: one JSON record on stdout, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import autolearn.cli._learn  # noqa: F401 - registers the commands (the lead wires it in cli)
from autolearn.cli import main

CANDLES = (
    Path(__file__).parents[1]
    / "data/fx/histdata-paskl-fxot/DAT_ASCII_EURUSD_M1_201807.part-0001-1500.csv"
)


def _env(tmp_path: Path) -> list[str]:
    return [
        "--state-dir",
        str(tmp_path / "state"),
        "--ledger",
        f"sqlite:///{tmp_path / 'ledger.db'}",
        "--bot-root",
        str(tmp_path),
    ]


def test_autotune_shadow_run_prints_its_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A shadow run on an old candle file (--now) searches, records and prints one record."""
    code = main(
        [
            *_env(tmp_path),
            "autotune",
            "--shadow",
            "--now",
            "2018-07-02T23:00:00Z",
            "--candles",
            str(CANDLES),
            "--trials",
            "4",
        ]
    )
    assert code == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["mechanism"] == "autotune" and record["mode"] == "shadow"
    assert record["metrics"]["study"]["n_tried"] == 4
    assert (tmp_path / "state" / "autotune" / "optuna.db").exists()


def test_autotune_without_candles_is_an_input_error(tmp_path: Path) -> None:
    """No candle file anywhere: exit 65 with the fix in the message, nothing recorded."""
    assert main([*_env(tmp_path), "autotune"]) == 65
    assert not (tmp_path / "state" / "history.jsonl").exists()


def test_now_is_refused_for_a_live_run(tmp_path: Path) -> None:
    """--now without --shadow is an input error (a live run uses the clock)."""
    assert main([*_env(tmp_path), "scalp-train", "--now", "2025-01-01T00:00:00Z"]) == 65


def test_scalp_train_on_an_empty_ledger_freezes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no M1Scalper trades the trainer freezes with its reasons and exits 0."""
    assert main([*_env(tmp_path), "scalp-train"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["decision"] == "freeze"
    assert {"stale_ledger", "min_trades"} <= set(record["reasons"])
