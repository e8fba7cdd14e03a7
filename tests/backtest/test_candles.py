"""Candle loading: every real format, its clock, de-duplication and bad-row reporting.

Expected UTC times come from the source clocks worked out by hand (and, for the DST rules, from
the IANA database through ``zoneinfo``), never from the loader's own output.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.backtest import CandleFormat, Candles, load_candles
from autolearn.backtest._clock import mt5_eet_to_utc, new_york_to_utc
from autolearn.backtest.candles import HISTDATA_EST_OFFSET_H
from autolearn.core.timestamps import to_epoch_us
from autolearn.errors import InputError

FX = Path(__file__).parent.parent / "data" / "fx"
HISTDATA = FX / "histdata-paskl-fxot" / "DAT_ASCII_EURUSD_M1_201807.part-0001-1500.csv"
HADI = FX / "mt5-hadiforoughi" / "EURUSD_M1.part-0001-1200.csv"
HADI_CONVERTED = FX / "mt5-hadiforoughi" / "EURUSD_M1.converted.part-0001-1200.csv"
HADI_M5_DUPS = FX / "mt5-hadiforoughi" / "EURUSD_M5.converted.part-33399-33639.csv"
TB_DST = FX / "mt5-tb-logs" / "EURUSD_H1.part-dst-2018.csv"
TB_XCHECK = FX / "mt5-tb-logs" / "EURUSD_H1.part-xcheck.csv"
BT = FX / "backtesting-py" / "EURUSD.csv"
FACTOR = FX / "quantrabbit" / "factor_cache.json"


def _us(*args: int) -> int:
    return to_epoch_us(datetime(*args, tzinfo=UTC))


def test_histdata_is_new_york_time_by_default() -> None:
    """HistData 2018-07-01 17:00 (New York, EDT) is 21:00 UTC; as fixed EST it would be 22:00."""
    candles = load_candles(HISTDATA)
    assert (candles.instrument, candles.timeframe_s, len(candles)) == ("EUR_USD", 60, 1500)
    assert candles.time_us[0] == _us(2018, 7, 1, 21)
    assert candles.open[0] == 1.1676 and candles.close[0] == 1.16827
    est = load_candles(HISTDATA, histdata_utc_offset_h=HISTDATA_EST_OFFSET_H)
    assert est.time_us[0] == _us(2018, 7, 1, 22)


def _hourly_close_gap_pips(minutes: Candles, hours: Candles) -> float:
    """Median |close difference| of the same UTC hour in an M1 source and an H1 source."""
    hour = minutes.time_us // 3_600_000_000
    last = np.r_[np.flatnonzero(np.diff(hour)), len(hour) - 1]  # last minute of each hour
    common, a, b = np.intersect1d(hour[last], hours.time_us // 3_600_000_000, return_indices=True)
    assert len(common) >= 4
    return float(np.median(np.abs(minutes.close[last][a] - hours.close[b])) / 1e-4)


def test_default_clocks_line_up_with_an_independent_broker_feed() -> None:
    """HistData and hadiforoughi closes match the tb-logs H1 closes of the same UTC hour.

    Different brokers' closes of the same hour agree within a few tenths of a pip; a clock off
    by an hour (HistData read as fixed EST) or half an hour (hadiforoughi read as the README's
    UTC-4) is more than a pip off.
    """
    tb = load_candles(TB_XCHECK)
    assert _hourly_close_gap_pips(load_candles(HISTDATA), tb) < 0.5
    assert _hourly_close_gap_pips(load_candles(HISTDATA, histdata_utc_offset_h=-5.0), tb) > 1.0
    assert _hourly_close_gap_pips(load_candles(HADI, clock="utc-3:30"), tb) < 0.5
    assert _hourly_close_gap_pips(load_candles(HADI, mt5_utc_offset_h=-4.0), tb) > 1.0


def test_mt5_quoted_original_and_converted_copy_load_identically() -> None:
    """The quoted/tab/CRLF original and its .converted.csv give the same candles."""
    original = load_candles(HADI, errors="report", clock="utc-3:30")
    converted = load_candles(HADI_CONVERTED, clock="utc-3:30")
    assert original.fmt is CandleFormat.MT5_QUOTED
    assert original.rejected == ()
    for name in ("time_us", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(original.candles, name), getattr(converted, name))
    # "2022-01-04 18:00:00" on a UTC-3:30 clock
    assert converted.time_us[0] == _us(2022, 1, 4, 21, 30)
    assert converted.volume[0] == 24.0


def test_exact_duplicates_are_dropped_and_order_restored() -> None:
    """The M5 block repeated out of order (real defect) loads once, sorted."""
    lines = HADI_M5_DUPS.read_text().splitlines()[1:]
    report = load_candles(HADI_M5_DUPS, errors="report", clock="utc-3:30")
    candles = report.candles
    assert len(candles) == len({line.split(",")[0] for line in lines})
    assert report.duplicates_dropped == len(lines) - len(candles) > 0
    expected = sorted(
        to_epoch_us(datetime.fromisoformat(t).replace(tzinfo=UTC) + timedelta(hours=3, minutes=30))
        for t in {line.split(",")[0] for line in lines}
    )
    assert candles.time_us.tolist() == expected
    assert candles.timeframe_s == 300


def test_tb_logs_server_clock_follows_eu_dst() -> None:
    """Server Monday 00:00 is Sunday 22:00 UTC in winter and 21:00 UTC in EU summer time."""
    candles = load_candles(TB_DST)
    times = set(candles.time_us.tolist())
    assert _us(2018, 3, 25, 21) in times  # Monday 2018-03-26 00:00 server, after the EU switch
    assert _us(2018, 3, 23, 20) in times  # Friday 2018-03-23 22:00 server (last bar), UTC+2
    assert _us(2018, 10, 28, 22) in times  # Monday 2018-10-29 00:00 server, winter again
    assert _us(2018, 11, 4, 22) in times
    gaps = np.diff(candles.time_us)
    assert set(gaps[gaps < 6 * 3_600_000_000].tolist()) == {3_600_000_000}  # no doubled hour


@pytest.mark.parametrize(
    ("wall", "utc_hour"),
    [
        (datetime(2005, 3, 20, 12), 17),  # 2007 rule: EDT from 13 March; in 2005 still EST
        (datetime(2005, 4, 3, 12), 16),  # 2005: EDT from the first Sunday of April
        (datetime(2005, 10, 30, 12), 17),  # 2005: EST from the last Sunday of October
        (datetime(2005, 11, 1, 12), 17),  # 2007 rule: EDT until 6 November
        (datetime(2018, 3, 20, 12), 16),  # since 2007: EDT from the second Sunday of March
    ],
)
def test_new_york_dst_follows_the_rule_of_its_year(wall: datetime, utc_hour: int) -> None:
    """New York wall time in 2005 (before the 2007 US rule change) converts with 2005's DST."""
    local = np.array([to_epoch_us(wall.replace(tzinfo=UTC))], dtype=np.int64)
    assert new_york_to_utc(local)[0] == to_epoch_us(wall.replace(hour=utc_hour, tzinfo=UTC))


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1997, 1, 1), max_value=datetime(2035, 12, 31)))
def test_clock_conversions_agree_with_the_iana_database(moment: datetime) -> None:
    """Reading a UTC instant's wall time back (EET and New York) returns the instant (EET's EU
    rule holds since 1996; New York's dates come from the database, before 2007 too)."""
    utc = moment.replace(microsecond=0, tzinfo=UTC)
    for zone, convert in (
        ("Europe/Helsinki", mt5_eet_to_utc),
        ("America/New_York", new_york_to_utc),
    ):
        wall = utc.astimezone(ZoneInfo(zone)).replace(tzinfo=UTC)  # wall clock read as if UTC
        back = convert(np.array([to_epoch_us(wall)], dtype=np.int64))[0]
        repeated = utc.astimezone(ZoneInfo(zone)).fold == 1  # 2nd pass of the autumn hour
        assert back == to_epoch_us(utc) - (3_600_000_000 if repeated else 0)


def test_backtesting_py_csv_is_utc() -> None:
    """The unnamed-index CSV is read as UTC, hourly."""
    candles = load_candles(BT)
    assert (len(candles), candles.timeframe_s) == (5000, 3600)
    assert candles.time_us[0] == _us(2017, 4, 19, 9)


def _oanda_doc(complete_last: bool, unix: bool = False) -> dict[str, object]:
    def stamp(hour: int) -> str:
        if unix:
            return f"{_us(2025, 10, 31, hour) // 1_000_000}.000000000"
        return f"2025-10-31T{hour:02d}:00:00.000000000Z"

    return {
        "instrument": "USD_JPY",
        "granularity": "H1",
        "candles": [
            {
                "complete": True,
                "volume": 812,
                "time": stamp(7),
                "mid": {"o": "154.312", "h": "154.324", "l": "154.304", "c": "154.308"},
            },
            {
                "complete": True,
                "volume": 640,
                "time": stamp(8),
                "mid": {"o": "154.308", "h": "154.350", "l": "154.298", "c": "154.340"},
            },
            {
                "complete": complete_last,
                "volume": 12,
                "time": stamp(9),
                "mid": {"o": "154.340", "h": "154.342", "l": "154.330", "c": "154.331"},
            },
        ],
    }


@pytest.mark.parametrize("unix", [False, True])
def test_oanda_json_drops_incomplete_candles(tmp_path: Path, unix: bool) -> None:
    """OANDA v20 candles: RFC3339 ns or UNIX times, mid strings, the forming candle dropped."""
    path = tmp_path / "candles.json"
    path.write_text(json.dumps(_oanda_doc(complete_last=False, unix=unix)))
    report = load_candles(path, errors="report")
    assert report.fmt is CandleFormat.OANDA_JSON and report.incomplete_dropped == 1
    candles = report.candles
    assert (candles.instrument, candles.timeframe_s, len(candles)) == ("USD_JPY", 3600, 2)
    assert candles.time_us.tolist() == [_us(2025, 10, 31, 7), _us(2025, 10, 31, 8)]
    assert candles.high[1] == 154.35 and candles.volume[0] == 812


def test_factor_cache_conflicts_are_refused_or_reported() -> None:
    """The real cache repeats forming bars with other prices: strict refuses, report drops all."""
    with pytest.raises(InputError, match=r"factor_cache\.json: row \d+, column time: conflicting"):
        load_candles(FACTOR, instrument="USD_JPY")
    report = load_candles(FACTOR, instrument="USD_JPY", errors="report")
    doc = json.loads(FACTOR.read_text())["M1"]["candles"][:-1]  # the last one is forming
    versions: dict[str, set[tuple[float, ...]]] = {}
    for c in doc:
        versions.setdefault(c["timestamp"], set()).add((c["open"], c["high"], c["low"], c["close"]))
    clean = [t for t, v in versions.items() if len(v) == 1]
    assert report.incomplete_dropped == 1
    assert len(report.candles) == len(clean)
    assert len(report.rejected) == sum(1 for c in doc if len(versions[c["timestamp"]]) > 1)
    assert report.candles.timeframe_s == 60


def test_bad_row_names_file_row_and_column(tmp_path: Path) -> None:
    """A non-number in row 3's high column: InputError in strict mode, one reject in report mode."""
    lines = HISTDATA.read_text().splitlines()[:10]
    lines[2] = "20180701 170200;1.168450;oops;1.167670;1.167930;0"
    path = tmp_path / "DAT_ASCII_EURUSD_M1_bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"DAT_ASCII_EURUSD_M1_bad\.csv: row 3, column high"):
        load_candles(path)
    report = load_candles(path, errors="report")
    assert [(r.row, r.column, r.value) for r in report.rejected] == [(3, "high", "oops")]
    assert len(report.candles) == 9


def test_inconsistent_ohlc_is_a_bad_row(tmp_path: Path) -> None:
    """A high below the close is rejected with the high column named."""
    path = tmp_path / "EURUSD.csv"
    path.write_text(
        ",Open,High,Low,Close,Volume\n2017-04-19 09:00:00,1.0716,1.0710,1.07083,1.07219,1\n"
    )
    with pytest.raises(InputError, match="row 2, column high"):
        load_candles(path, timeframe_s=3600)


def test_conflicting_duplicate_in_csv_names_both_rows(tmp_path: Path) -> None:
    """Two different bars at one time: the error names the first row and the other one."""
    rows = BT.read_text().splitlines()[:4]
    rows.append(rows[2].replace("1.0726,1241", "1.0727,1241"))
    path = tmp_path / "EURUSD.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(InputError, match=r"row 3, column time: conflicting .*\(rows \[5\]"):
        load_candles(path)


def test_unknown_format_and_instrument_are_input_errors(tmp_path: Path) -> None:
    """Unrecognised content and an unnamed instrument fail with a fix in the message."""
    path = tmp_path / "prices.txt"
    path.write_text("hello\n")
    with pytest.raises(InputError, match="pass fmt="):
        load_candles(path)
    nameless = tmp_path / "prices.csv"
    nameless.write_text("\n".join(BT.read_text().splitlines()[:10]) + "\n")
    with pytest.raises(InputError, match="instrument="):
        load_candles(nameless)
    assert (
        load_candles(nameless, instrument="eur/usd", fmt="backtesting-py").instrument == "EUR_USD"
    )


def test_an_absurd_epoch_time_is_a_bad_row_not_a_crash(tmp_path: Path) -> None:
    """A 17-digit epoch in an MT5 epoch export: row 4's time rejected (it overflowed before)."""
    path = tmp_path / "tb.csv"
    rows = ["time,open,high,low,close,tick_volume,spread,real_volume"]
    rows += [f"{1530489600 + 60 * k},1.1,1.1005,1.0995,1.1001,10,5,0" for k in range(4)]
    rows[3] = "12345678901234567,1.1,1.1005,1.0995,1.1001,10,5,0"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(InputError, match=r"row 4, column time: epoch seconds out of range"):
        load_candles(path, instrument="EUR_USD")
    report = load_candles(path, instrument="EUR_USD", errors="report")
    assert [(r.row, r.column) for r in report.rejected] == [(4, "time")]
