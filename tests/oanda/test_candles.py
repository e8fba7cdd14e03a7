"""OANDA candles end to end: local v20 server -> real V20Client -> importer -> SQLite ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.core.timestamps import format_utc, parse_utc, to_epoch_us
from autolearn.errors import BrokerRejected, BrokerUnavailable, ConfigError, LedgerError
from autolearn.importers.oanda_candles import (
    SOURCE,
    candles_cursor,
    ingest_candles,
    map_candle_page,
)
from autolearn.ledger import SqlLedger
from autolearn.testing.oanda_v20 import Fault, v20_candle

T0 = datetime(2025, 1, 6, 0, 0, tzinfo=UTC)  # a Monday
NOW = datetime(2025, 2, 1, tzinfo=UTC)
CURSOR = candles_cursor("USD_JPY", "M1")


def _bars(n: int, start: datetime = T0, spread: float = 0.008) -> list[dict[str, Any]]:
    """``n`` one-minute USD/JPY bars from ``start`` (mid wanders, spread in price units)."""
    out = []
    for i in range(n):
        mid = 150.0 + 0.01 * ((i * 7) % 13)
        out.append(
            v20_candle(
                start + timedelta(minutes=i),
                mid=(mid, mid + 0.02, mid - 0.01, mid + 0.005),
                spread=spread,
                volume=5 + i % 3,
            )
        )
    return out


@pytest.fixture(name="ledger")
def fixture_ledger(tmp_path: Path) -> Any:
    """An empty SQLite ledger (the real store, not a fake)."""
    ledger = SqlLedger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield ledger
    ledger.close()


def _ingest(client: Any, ledger: SqlLedger, **kwargs: Any) -> Any:
    kwargs.setdefault("since", T0)
    return ingest_candles(client, "USD_JPY", ledger, now=NOW, **kwargs)


class TestPagingAndCompleteness:
    def test_more_than_5000_bars_page_and_land_once(self, serve, make_client, ledger):
        """7,001 bars arrive in two pages of <= 5000; all complete ones are stored exactly once."""
        server = serve()
        server.add_candles("USD_JPY", "M1", _bars(7001))
        report = _ingest(make_client(server), ledger)
        stored = ledger.candles("USD_JPY")
        assert len(stored) == 7000 and report.counts.inserted == 7000
        assert report.pages == 2 and report.incomplete_skipped == 1
        first, second = (r.query for r in server.requests)
        assert first["count"] == "5000" and first["price"] == "MBA"
        assert (first["includeFirst"], second["includeFirst"]) == ("true", "false")
        assert parse_utc(second["from"]) == T0 + timedelta(minutes=4999)  # after the last stored
        assert ledger.get_cursor(CURSOR) == format_utc(T0 + timedelta(minutes=6999))

    def test_mid_prices_and_the_bid_ask_spread_are_stored(self, serve, make_client, ledger):
        """Mid OHLC is stored as sent and spread_pips = ask close - bid close in pips (0.8)."""
        server = serve()
        bars = _bars(3)
        server.add_candles("USD_JPY", "M1", bars)
        _ingest(make_client(server), ledger)
        stored = ledger.candles("USD_JPY")
        assert stored.source == SOURCE and stored.timeframe_s == 60
        assert stored.open[0] == float(bars[0]["mid"]["o"])
        assert stored.close[1] == float(bars[1]["mid"]["c"])
        assert stored.spread_pips is not None
        np.testing.assert_allclose(stored.spread_pips, [0.8, 0.8])

    def test_the_incomplete_newest_bar_waits_for_the_next_run(self, serve, make_client, ledger):
        """The forming bar is skipped; once newer bars exist it is complete and stored next run."""
        server = serve()
        server.add_candles("USD_JPY", "M1", _bars(10))
        first = _ingest(make_client(server), ledger)
        assert len(ledger.candles("USD_JPY")) == 9 and first.incomplete_skipped == 1
        server.add_candles("USD_JPY", "M1", _bars(5, start=T0 + timedelta(minutes=10)))
        second = _ingest(make_client(server), ledger)
        times = ledger.candles("USD_JPY").time_us
        assert second.counts.inserted == 5 and second.duplicates == 0
        assert len(times) == 14 and times[9] == to_epoch_us(T0 + timedelta(minutes=9))

    def test_a_rerun_with_nothing_new_writes_nothing(self, serve, make_client, ledger):
        """Caught up: the rerun asks after the cursor and stores no bar."""
        server = serve()
        server.add_candles("USD_JPY", "M1", _bars(20))
        server.newest_complete = True  # market closed: the last bar is final
        _ingest(make_client(server), ledger)
        again = _ingest(make_client(server), ledger)
        assert again.counts.inserted + again.counts.updated + again.counts.unchanged == 0
        assert len(ledger.candles("USD_JPY")) == 20

    def test_a_weekend_gap_is_stored_as_a_gap(self, serve, make_client, ledger):
        """Friday's close and Sunday's open are neighbours in the store: no synthetic bars."""
        friday = datetime(2025, 1, 10, 21, 50, tzinfo=UTC)
        sunday = datetime(2025, 1, 12, 22, 0, tzinfo=UTC)
        server = serve()
        server.add_candles("USD_JPY", "M1", _bars(10, start=friday) + _bars(11, start=sunday))
        _ingest(make_client(server), ledger, since=friday)
        times = ledger.candles("USD_JPY").time_us
        assert len(times) == 20
        gaps = np.diff(times)
        assert int(gaps.max()) == to_epoch_us(sunday) - to_epoch_us(friday + timedelta(minutes=9))
        assert int(np.count_nonzero(gaps != 60_000_000)) == 1


class TestResume:
    def test_an_interrupted_run_loses_and_duplicates_nothing(self, serve, make_client, ledger):
        """Page 2 fails past the retries: page 1 and its cursor stay; the rerun completes it."""
        server = serve()
        server.add_candles("USD_JPY", "M1", _bars(12_001))
        server.script(*[Fault.http(503, path_contains="candles", after_requests=1)] * 4)
        client = make_client(server)
        with pytest.raises(BrokerUnavailable, match="HTTP 503"):
            _ingest(client, ledger)
        assert len(ledger.candles("USD_JPY")) == 5000
        assert ledger.get_cursor(CURSOR) == format_utc(T0 + timedelta(minutes=4999))
        rerun = _ingest(make_client(server), ledger)
        stored = ledger.candles("USD_JPY")
        assert len(stored) == 12_000 and rerun.counts.inserted == 7000
        assert rerun.counts.unchanged == 0 and rerun.duplicates == 0
        assert len(np.unique(stored.time_us)) == 12_000

    def test_a_page_replayed_after_a_crash_counts_unchanged(self, serve, make_client, ledger):
        """Bars stored but the cursor not moved (crash in between): the replay changes nothing."""
        server = serve()
        server.add_candles("USD_JPY", "M1", _bars(30))
        _ingest(make_client(server), ledger)
        ledger.set_cursor(CURSOR, format_utc(T0 + timedelta(minutes=9)))  # as if it lagged
        replay = _ingest(make_client(server), ledger)
        assert replay.counts.unchanged == 19 and replay.counts.inserted == 0
        assert len(ledger.candles("USD_JPY")) == 29

    def test_a_garbage_cursor_is_a_ledger_error_naming_it(self, serve, make_client, ledger):
        """A cursor that is not a time stops the import before any request, with the fix."""
        server = serve()
        ledger.set_cursor(CURSOR, "yesterday")
        with pytest.raises(LedgerError, match=CURSOR):
            _ingest(make_client(server), ledger)
        assert server.requests == []


class TestRetriesAndSecrecy:
    def test_429_and_5xx_are_retried_with_backoff(self, serve, make_client, ledger, sleeps):
        """A 429 honours Retry-After, a 500 backs off, and the import then completes."""
        server = serve()
        server.add_candles("USD_JPY", "M1", _bars(50))
        server.script(
            Fault.http(429, headers={"Retry-After": "2"}, path_contains="candles"),
            Fault.http(500, path_contains="candles"),
        )
        report = _ingest(make_client(server), ledger)
        assert report.retries == 2 and len(ledger.candles("USD_JPY")) == 49
        assert sleeps.delays[0] == 2.0 and 0.25 <= sleeps.delays[1] <= 1.0

    def test_the_token_never_appears_in_errors_or_logs(self, serve, make_client, ledger, token):
        """A server echoing the token in its errors: the exception and every log line redact it."""
        server = serve()
        server.add_candles("USD_JPY", "M1", _bars(5))
        echo = {"errorMessage": f"bad header Authorization: Bearer {token}"}
        server.script(
            Fault.http(503, echo, path_contains="candles"),
            Fault.http(403, echo, path_contains="candles"),
        )
        with structlog.testing.capture_logs() as logs, pytest.raises(BrokerRejected) as caught:
            _ingest(make_client(server), ledger)
        assert token not in str(caught.value) and "HTTP 403" in str(caught.value)
        assert logs and all(token not in repr(entry) for entry in logs)
        assert ledger.get_cursor(CURSOR) is None

    def test_a_wrong_token_is_rejected_not_retried(self, serve, make_client, ledger):
        """401 is permanent: one request, BrokerRejected with the hint, nothing stored."""
        from autolearn.oanda.client import V20Client

        server = serve()
        server.add_candles("USD_JPY", "M1", _bars(5))
        client = V20Client(token="wrong-token", base_url=server.base_url)
        with client, pytest.raises(BrokerRejected, match="OANDA_TOKEN"):
            _ingest(client, ledger)
        assert len(server.requests) == 1 and len(ledger.candles("USD_JPY")) == 0


class TestClientArguments:
    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"instrument": "usd/jpy"}, "instrument"),
            ({"granularity": "M3"}, "granularity"),
            ({"price": "AB"}, "price"),
            ({"count": 5001}, "count"),
            ({"from_time": T0, "to_time": T0 + timedelta(hours=1)}, "not all three"),
            ({"from_time": datetime(2025, 1, 1)}, "UTC-aware"),  # naive: the point
        ],
    )
    def test_bad_arguments_fail_before_any_request(self, serve, make_client, kwargs, match):
        """Every malformed argument is a ConfigError naming it; nothing reaches the server."""
        server = serve()
        call = {"instrument": "USD_JPY", "granularity": "M1", **kwargs}
        instrument = call.pop("instrument")
        with pytest.raises(ConfigError, match=match):
            make_client(server).candles(instrument, **call)
        assert server.requests == []

    def test_a_body_without_candles_is_rejected(self, serve, make_client):
        """A 200 without a 'candles' list is permanent (BrokerRejected), not retried."""
        server = serve()
        server.add_candles("USD_JPY", "M1", _bars(2))
        server.script(Fault.http(200, {"instrument": "USD_JPY"}, path_contains="candles"))
        with pytest.raises(BrokerRejected, match="candles"):
            make_client(server).candles("USD_JPY", granularity="M1")
        assert len(server.requests) == 1

    def test_to_and_count_answer_the_bars_before(self, serve, make_client):
        """Without from, v20 answers the count bars before `to` (the fake follows it)."""
        server = serve()
        server.add_candles("USD_JPY", "M1", _bars(10))
        body = make_client(server).candles(
            "USD_JPY", granularity="M1", price="M", count=3, to_time=T0 + timedelta(minutes=5)
        )
        times = [parse_utc(c["time"]) for c in body["candles"]]
        assert times == [T0 + timedelta(minutes=m) for m in (2, 3, 4)]
        assert all("bid" not in c and "mid" in c for c in body["candles"])


def _raw(i: int, complete: bool = True, **override: Any) -> dict[str, Any]:
    bar = v20_candle(T0 + timedelta(minutes=i), mid=(150.0, 150.02, 149.99, 150.01), spread=0.01)
    return {**bar, "complete": complete, **override}


class TestMapCandlePage:
    def _map(self, candles: list[dict[str, Any]], after: int | None = None) -> Any:
        after_us = None if after is None else to_epoch_us(T0 + timedelta(minutes=after))
        return map_candle_page(
            {"candles": candles}, instrument="USD_JPY", granularity="M1", after_us=after_us
        )

    def test_a_crossed_quote_is_rejected_not_stored(self):
        """Ask below bid cannot be a real quote: the bar is reported with the reason, not kept."""
        crossed = _raw(1, ask={"o": "150.0", "h": "150.0", "l": "150.0", "c": "149.0"})
        page = self._map([_raw(0), crossed, _raw(2)])
        assert len(page.candles) == 2 and [r.row for r in page.rejected] == [2]
        assert "crossed" in page.rejected[0].reason

    def test_a_bar_without_bid_ask_is_rejected(self):
        """Asked MBA, a mid-only bar has no spread: rejected so every stored bar has one."""
        bare = {k: v for k, v in _raw(1).items() if k not in ("bid", "ask")}
        page = self._map([_raw(0), bare])
        assert len(page.candles) == 1 and page.rejected[0].column == "bid/ask"

    def test_nothing_after_an_incomplete_bar_is_stored(self):
        """A complete bar after a forming one is held back: the cursor never passes the latter."""
        page = self._map([_raw(0), _raw(1, complete=False), _raw(2)])
        assert len(page.candles) == 1 and page.incomplete == 2

    @settings(max_examples=60, deadline=None)
    @given(
        n=st.integers(0, 30),
        incomplete=st.sets(st.integers(0, 29), max_size=3),
        after=st.none() | st.integers(-1, 30),
    )
    def test_stored_bars_are_complete_after_the_cursor_and_before_any_forming_bar(
        self, n, incomplete, after
    ):
        """Property: exactly the complete bars with cursor < t < first incomplete are stored."""
        candles = [_raw(i, complete=i not in incomplete) for i in range(n)]
        page = self._map(candles, after)
        cut = min((i for i in incomplete if i < n), default=n)
        expected = [i for i in range(n) if (after is None or i > after) and i < cut]
        got = [(int(t) - to_epoch_us(T0)) // 60_000_000 for t in page.candles.time_us]
        assert got == expected and page.rejected == ()
