"""QuantRabbit importers on the real files (tests/data, examples/data) and on built v3 databases."""

from __future__ import annotations

import csv
import hashlib
import sqlite3
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from autolearn.core.model import Side, TradeState
from autolearn.errors import InputError
from autolearn.importers.quantrabbit import (
    import_path,
    import_trades_csv,
    import_trades_db,
    strategy_from_client_order_id,
)
from autolearn.importers.report import ImportReport, ReportBuilder

DATA = Path(__file__).parents[1] / "data" / "quantrabbit"
EXAMPLES = Path(__file__).parents[2] / "examples" / "data" / "quantrabbit"
HOME_DB = DATA / "trades_home.db"
CSV_SLICE = DATA / "trades_latest.part-0001-0300.csv"
CSV_FULL = EXAMPLES / "trades_latest.csv"

# v3 columns as listed in original-system.md section 2.1.
V3_COLUMNS = {
    "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "transaction_id": "INTEGER",
    "ticket_id": "TEXT",
    "pocket": "TEXT",
    "instrument": "TEXT",
    "units": "INTEGER",
    "closed_units": "INTEGER",
    "entry_price": "REAL",
    "close_price": "REAL",
    "fill_price": "REAL",
    "pl_pips": "REAL",
    "realized_pl": "REAL",
    "commission": "REAL",
    "financing": "REAL",
    "entry_time": "TEXT",
    "open_time": "TEXT",
    "close_time": "TEXT",
    "close_reason": "TEXT",
    "state": "TEXT",
    "updated_at": "TEXT",
    "version": "TEXT",
    "unrealized_pl": "REAL",
    "strategy": "TEXT",
    "client_order_id": "TEXT",
    "strategy_tag": "TEXT",
    "entry_thesis": "TEXT",
    "macro_regime": "TEXT",
    "micro_regime": "TEXT",
}


def v3_row(**overrides: Any) -> dict[str, Any]:
    """A valid v3 row (the documented example trade 11369), with overrides."""
    row: dict[str, Any] = {
        "transaction_id": 11411,
        "ticket_id": "11369",
        "pocket": "macro",
        "instrument": "USD_JPY",
        "units": 2040,
        "entry_price": 152.457,
        "close_price": 152.446,
        "pl_pips": -1.1,
        "realized_pl": -22.44,
        "entry_time": "2025-10-23T02:30:37.368381+00:00",
        "open_time": "2025-10-23T02:30:37.368381+00:00",
        "close_time": "2025-10-23T02:59:03.351566+00:00",
        "close_reason": "MARKET_ORDER_TRADE_CLOSE",
        "state": "CLOSED",
        "version": "v3",
    }
    row.update(overrides)
    return row


def build_v3_db(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write a v3 ``trades`` table holding ``rows`` (unlisted columns NULL)."""
    conn = sqlite3.connect(path)
    cols = ", ".join(f"{name} {kind}" for name, kind in V3_COLUMNS.items())
    conn.execute(f"CREATE TABLE trades ({cols})")
    for row in rows:
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        conn.execute(f"INSERT INTO trades ({names}) VALUES ({marks})", list(row.values()))
    conn.commit()
    conn.close()
    return path


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def assert_balanced(report: ImportReport, rows: int) -> None:
    assert report.rows_read == rows
    assert report.accepted_count + report.rejected_count == rows


class TestRealTradesDb:
    def test_all_315_rows_accepted_with_documented_pockets_and_reasons(self) -> None:
        """trades_home.db yields the 315 trades and the distributions the data README lists."""
        report = import_path(HOME_DB)
        assert report.format_name == "quantrabbit-sqlite-v2"
        assert_balanced(report, 315)
        assert report.rejected == ()
        assert Counter(t.pocket for t in report.accepted) == {
            "macro": 207,
            "micro": 36,
            "scalp": 72,
        }
        assert Counter(t.broker_close_reason for t in report.accepted) == {
            "MARKET_ORDER_TRADE_CLOSE": 235,
            "STOP_LOSS_ORDER": 78,
            "TAKE_PROFIT_ORDER": 2,
        }
        closes = [t.close_at for t in report.accepted]
        # README: closes 2025-10-22T08:27Z to 2025-10-23T02:59Z.
        assert min(closes).strftime("%Y-%m-%dT%H:%M") == "2025-10-22T08:27"
        assert max(closes).strftime("%Y-%m-%dT%H:%M") == "2025-10-23T02:59"

    def test_documented_example_row_maps_field_by_field(self) -> None:
        """Ticket 11369 (original-system.md 2.1) becomes the trade the doc describes."""
        trade = next(t for t in import_path(HOME_DB).accepted if t.broker_trade_id == "11369")
        assert (trade.pocket, trade.instrument, trade.side, trade.units) == (
            "macro",
            "USD_JPY",
            Side.LONG,
            2040,
        )
        assert (trade.entry_price, trade.close_price) == (152.457, 152.446)
        assert trade.pl_pips == pytest.approx(-1.1)
        assert trade.pl_account == -22.44
        assert trade.entry_at == datetime(2025, 10, 23, 2, 30, 37, 368381, tzinfo=UTC)
        assert trade.close_at == datetime(2025, 10, 23, 2, 59, 3, 351566, tzinfo=UTC)
        assert trade.broker_close_reason == "MARKET_ORDER_TRADE_CLOSE"
        assert (trade.strategy, trade.config_version, trade.state) == (
            "unknown",
            "",
            TradeState.CLOSED,
        )

    def test_sides_agree_with_the_pip_convention(self) -> None:
        """Each side reproduces the stored pl_pips: long (close-entry)x100, short the inverse."""
        for t in import_path(HOME_DB).accepted:
            assert t.pl_pips == pytest.approx(t.side.sign * (t.close_price - t.entry_price) * 100)

    def test_import_never_modifies_the_database(self) -> None:
        """The source file is opened read-only: its bytes are identical afterwards."""
        before = hashlib.sha256(HOME_DB.read_bytes()).hexdigest()
        import_trades_db(HOME_DB)
        assert hashlib.sha256(HOME_DB.read_bytes()).hexdigest() == before


class TestRealCsv:
    def test_slice_accepts_exactly_the_rows_with_a_close_time(self) -> None:
        """In the 300-row slice, rows without close_time are rejected on it; the others pass."""
        rows = csv_rows(CSV_SLICE)
        report = import_path(CSV_SLICE)
        assert_balanced(report, len(rows))
        with_close = [r["ticket_id"] for r in rows if r["close_time"].strip()]
        assert [t.broker_trade_id for t in report.accepted] == with_close
        assert {(r.column, r.value) for r in report.rejected} == {("close_time", "")}
        assert "close_time: 263" in report.format()

    def test_row_with_empty_close_reason_and_nanoseconds(self) -> None:
        """Ticket 93577 (empty close_reason, nanosecond space-separated times) imports exactly."""
        trade = next(t for t in import_path(CSV_SLICE).accepted if t.broker_trade_id == "93577")
        assert trade.broker_close_reason == ""
        assert trade.close_at == datetime(2025, 10, 15, 0, 9, 51, 320803, tzinfo=UTC)
        assert (trade.side, trade.units, trade.strategy) == (Side.SHORT, 690, "MicroTrendPullback")
        assert trade.instrument == "USD_JPY"

    def test_full_export_reads_all_1513_rows(self) -> None:
        """The full trades_latest.csv has 1,513 rows (data README), each accepted or rejected."""
        rows = csv_rows(CSV_FULL)
        report = import_trades_csv(CSV_FULL)
        assert_balanced(report, 1513)
        assert report.accepted_count == sum(1 for r in rows if r["close_time"].strip())
        assert Counter(t.strategy for t in report.accepted) == Counter(
            r["strategy"] for r in rows if r["close_time"].strip()
        )


class TestV3Db:
    def test_strategy_sources_in_priority_order(self, tmp_path: Path) -> None:
        """strategy, then strategy_tag, entry_thesis, the client order id, else "unknown"."""
        rows = [
            v3_row(ticket_id="1", strategy="TrendMA", strategy_tag="ignored"),
            v3_row(ticket_id="2", strategy="", strategy_tag="MomentumPulse-long"),
            v3_row(ticket_id="3", entry_thesis='{"strategy_tag": "RangeFader"}'),
            v3_row(ticket_id="4", client_order_id="qr-1761123266218-macro-TrendMAbe"),
            v3_row(ticket_id="5", client_order_id="qr-micro-1761123266218-BB_RSI-x"),
            v3_row(ticket_id="6", client_order_id="manual-order"),
        ]
        report = import_path(build_v3_db(tmp_path / "trades.db", rows))
        assert report.format_name == "quantrabbit-sqlite-v3"
        assert [t.strategy for t in report.accepted] == [
            "TrendMA",
            "MomentumPulse-long",
            "RangeFader",
            "TrendMAbe",
            "BB_RSI-x",
            "unknown",
        ]
        assert report.accepted[3].client_order_id == "qr-1761123266218-macro-TrendMAbe"

    def test_regimes_from_columns_or_entry_thesis(self, tmp_path: Path) -> None:
        """Regime labels come from the columns, else entry_thesis (nested or flat keys)."""
        rows = [
            v3_row(ticket_id="1", macro_regime="Trend", micro_regime="Range"),
            v3_row(
                ticket_id="2", entry_thesis='{"regime": {"macro": "Breakout", "micro": "Mixed"}}'
            ),
            v3_row(
                ticket_id="3", entry_thesis='{"macro_regime": "Event", "micro_regime": "Trend"}'
            ),
            v3_row(ticket_id="4", entry_thesis="{not json"),
        ]
        report = import_path(build_v3_db(tmp_path / "trades.db", rows))
        assert [(t.regime_macro, t.regime_micro) for t in report.accepted] == [
            ("Trend", "Range"),
            ("Breakout", "Mixed"),
            ("Event", "Trend"),
            ("", ""),
        ]
        assert any("entry_thesis" in note for note in report.notes)

    def test_partial_close_uses_closed_units_and_keeps_its_fill_id(self, tmp_path: Path) -> None:
        """A PARTIAL row stores the closed size, the side from the signed units, its own key."""
        rows = [
            v3_row(transaction_id=20, units=-1000, closed_units=400, state="PARTIAL"),
            v3_row(transaction_id=21, units=-1000, closed_units=600, state="CLOSED"),
        ]
        report = import_path(build_v3_db(tmp_path / "trades.db", rows))
        assert [(t.close_tx_id, t.units, t.side, t.state) for t in report.accepted] == [
            ("20", 400, Side.SHORT, TradeState.PARTIAL),
            ("21", 600, Side.SHORT, TradeState.CLOSED),
        ]

    @pytest.mark.parametrize(
        ("overrides", "column", "reason_part"),
        [
            ({"state": "OPEN"}, "state", "CLOSED or PARTIAL"),
            ({"state": None}, "state", "CLOSED or PARTIAL"),
            ({"close_time": None}, "close_time", "empty"),
            ({"close_time": "2025-10-23 02:59:03"}, "close_time", "naive"),
            ({"entry_time": "yesterday", "open_time": None}, "entry_time", "not a timestamp"),
            ({"ticket_id": None}, "ticket_id", "empty"),
            ({"units": 0}, "units", "zero units"),
            ({"units": 1e300}, "units", "64-bit"),
            ({"units": 2.5}, "units", "whole number"),
            ({"entry_price": None}, "entry_price", "empty"),
            ({"close_price": -1.0}, "close_price", "> 0"),
            ({"realized_pl": "n/a"}, "realized_pl", "not a number"),
            ({"state": "PARTIAL", "transaction_id": None}, "transaction_id", "PARTIAL"),
            ({"pocket": b"\xff\xfe"}, "pocket", "UTF-8"),
            ({"close_time": "2025-10-23T02:00:00+00:00"}, "", "before entry_at"),
        ],
    )
    def test_bad_rows_are_rejected_with_where_and_why(
        self, tmp_path: Path, overrides: dict[str, Any], column: str, reason_part: str
    ) -> None:
        """A bad row is rejected naming file, rowid and column; the good row next to it passes."""
        path = build_v3_db(
            tmp_path / "trades.db",
            [v3_row(ticket_id="good"), v3_row(**{"ticket_id": "bad", **overrides})],
        )
        report = import_path(path)
        assert_balanced(report, 2)
        assert [t.broker_trade_id for t in report.accepted] == ["good"]
        (rej,) = report.rejected
        assert (rej.row, rej.column) == (2, column)
        assert reason_part in rej.reason
        assert str(path) in rej.describe() and "row 2" in rej.describe()

    def test_missing_pl_pips_is_computed_from_prices(self, tmp_path: Path) -> None:
        """An empty pl_pips is derived with the instrument's pip size, not left at zero."""
        rows = [
            v3_row(ticket_id="jpy", pl_pips=None, units=-10, entry_price=150.0, close_price=149.9),
            v3_row(
                ticket_id="eur",
                instrument="EUR_USD",
                pl_pips=None,
                units=10,
                entry_price=1.1000,
                close_price=1.1012,
            ),
        ]
        report = import_path(build_v3_db(tmp_path / "trades.db", rows))
        assert [round(t.pl_pips, 6) for t in report.accepted] == [10.0, 12.0]

    def test_missing_table_or_column_is_an_input_error(self, tmp_path: Path) -> None:
        """A file without the trades table or a required column fails naming file and column."""
        empty = tmp_path / "empty.db"
        sqlite3.connect(empty).close()
        with pytest.raises(InputError, match=r"empty\.db.*no 'trades' table"):
            import_trades_db(empty)
        no_close = tmp_path / "no_close.db"
        conn = sqlite3.connect(no_close)
        conn.execute(
            "CREATE TABLE trades (ticket_id TEXT, pocket TEXT, instrument TEXT, units INTEGER,"
            " entry_price REAL, close_price REAL, entry_time TEXT, realized_pl REAL)"
        )
        conn.close()
        with pytest.raises(InputError, match=r"no_close\.db: required column 'close_time'"):
            import_trades_db(no_close)


class TestCsvRows:
    HEADER: ClassVar[list[str]] = [
        *("ticket_id", "pocket", "strategy", "units", "entry_price", "close_price"),
        *("entry_time", "close_time", "pl_pips", "realized_pl", "close_reason", "direction"),
    ]

    def row(self, **overrides: str) -> list[str]:
        values = {
            "ticket_id": "1",
            "pocket": "scalp",
            "strategy": "ScalpMeanRevert",
            "units": "-700",
            "entry_price": "151.06",
            "close_price": "151.03",
            "entry_time": "2025-10-16 07:13:56+00:00",
            "close_time": "2025-10-16 07:20:00.123456789+00:00",
            "pl_pips": "3.0",
            "realized_pl": "21.0",
            "close_reason": "TAKE_PROFIT_ORDER",
            "direction": "-1",
        }
        values.update(overrides)
        return [values[h] for h in self.HEADER]

    def test_duplicate_ticket_keeps_the_first_and_reports_the_second(self, tmp_path: Path) -> None:
        """A repeated key is rejected pointing at the line of its first occurrence."""
        path = write_csv(tmp_path / "t.csv", self.HEADER, [self.row(), self.row(pl_pips="9")])
        report = import_path(path)
        assert [t.pl_pips for t in report.accepted] == [3.0]
        (rej,) = report.rejected
        assert rej.row == 3 and "first seen at row 2" in rej.reason

    def test_direction_must_agree_with_units(self, tmp_path: Path) -> None:
        """A direction that contradicts the units' sign rejects the row on direction."""
        path = write_csv(tmp_path / "t.csv", self.HEADER, [self.row(direction="1")])
        (rej,) = import_path(path).rejected
        assert rej.column == "direction" and "disagrees" in rej.reason

    def test_short_and_long_records_are_rejected(self, tmp_path: Path) -> None:
        """A record with too few or too many fields is rejected, not shifted into other columns."""
        path = write_csv(
            tmp_path / "t.csv",
            self.HEADER,
            [self.row()[:-2], [*self.row(ticket_id="2"), "extra"], self.row(ticket_id="3")],
        )
        report = import_path(path)
        assert [t.broker_trade_id for t in report.accepted] == ["3"]
        assert [r.row for r in report.rejected] == [2, 3]
        assert all("fields but the header has" in r.reason for r in report.rejected)

    def test_naive_close_time_is_rejected_not_guessed(self, tmp_path: Path) -> None:
        """A timestamp without offset is rejected with file, line and column in the report."""
        path = write_csv(
            tmp_path / "t.csv", self.HEADER, [self.row(close_time="2025-10-16 07:20:00")]
        )
        report = import_path(path)
        (rej,) = report.rejected
        assert (rej.row, rej.column) == (2, "close_time")
        assert "naive" in rej.reason
        assert f"{path} row 2 column 'close_time'" in report.format()

    def test_instrument_assumption_is_noted_and_overridable(self, tmp_path: Path) -> None:
        """Without an instrument column the default is stated in the report and can be changed."""
        path = write_csv(tmp_path / "t.csv", self.HEADER, [self.row()])
        assert any("USD_JPY" in note for note in import_path(path).notes)
        report = import_path(path, instrument="EUR_JPY")
        assert report.accepted[0].instrument == "EUR_JPY"

    def test_missing_column_and_unknown_files(self, tmp_path: Path) -> None:
        """A missing required column, an unknown extension or a missing file is an InputError."""
        no_units = [h for h in self.HEADER if h != "units"]
        path = write_csv(tmp_path / "t.csv", no_units, [])
        with pytest.raises(InputError, match=r"t\.csv: required column 'units' is missing"):
            import_path(path)
        with pytest.raises(InputError, match="unknown QuantRabbit file type"):
            import_path(tmp_path / "trades.json")
        with pytest.raises(InputError, match="no such file"):
            import_path(tmp_path / "absent.db")
        (tmp_path / "empty.csv").write_text("")
        with pytest.raises(InputError, match="no header"):
            import_path(tmp_path / "empty.csv")
        (tmp_path / "text.db").write_text("not a database at all" * 100)
        with pytest.raises(InputError, match=r"text\.db"):
            import_path(tmp_path / "text.db")


@pytest.mark.parametrize(
    ("client_order_id", "expected"),
    [
        ("qr-1761123266218-macro-TrendMAbe", "TrendMAbe"),
        ("qr-scalp-1761123266218-M1Scalper", "M1Scalper"),
        ("qr-1761123266218-macro", None),
        ("", None),
    ],
)
def test_strategy_from_client_order_id(client_order_id: str, expected: str | None) -> None:
    """Both documented client-id shapes give the strategy tag; other ids give None."""
    assert strategy_from_client_order_id(client_order_id) == expected


class TestImportReport:
    def test_a_row_without_verdict_is_caught(self) -> None:
        """build() refuses a row count that accepted + rejected do not explain."""
        builder = ReportBuilder(source="f.csv", format_name="x")
        builder.reject(row=2, column="units", value=None, reason="empty")
        with pytest.raises(ValueError, match="rows_read 2 != accepted 0 \\+ rejected 1"):
            builder.build(rows_read=2)

    def test_format_groups_by_column_and_truncates_details(self) -> None:
        """format() shows per-column counts, the first rows in detail and how many are hidden."""
        builder = ReportBuilder(source="f.csv", format_name="quantrabbit-csv")
        for row in range(2, 7):
            builder.reject(row=row, column="close_time", value="", reason="empty")
        builder.reject(row=7, column="", value="", reason="duplicate key")
        text = builder.build(rows_read=6).format(detail_limit=2)
        assert "6 rows read, 0 accepted, 6 rejected" in text
        assert "close_time: 5" in text and "(row): 1" in text
        assert "f.csv row 2 column 'close_time': empty" in text
        assert "... and 4 more rejected rows" in text
