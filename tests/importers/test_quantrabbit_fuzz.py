"""Fuzzed QuantRabbit inputs: counts always add up, clean rows always pass, nothing raises."""

from __future__ import annotations

import csv
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.importers.quantrabbit import import_path
from autolearn.importers.report import ImportReport
from autolearn.ledger import SqlLedger

# The real export's header (tests/data/quantrabbit/trades_latest.part-0001-0300.csv).
CSV_HEADER = [
    "ticket_id",
    "pocket",
    "strategy",
    "units",
    "entry_price",
    "close_price",
    "entry_time",
    "open_time",
    "close_time",
    "pl_pips",
    "realized_pl",
    "close_reason",
    "entry_ts",
    "direction",
    "hold_sec",
    "mfe15",
    "mae15",
    "post_return15",
    "pre_range15",
    "post_range15",
    "result",
]

DB_COLUMNS = [
    "transaction_id",
    "ticket_id",
    "pocket",
    "instrument",
    "units",
    "closed_units",
    "entry_price",
    "close_price",
    "pl_pips",
    "realized_pl",
    "entry_time",
    "open_time",
    "close_time",
    "close_reason",
    "state",
    "strategy",
    "client_order_id",
    "strategy_tag",
    "entry_thesis",
    "macro_regime",
    "micro_regime",
]

_OFFSETS = [UTC, timezone(timedelta(hours=9)), timezone(-timedelta(hours=4, minutes=30))]
_GARBAGE_TEXT = st.sampled_from(
    [
        "",
        " ",
        "nan",
        "inf",
        "-inf",
        "1e999",
        "0",
        "-0",
        "NULL",
        "garbage",
        "2025-10-16 07:20:00",  # naive
        "2025-13-45T99:99:99Z",
        "2025-10-16T07:20:00+25:00",
        '"quoted, with comma"',
        "line\nbreak",
        "１２３",  # full-width digits
        "1e300",  # finite and whole, but no real size
        "9223372036854775808",  # 2**63: beyond 64-bit storage
    ]
) | st.text(max_size=20)


def render_timestamp(moment: datetime, offset: timezone, sep: str, nanos: str) -> str:
    """Render an instant the ways the real files do: T or space, 0/6/9 digits, +hh:mm or Z."""
    local = moment.astimezone(offset)
    text = local.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
    if local.microsecond or nanos:
        text += f".{local.microsecond:06d}{nanos}"
    suffix = local.strftime("%z")
    return text + ("Z" if suffix == "+0000" and sep == "T" else f"{suffix[:3]}:{suffix[3:]}")


@st.composite
def clean_times(draw: st.DrawFn) -> tuple[str, str]:
    entry = draw(
        st.datetimes(
            # Clean means in the past: a future close time is rejected (issue 13).
            min_value=datetime(2020, 1, 1),
            max_value=datetime(2025, 1, 1),
            timezones=st.just(UTC),
        )
    )
    close = entry + draw(st.timedeltas(timedelta(0), timedelta(days=3)))

    def text(moment: datetime) -> str:
        return render_timestamp(
            moment,
            draw(st.sampled_from(_OFFSETS)),
            draw(st.sampled_from(["T", " "])),
            draw(st.sampled_from(["", "000", "999"])),
        )

    return text(entry), text(close)


@st.composite
def clean_values(draw: st.DrawFn) -> dict[str, Any]:
    """Values every importer must accept (ticket ids from a small pool, so duplicates happen)."""
    entry_time, close_time = draw(clean_times())
    units = draw(st.integers(1, 100_000)) * draw(st.sampled_from([1, -1]))
    price = st.floats(min_value=0.5, max_value=500, allow_nan=False)
    money = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
    return {
        "ticket_id": str(draw(st.integers(1, 6))),
        "pocket": draw(st.sampled_from(["macro", "micro", "scalp", "マクロ"])),
        "strategy": draw(st.sampled_from(["TrendMA", "", "BB_RSI"])),
        "units": units,
        "entry_price": draw(price),
        "close_price": draw(price),
        "entry_time": entry_time,
        "close_time": close_time,
        "pl_pips": draw(st.floats(min_value=-1e4, max_value=1e4)),  # within TradeLimits
        "realized_pl": draw(money),
        "close_reason": draw(st.sampled_from(["STOP_LOSS_ORDER", "", "TAKE_PROFIT_ORDER"])),
        "direction": 1 if units > 0 else -1,
    }


@st.composite
def fuzzed_rows(draw: st.DrawFn, columns: list[str]) -> list[tuple[bool, dict[str, Any]]]:
    """Rows as (clean, values); a dirty row has some columns replaced with garbage."""
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        values = draw(clean_values())
        dirty = draw(st.sets(st.sampled_from(columns), max_size=3))
        for column in dirty:
            values[column] = draw(_GARBAGE_TEXT)
        rows.append((not dirty, values))
    return rows


def check_invariants(
    report: ImportReport, rows: list[tuple[bool, dict[str, Any]]], row_ids: list[int]
) -> None:
    """``row_ids[i]`` is how the report locates input row i (CSV line or SQLite rowid)."""
    assert report.rows_read == len(rows)
    assert report.accepted_count + report.rejected_count == len(rows)
    keys = [(t.broker_trade_id, t.close_tx_id) for t in report.accepted]
    assert len(keys) == len(set(keys))
    for t in report.accepted:
        assert t.close_at.utcoffset() == timedelta(0) and t.close_at >= t.entry_at
    # Whatever was accepted can be stored: one odd row must never fail the whole upsert.
    with SqlLedger.open("sqlite:///:memory:") as ledger:
        assert ledger.upsert_trades(report.accepted).inserted == report.accepted_count
    # A clean row is accepted, unless an earlier row already took its key.
    rejected = {r.row: r for r in report.rejected}
    for (clean, _values), row_id in zip(rows, row_ids, strict=True):
        rejection = rejected.get(row_id)
        if clean and rejection is not None:
            assert rejection.reason.startswith("duplicate key"), rejection.describe()


@settings(max_examples=60, deadline=None)
@given(rows=fuzzed_rows(CSV_HEADER))
def test_fuzzed_csv_rows_never_crash_and_always_balance(
    rows: list[tuple[bool, dict[str, Any]]],
) -> None:
    """Garbage, naive times, empty ids, missing prices and duplicates: counts add up, no raise."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trades_latest.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_HEADER)
            for _clean, values in rows:
                writer.writerow([values.get(h, "") for h in CSV_HEADER])
        report = import_path(path)
        # Fields with line breaks span lines: locate each record's end line as csv does.
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            next(reader)
            lines = [reader.line_num for _record in reader]
    check_invariants(report, rows, lines)


_SQL_GARBAGE = (
    st.none()
    | _GARBAGE_TEXT
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.sampled_from([1e300, -(2.0**63), 2.0**70])
    | st.binary(max_size=8)
)


@st.composite
def fuzzed_db_rows(draw: st.DrawFn) -> list[tuple[bool, dict[str, Any]]]:
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        values = draw(clean_values())
        del values["direction"]
        values |= {
            "transaction_id": draw(st.integers(1, 3)),
            "instrument": "USD_JPY",
            "state": draw(st.sampled_from(["CLOSED", "PARTIAL", "closed"])),
            "closed_units": draw(st.sampled_from([None, 0, 5])),
            "entry_thesis": draw(st.sampled_from([None, '{"strategy_tag": "X"}', "{bad"])),
        }
        dirty = draw(st.sets(st.sampled_from(DB_COLUMNS), max_size=3))
        for column in dirty:
            values[column] = draw(_SQL_GARBAGE)
        rows.append((not dirty, values))
    return rows


@settings(max_examples=60, deadline=None)
@given(rows=fuzzed_db_rows())
def test_fuzzed_v3_db_rows_never_crash_and_always_balance(
    rows: list[tuple[bool, dict[str, Any]]],
) -> None:
    """Any SQLite value in any column (NULL, blob, huge ints, text): counts add up, no raise."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trades.db"
        conn = sqlite3.connect(path)
        conn.execute(f"CREATE TABLE trades ({', '.join(DB_COLUMNS)})")  # untyped: keep values
        for _clean, values in rows:
            names = list(values)
            conn.execute(
                f"INSERT INTO trades ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                [values[n] for n in names],
            )
        conn.commit()
        conn.close()
        report = import_path(path)
    check_invariants(report, rows, list(range(1, len(rows) + 1)))


def test_invalid_utf8_stored_as_text_rejects_only_its_row(tmp_path: Path) -> None:
    """A TEXT value that is not UTF-8 rejects its row on that column instead of aborting."""
    path = tmp_path / "trades.db"
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE TABLE trades ({', '.join(DB_COLUMNS)})")
    row = {
        "transaction_id": 1,
        "ticket_id": "1",
        "pocket": "macro",
        "instrument": "USD_JPY",
        "units": 10,
        "entry_price": 150.0,
        "close_price": 150.1,
        "realized_pl": 1.0,
        "entry_time": "2025-10-22T08:00:00+00:00",
        "close_time": "2025-10-22T08:05:00+00:00",
        "state": "CLOSED",
    }
    for ticket in ("1", "2"):
        names = list(row)
        conn.execute(
            f"INSERT INTO trades ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
            [ticket if n == "ticket_id" else row[n] for n in names],
        )
    conn.execute("UPDATE trades SET close_reason = CAST(x'c328ff' AS TEXT) WHERE ticket_id = '2'")
    conn.commit()
    conn.close()
    report = import_path(path)
    assert [t.broker_trade_id for t in report.accepted] == ["1"]
    (rej,) = report.rejected
    assert (rej.row, rej.column) == (2, "close_reason") and "UTF-8" in rej.reason
