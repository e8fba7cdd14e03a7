"""Source clocks: names, the NY-close server clock, and inferring a naive file's clock.

Known truth comes from two places: a generator that lays out FX weeks on a chosen clock (the
week opens Sunday 17:00 and closes Friday 17:00 New York, per ``zoneinfo``), and real files
whose clock is settled (hadiforoughi at UTC-3:30 by correlation with tb-logs; tb-logs' own
server clock, rewritten as a ``Time,Open,...`` MT5 export). The full shared files are used
when ../shared/data is present and the tests say so when it is not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.backtest import load_candles
from autolearn.backtest._clock import (
    SourceClock,
    fixed_clock,
    infer_clock,
    mt5_server_to_utc,
    new_york_from_utc,
    parse_clock,
)
from autolearn.core.timestamps import to_epoch_us
from autolearn.errors import InputError

FX = Path(__file__).parent.parent / "data" / "fx"
TB_DST = FX / "mt5-tb-logs" / "EURUSD_H1.part-dst-2018.csv"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "fx"
NY = ZoneInfo("America/New_York")
HOUR_US = 3_600_000_000


def _shared(name: str) -> Path:
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"shared data missing: {path} (../shared/data beside the repo)")
    return path


def _week_bars_utc(first_monday: datetime, weeks: int, bar_min: int) -> list[datetime]:
    """Every bar of ``weeks`` FX weeks, Sunday 17:00 to Friday 17:00 New York, as UTC."""
    bars: list[datetime] = []
    for w in range(weeks):
        sunday = (first_monday + timedelta(weeks=w) - timedelta(days=1)).date()
        start = datetime(sunday.year, sunday.month, sunday.day, 17, tzinfo=NY)
        friday = sunday + timedelta(days=5)
        end = datetime(friday.year, friday.month, friday.day, 17, tzinfo=NY)
        t, stop = start.astimezone(UTC), end.astimezone(UTC)
        while t < stop:
            bars.append(t)
            t += timedelta(minutes=bar_min)
    return bars


def _wall_us(bars_utc: list[datetime], clock: str) -> np.ndarray:
    """The generator's bars as a source on ``clock`` would stamp them (wall time as if UTC)."""
    if clock == "mt5-server":  # New York + 7 h
        walls = [b.astimezone(NY).replace(tzinfo=UTC) + timedelta(hours=7) for b in bars_utc]
    else:
        offset = parse_clock(clock).offset_h
        assert offset is not None
        walls = [b + timedelta(hours=offset) for b in bars_utc]
    return np.array([to_epoch_us(w) for w in walls], dtype=np.int64)


def _write_mt5_csv(path: Path, wall_us: np.ndarray, price: float = 1.1) -> Path:
    lines = ["Time,Open,High,Low,Close,Volume"]
    for us in wall_us.tolist():
        stamp = datetime(1970, 1, 1) + timedelta(microseconds=us)
        lines.append(f"{stamp:%Y-%m-%d %H:%M:%S},{price},{price + 0.001},{price - 0.001},{price},1")
    path.write_text("\n".join(lines) + "\n")
    return path


class TestParseClock:
    @pytest.mark.parametrize(
        ("text", "name", "offset"),
        [
            ("utc", "utc", 0.0),
            ("UTC+2", "utc+2", 2.0),
            ("utc-3:30", "utc-3:30", -3.5),
            ("utc-0330", "utc-3:30", -3.5),
            ("utc+5:45", "utc+5:45", 5.75),
            ("mt5-server", "mt5-server", None),
            ("MT5_EET", "mt5-eet", None),
            ("new-york", "new-york", None),
        ],
    )
    def test_known_spellings(self, text: str, name: str, offset: float | None) -> None:
        """Every documented spelling maps to one canonical clock."""
        assert parse_clock(text) == SourceClock(name, offset)

    @pytest.mark.parametrize("text", ["gmt", "utc+15", "utc-13", "utc+2:75", "tokyo", ""])
    def test_unknown_clocks_are_refused_with_the_known_names(self, text: str) -> None:
        """A typo or an impossible offset names what would have been accepted."""
        with pytest.raises(ValueError, match="mt5-server"):
            parse_clock(text)

    @given(st.integers(min_value=-48, max_value=56))
    def test_fixed_names_round_trip(self, quarters: int) -> None:
        """The canonical name of a fixed clock parses back to the same clock."""
        clock = fixed_clock(quarters / 4)
        assert parse_clock(clock.name) == clock


class TestServerClock:
    @pytest.mark.parametrize(
        ("wall", "utc"),
        [
            (datetime(2018, 1, 8, 0), datetime(2018, 1, 7, 22)),  # winter: UTC+2
            (datetime(2018, 3, 19, 0), datetime(2018, 3, 18, 21)),  # US DST, EU not yet: +3
            (datetime(2018, 10, 29, 0), datetime(2018, 10, 28, 21)),  # EU back, US still DST
            (datetime(2018, 11, 5, 0), datetime(2018, 11, 4, 22)),  # both on standard time
            (datetime(2005, 4, 4, 0), datetime(2005, 4, 3, 21)),  # the pre-2007 US rule
        ],
    )
    def test_monday_midnight_is_new_york_five_pm(self, wall: datetime, utc: datetime) -> None:
        """The NY-close server clock opens every week at Sunday 17:00 New York."""
        local = np.array([to_epoch_us(wall.replace(tzinfo=UTC))], dtype=np.int64)
        assert mt5_server_to_utc(local)[0] == to_epoch_us(utc.replace(tzinfo=UTC))
        assert utc.replace(tzinfo=UTC).astimezone(NY).hour == 17

    @settings(max_examples=200, deadline=None)
    @given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2035, 12, 31)))
    def test_utc_to_new_york_agrees_with_the_iana_database(self, moment: datetime) -> None:
        """UTC -> New York wall clock matches zoneinfo, before and after the 2007 rule."""
        utc = moment.replace(microsecond=0, tzinfo=UTC)
        wall = utc.astimezone(NY).replace(tzinfo=UTC)
        got = new_york_from_utc(np.array([to_epoch_us(utc)], dtype=np.int64))[0]
        assert got == to_epoch_us(wall)


class TestInferKnownTruth:
    @pytest.mark.parametrize("clock", ["mt5-server", "utc-3:30", "utc", "utc+2"])
    def test_a_year_of_weeks_names_its_clock(self, clock: str) -> None:
        """A year of M15 weeks stamped on a clock (both DST seasons) is read on that clock."""
        bars = _week_bars_utc(datetime(2019, 1, 7), 52, 15)
        wall = _wall_us(bars, clock)
        found = infer_clock(wall, 900)
        assert found.clock == parse_clock(clock), found.reason
        expect = np.array([to_epoch_us(b) for b in bars], dtype=np.int64)
        np.testing.assert_array_equal(found.clock.to_utc(wall), expect)

    def test_a_utc_plus_2_3_export_is_not_read_as_utc_minus_3_30(self, tmp_path: Path) -> None:
        """The reported bug: a Monday-00:00 server export lands on true UTC, not 5.5-6.5 h off."""
        bars = _week_bars_utc(datetime(2021, 6, 7), 30, 60)
        path = _write_mt5_csv(tmp_path / "EURUSD_H1.csv", _wall_us(bars, "mt5-server"))
        candles = load_candles(path)
        assert candles.time_us.tolist() == [to_epoch_us(b) for b in bars]

    def test_a_file_without_a_weekend_is_refused_naming_the_candidates(
        self, tmp_path: Path
    ) -> None:
        """Tuesday to Thursday only: the week open cannot place the clock, so no guess."""
        bars = [b for b in _week_bars_utc(datetime(2021, 6, 7), 1, 60) if b.weekday() in (1, 2)]
        path = _write_mt5_csv(tmp_path / "EURUSD_H1.csv", _wall_us(bars, "mt5-server"))
        with pytest.raises(InputError, match=r"EURUSD_H1\.csv: cannot tell .*no weekend") as err:
            load_candles(path)
        for name in ("utc-3:30", "mt5-server", "utc", "--clock"):
            assert name in str(err.value)
        assert len(load_candles(path, clock="mt5-server")) == len(bars)

    def test_a_clock_that_fits_no_convention_is_refused(self, tmp_path: Path) -> None:
        """Weeks opening at 17:15 local on a fixed clock 15 min off any candidate: refused."""
        bars = _week_bars_utc(datetime(2021, 1, 11), 8, 60)
        wall = _wall_us(bars, "utc-5") + 15 * 60_000_000 - 30 * 60_000_000
        path = _write_mt5_csv(tmp_path / "EURUSD_H1.csv", wall)
        with pytest.raises(InputError, match="no clock opens and closes the week"):
            load_candles(path)

    def test_explicit_clock_wins_and_zoned_formats_refuse_a_shift(self, tmp_path: Path) -> None:
        """--clock overrides inference; an OANDA body (times with zones) accepts only utc."""
        bars = _week_bars_utc(datetime(2021, 6, 7), 3, 60)
        path = _write_mt5_csv(tmp_path / "EURUSD_H1.csv", _wall_us(bars, "mt5-server"))
        shifted = load_candles(path, clock="utc+2")
        assert shifted.time_us[0] == to_epoch_us(bars[0]) + HOUR_US  # summer (+3) read as +2
        oanda = tmp_path / "o.json"
        oanda.write_text(
            '{"instrument": "EUR_USD", "granularity": "H1", "candles": [{"time": '
            '"2021-06-07T00:00:00Z", "complete": true, "volume": 1, "mid": {"o": "1.1", '
            '"h": "1.2", "l": "1.0", "c": "1.1"}}]}'
        )
        with pytest.raises(InputError, match="carry their own zone"):
            load_candles(oanda, clock="mt5-server", timeframe_s=3600)
        assert len(load_candles(oanda, clock="utc", timeframe_s=3600)) == 1
        with pytest.raises(InputError, match="unknown clock 'gmt'"):
            load_candles(path, clock="gmt")


class TestInferRealFiles:
    def test_tb_logs_rewritten_as_an_mt5_csv_lands_on_its_server_clock(
        self, tmp_path: Path
    ) -> None:
        """Real tb-logs bars written as ``Time,Open,...``: read as the Monday-00:00 server clock.

        Outside the weeks where US and EU DST disagree, that is the epoch loader's reading too.
        """
        epoch = load_candles(TB_DST, clock="utc")  # server wall clock, unconverted
        path = _write_mt5_csv(tmp_path / "EURUSD_H1.csv", epoch.time_us)
        inferred = load_candles(path)
        served = mt5_server_to_utc(epoch.time_us)
        np.testing.assert_array_equal(inferred.time_us, served)
        # The epoch loader's EU-calendar reading differs by exactly one hour, and only in the
        # weeks where the US calendar is already (still) on summer time and the EU one is not.
        eet = load_candles(TB_DST).time_us
        differ = served != eet
        assert set((eet - served)[differ].tolist()) == {HOUR_US}
        mismatch = [
            (datetime(2018, 3, 11), datetime(2018, 3, 25)),
            (datetime(2018, 10, 28), datetime(2018, 11, 4)),
        ]
        for t in served[differ].tolist():
            moment = datetime(1970, 1, 1) + timedelta(microseconds=t)
            assert any(lo <= moment < hi for lo, hi in mismatch), moment
        assert 0 < differ.sum() < len(eet)
        wrong = load_candles(path, clock="utc-3:30").time_us
        assert np.all(np.abs(wrong - served) >= 5 * HOUR_US)

    @pytest.mark.parametrize(
        "name",
        [
            "mt5-hadiforoughi/EURUSD_M5.converted.csv",
            "mt5-hadiforoughi/EURUSD_M1.csv",
        ],
    )
    def test_hadiforoughi_files_infer_utc_minus_3_30(self, name: str) -> None:
        """The full shared exports (35 and 7 weekends) infer the correlation-verified UTC-3:30."""
        path = _shared(name)
        assert (
            load_candles(path).time_us.tolist()
            == load_candles(path, clock="utc-3:30").time_us.tolist()
        )

    @pytest.mark.parametrize(
        "name",
        ["mt5-tb-logs/EURUSD_H1.part-2018-2023.csv", "mt5-tb-logs/USDJPY_H1.part-2018-2023.csv"],
    )
    def test_six_years_of_tb_logs_fit_the_ny_close_clock(self, name: str) -> None:
        """310 real weekends: the NY-close server clock fits all but holidays' edges."""
        raw = load_candles(_shared(name), clock="utc").time_us
        found = infer_clock(raw, 3600)
        assert found.clock == SourceClock("mt5-server")
        assert found.weekends >= 300
        assert dict(found.candidates)["mt5-server"] >= 0.99 * found.weekends


class TestClockOption:
    @pytest.fixture(name="env")
    def fixture_env(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        """A SQLite ledger and bot root in tmp_path; no settings leak in from the env."""
        for name in ("AUTOLEARN_STATE_DIR", "AUTOLEARN_REGISTRY", "OANDA_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AUTOLEARN_BOT_ROOT", str(tmp_path))
        monkeypatch.setenv("AUTOLEARN_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
        return tmp_path

    def test_ingest_candles_refuses_an_undecidable_file_until_clock_is_given(
        self, env: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """No weekend: exit 65 naming the file; ``--clock mt5-server`` stores it on true UTC."""
        from autolearn.cli import main

        bars = [b for b in _week_bars_utc(datetime(2021, 6, 7), 1, 60) if b.weekday() in (1, 2)]
        path = _write_mt5_csv(env / "EURUSD_H1.csv", _wall_us(bars, "mt5-server"))
        assert main(["ingest", "--candles", str(path)]) == 65
        assert "EURUSD_H1.csv: cannot tell" in capsys.readouterr().err.replace("\n", "")
        assert main(["ingest", "--candles", str(path), "--clock", "mt5-server"]) == 0
        assert main(["ingest", "--candles", str(path), "--clock", "gmt"]) == 65
        assert main(["ingest", "--oanda-candles", "EUR_USD", "--clock", "utc"]) == 2

    def test_replay_loader_passes_the_clock(self, tmp_path: Path) -> None:
        """``replay --clock`` reads every file on that clock (here: one hour off on purpose)."""
        from autolearn.cli._replay import load_replay_candles

        bars = _week_bars_utc(datetime(2021, 6, 7), 2, 60)
        path = _write_mt5_csv(tmp_path / "EURUSD_H1.csv", _wall_us(bars, "mt5-server"))
        inferred = load_replay_candles([path], None, None)
        forced = load_replay_candles([path], None, None, clock="utc+2")
        assert inferred.time_us[0] == to_epoch_us(bars[0])
        assert forced.time_us[0] == inferred.time_us[0] + HOUR_US


def test_the_report_names_the_clock_it_read_on(tmp_path: Path) -> None:
    """``errors="report"`` says which clock was inferred (shown by ``ingest --candles``)."""
    bars = _week_bars_utc(datetime(2021, 6, 7), 3, 60)
    path = _write_mt5_csv(tmp_path / "EURUSD_H1.csv", _wall_us(bars, "mt5-server"))
    assert load_candles(path, errors="report").clock == "mt5-server"
    assert load_candles(TB_DST, errors="report").clock == "mt5-eet"
