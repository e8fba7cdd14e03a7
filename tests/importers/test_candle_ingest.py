"""Candles into the store from the command line: ``ingest --candles FILE`` and
``ingest --oanda-candles INSTRUMENT`` (a real local v20 server), plus the spread the loaders read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from autolearn.backtest import load_candles
from autolearn.cli import main
from autolearn.core.timestamps import format_utc
from autolearn.importers.oanda_candles import candles_cursor
from autolearn.ledger import SqlLedger
from autolearn.testing.oanda_v20 import FakeV20Server, v20_candle

DATA = Path(__file__).resolve().parents[1] / "data" / "fx"
T0 = datetime(2025, 1, 6, tzinfo=UTC)
TOKEN = "tok-" + "c4ndl3s" * 5


@pytest.fixture(name="ledger_url")
def fixture_ledger_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A SQLite ledger in tmp_path; the bot root too (no settings leak in from the env)."""
    for name in ("AUTOLEARN_STATE_DIR", "AUTOLEARN_REGISTRY", "OANDA_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUTOLEARN_BOT_ROOT", str(tmp_path))
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("AUTOLEARN_LEDGER_URL", url)
    return url


def _last_json(out: str) -> dict[str, object]:
    line = [x for x in out.strip().splitlines() if x.startswith("{")][-1]
    doc: dict[str, object] = json.loads(line)
    return doc


class TestSpreadFromFiles:
    def test_mt5_points_become_pips_at_the_files_quote_precision(self, tmp_path: Path) -> None:
        """18 points on 5-digit EUR/USD is 1.8 pips, despite a dropped zero and float noise."""
        path = tmp_path / "EURUSD_H1.csv"
        path.write_text(
            "time,open,high,low,close,tick_volume,spread\n"
            "1514851200,1.20088,1.20153,1.20007,1.20135,399,18\n"
            "1514854800,1.2012,1.20145,1.20045,1.20098,1674,12\n"
            "1514858400,1.12345000000000001,1.20145,1.12045,1.12098,10,7\n"
        )
        bars = load_candles(path)
        assert bars.spread_pips is not None
        np.testing.assert_allclose(bars.spread_pips, [1.8, 1.2, 0.7])

    def test_a_negative_spread_is_a_rejected_row(self, tmp_path: Path) -> None:
        """A spread below zero is no quote: the row is reported with its column, the rest load."""
        path = tmp_path / "USDJPY_H1.csv"
        path.write_text(
            "time,open,high,low,close,tick_volume,spread\n"
            "1514851200,112.503,112.663,112.503,112.586,827,21\n"
            "1514854800,112.591,112.779,112.588,112.764,2342,-3\n"
        )
        report = load_candles(path, errors="report", timeframe_s=3600)
        assert len(report.candles) == 1 and report.rejected[0].column == "spread"
        assert report.candles.spread_pips is not None
        np.testing.assert_allclose(report.candles.spread_pips, [2.1])

    def test_an_oanda_body_with_bid_and_ask_has_a_spread_and_mid_only_has_none(
        self, tmp_path: Path
    ) -> None:
        """A saved v20 MBA body gives ask-bid in pips; the same body without bid/ask gives None."""
        bars = [
            {
                **v20_candle(T0 + timedelta(minutes=i), mid=(150, 150.1, 149.9, 150), spread=0.012),
                "complete": True,
            }
            for i in range(3)
        ]
        doc = {"instrument": "USD_JPY", "granularity": "M1", "candles": bars}
        (tmp_path / "mba.json").write_text(json.dumps(doc))
        with_spread = load_candles(tmp_path / "mba.json")
        assert with_spread.spread_pips is not None
        np.testing.assert_allclose(with_spread.spread_pips, [1.2] * 3)
        for bar in bars:
            del bar["bid"], bar["ask"]
        (tmp_path / "mid.json").write_text(json.dumps(doc))
        assert load_candles(tmp_path / "mid.json").spread_pips is None


class TestIngestCandleFile:
    def test_a_file_lands_in_the_store_and_a_rerun_changes_nothing(
        self, ledger_url: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The MT5 H1 file is stored as H1 with its spread; the second run is all unchanged."""
        path = next((DATA / "mt5-tb-logs").glob("*.csv"))
        assert main(["ingest", "--candles", str(path)]) == 0
        first = _last_json(capsys.readouterr().out)
        assert first["granularity"] == "H1" and first["inserted"] == first["bars"]
        assert main(["ingest", "--candles", str(path)]) == 0
        second = _last_json(capsys.readouterr().out)
        assert second["unchanged"] == first["bars"] and second["inserted"] == 0
        with SqlLedger.open(ledger_url) as ledger:
            stored = ledger.candles(str(first["instrument"]), granularity="H1")
        assert len(stored) == first["bars"] and stored.spread_pips is not None

    def test_rejected_rows_are_printed_and_the_good_ones_stored(
        self, ledger_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A bad row is listed with its row and column; it does not stop the import."""
        path = tmp_path / "DAT_ASCII_EURUSD_M1_bad.csv"
        path.write_text(
            "20180702 000000;1.16790;1.16800;1.16780;1.16790;0\n"
            "20180702 000100;1.16790;1.16700;1.16780;1.16790;0\n"
            "20180702 000200;1.16790;1.16800;1.16780;1.16795;0\n"
        )
        assert main(["ingest", "--candles", str(path), "--granularity", "M1"]) == 0
        out = capsys.readouterr().out
        assert "row 2, column high" in out and _last_json(out)["inserted"] == 2

    @pytest.mark.parametrize(
        ("args", "code"),
        [
            (["ingest", "--candles", "missing.csv"], 65),
            (["ingest", "--candles", "{file}", "--granularity", "M3"], 2),
            (["ingest", "--candles", "{file}", "--granularity", "M5"], 65),  # 60 s bars
            (["ingest", "--candles", "{file}", "--oanda-candles", "USD_JPY"], 2),
            (["ingest", "--candles", "{file}", "--since", "2025-01-01T00:00:00Z"], 2),
        ],
    )
    def test_usage_and_input_errors_have_their_exit_codes(
        self, ledger_url: str, args: list[str], code: int
    ) -> None:
        """Missing file 65, unknown granularity 2, mismatching one 65, conflicting options 2."""
        file = str(DATA / "histdata-paskl-fxot" / "DAT_ASCII_EURUSD_M1_201807.part-0001-1500.csv")
        assert main([a.replace("{file}", file) for a in args]) == code


class TestIngestOandaCandles:
    def _server(self) -> FakeV20Server:
        server = FakeV20Server(account_id="001-009-0000000-002", token=TOKEN).start()
        bars = [
            v20_candle(T0 + timedelta(minutes=i), mid=(150, 150.1, 149.9, 150.05), spread=0.009)
            for i in range(6000)
        ]
        server.add_candles("USD_JPY", "M1", bars)
        return server

    def test_pulls_pages_resumes_and_never_prints_the_token(
        self,
        ledger_url: str,
        monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str],
    ) -> None:
        """Two pages stored, cursor at the last complete bar; the rerun asks only after it."""
        monkeypatch.setenv("OANDA_TOKEN", TOKEN)
        server = self._server()
        try:
            args = ["ingest", "--oanda-candles", "usd_jpy", "--granularity", "M1"]
            args += ["--since", "2025-01-06T00:00:00Z", "--oanda-url", server.base_url]
            assert main(args) == 0
            first = _last_json(capfd.readouterr().out)
            assert main(args) == 0
            second = _last_json(capfd.readouterr().out)
            requests = server.requests
        finally:
            server.stop()
        assert (first["inserted"], first["incomplete_skipped"]) == (5999, 1)
        assert second["inserted"] == 0 and requests[-1].query["includeFirst"] == "false"
        with SqlLedger.open(ledger_url) as ledger:
            assert len(ledger.candles("USD_JPY")) == 5999
            cursor = ledger.get_cursor(candles_cursor("USD_JPY", "M1"))
        assert cursor == format_utc(T0 + timedelta(minutes=5998))
        out, err = capfd.readouterr()
        assert TOKEN not in out + err

    def test_without_a_token_it_is_a_config_error(self, ledger_url: str) -> None:
        """No OANDA_TOKEN: exit 78 before any request."""
        assert main(["ingest", "--oanda-candles", "USD_JPY"]) == 78

    def test_a_bad_since_is_a_usage_error(
        self, ledger_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """--since must be a UTC time with an offset: a naive one is refused (exit 2)."""
        monkeypatch.setenv("OANDA_TOKEN", TOKEN)
        assert main(["ingest", "--oanda-candles", "USD_JPY", "--since", "2025-01-06"]) == 2
