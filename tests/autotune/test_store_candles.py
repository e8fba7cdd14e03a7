"""Autotune on the ledger's candle store: same study as from the file, workers re-read it,
and the command line prefers the store, falls back to a file, or names both ways."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import autolearn.cli._learn  # noqa: F401 - registers the commands (the lead wires it in cli)
from autolearn.adapters.state import StateStore
from autolearn.autotune import AutotuneConfig, run_cycle
from autolearn.autotune.cycle import store_candles
from autolearn.backtest import Candles, load_candles
from autolearn.cli import main
from autolearn.core.timestamps import from_epoch_us
from autolearn.errors import ConfigError
from autolearn.ledger.sql import SqlLedger
from autolearn.settings import load_registry

CANDLES = (
    Path(__file__).parents[1]
    / "data/fx/histdata-paskl-fxot/DAT_ASCII_EURUSD_M1_201807.part-0001-1500.csv"
)
REGISTRY = load_registry(None)
SMALL = AutotuneConfig(
    folds=2,
    embargo_bars=10,
    min_trades=5,
    n_trials=6,
    max_candle_age=timedelta(days=1),
    instrument="EUR_USD",
)


@pytest.fixture(name="bars", scope="module")
def fixture_bars() -> Candles:
    """1,500 real EUR/USD M1 bars (tests/data, see PROVENANCE.md)."""
    return load_candles(CANDLES)


def _now(bars: Candles) -> datetime:
    return from_epoch_us(int(bars.time_us[-1])) + timedelta(hours=1)


def _stored(tmp_path: Path, bars: Candles) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with SqlLedger.open(url) as ledger:
        ledger.upsert_candles(bars)
    return url


def test_the_store_gives_the_same_window_and_study_as_the_file(
    tmp_path: Path, bars: Candles
) -> None:
    """Same bars, same fingerprint: the study name from the store equals the file's."""
    now = _now(bars)
    url = _stored(tmp_path, bars)
    with SqlLedger.open(url) as ledger:
        assert len(store_candles(ledger, SMALL, now)) == len(bars)
        from_store = run_cycle(
            StateStore(tmp_path / "a", REGISTRY),
            ledger,
            SMALL,
            None,
            None,
            now,
            shadow=True,
            ledger_url=url,
        )
        from_file = run_cycle(
            StateStore(tmp_path / "b", REGISTRY),
            ledger,
            SMALL,
            bars,
            CANDLES,
            now,
            shadow=True,
        )
    study = from_store["metrics"]["study"]
    assert study["name"] == from_file["metrics"]["study"]["name"]
    assert study["n_tried"] == 6 and study["bars"] == from_file["metrics"]["study"]["bars"]


def test_worker_processes_re_read_the_window_from_the_ledger(tmp_path: Path, bars: Candles) -> None:
    """Two spawned workers load the window through the ledger URL and finish the study."""
    now = _now(bars)
    url = _stored(tmp_path, bars)
    with SqlLedger.open(url) as ledger:
        record = run_cycle(
            StateStore(tmp_path / "s", REGISTRY),
            ledger,
            SMALL,
            None,
            None,
            now,
            shadow=True,
            ledger_url=url,
            workers=2,
            n_trials=4,
        )
    study = record["metrics"]["study"]
    assert study["workers"]["exit_codes"] == [0, 0] and study["n_tried"] == 4


def test_the_store_without_its_url_cannot_feed_workers(tmp_path: Path, bars: Candles) -> None:
    """Candles from the store but no ledger_url: a ConfigError before any trial."""
    url = _stored(tmp_path, bars)
    with SqlLedger.open(url) as ledger, pytest.raises(ConfigError, match="ledger_url"):
        run_cycle(
            StateStore(tmp_path / "s", REGISTRY),
            ledger,
            SMALL,
            None,
            None,
            _now(bars),
            shadow=True,
        )


def test_an_empty_store_holds_with_stale_candles(tmp_path: Path, bars: Candles) -> None:
    """No bars of the instrument: the run holds (stale_candles), no study is created."""
    url = _stored(tmp_path, bars)
    other = replace(SMALL, instrument="USD_JPY")
    store = StateStore(tmp_path / "s", REGISTRY)
    with SqlLedger.open(url) as ledger:
        record = run_cycle(
            store, ledger, other, None, None, _now(bars), shadow=True, ledger_url=url
        )
    assert record["reasons"][-1] == "stale_candles:newest none"
    assert not (store.root / "autotune" / "optuna.db").exists()


class TestCommandLine:
    def _args(self, tmp_path: Path, *extra: str) -> list[str]:
        config = tmp_path / "autotune.yaml"
        config.write_text(
            "instrument: EUR_USD\nfolds: 2\nembargo_bars: 10\nmin_trades: 5\nmax_candle_age: 1d\n"
        )
        return [
            "--state-dir", str(tmp_path / "state"),
            "--ledger", f"sqlite:///{tmp_path / 'ledger.db'}",
            "--bot-root", str(tmp_path),
            "autotune", "--shadow", "--now", "2018-07-02T23:00:00Z", "--trials", "3",
            "--config", str(config), *extra,
        ]  # fmt: skip

    def test_the_store_is_used_when_no_file_is_given(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """After `ingest --candles`, autotune runs on the store with no --candles at all."""
        monkeypatch.delenv("AUTOLEARN_CANDLES", raising=False)
        ledger = ["--ledger", f"sqlite:///{tmp_path / 'ledger.db'}", "--bot-root", str(tmp_path)]
        assert main([*ledger, "ingest", "--candles", str(CANDLES)]) == 0
        capsys.readouterr()
        assert main(self._args(tmp_path)) == 0
        record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert record["metrics"]["study"]["n_tried"] == 3

    def test_neither_store_nor_file_names_both_ways(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An empty store and no file: exit 65, the message names the ingest and the file ways."""
        monkeypatch.delenv("AUTOLEARN_CANDLES", raising=False)
        assert main(self._args(tmp_path)) == 65
        err = capsys.readouterr().err
        assert "--oanda-candles EUR_USD" in err and "AUTOLEARN_CANDLES" in err
        assert not (tmp_path / "state" / "history.jsonl").exists()

    def test_an_explicit_file_still_wins(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """AUTOLEARN_CANDLES set: the file is read even though the store is empty."""
        monkeypatch.setenv("AUTOLEARN_CANDLES", str(CANDLES))
        assert main(self._args(tmp_path)) == 0
        record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert record["metrics"]["study"]["n_tried"] == 3
