"""ingest_transactions end to end: local v20 server -> client -> mapper -> sink, over runs."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
import structlog

from autolearn.errors import BrokerRejected, BrokerUnavailable, LedgerError
from autolearn.oanda.client import RetryPolicy, V20Client
from autolearn.oanda.transactions import (
    ingest_transactions,
    last_tx_cursor,
    open_trades_cursor,
)
from autolearn.testing.oanda_v20 import Fault

NOW = datetime(2025, 10, 23, 3, 0, tzinfo=UTC)


def _keys(sink):
    return sorted(sink.rows)


def _expected_keys(session):
    return sorted((e["broker_trade_id"], e["close_tx_id"]) for e in session["expected"])


class TestOneRun:
    def test_real_session_lands_once_with_cursor_at_the_end(
        self, serve, make_client, sink, session, account_id
    ):
        """All 14 real trades are inserted once and the cursor is the account's last id."""
        server = serve(session["transactions"])
        report = ingest_transactions(make_client(server), account_id, sink, now=NOW)
        assert _keys(sink) == _expected_keys(session)
        assert sink.cursors[last_tx_cursor(account_id)] == server.last_transaction_id
        assert (report.fetched, report.pages, report.trades.inserted) == (70, 1, 14)
        assert report.rejected == () and report.is_caught_up
        assert report.finished_at == NOW
        assert sink.cursors[open_trades_cursor(account_id)] == "{}"  # all closed

    def test_second_run_when_caught_up_changes_nothing(
        self, serve, make_client, sink, session, account_id
    ):
        """Re-running with nothing new fetches nothing and writes nothing."""
        server = serve(session["transactions"])
        ingest_transactions(make_client(server), account_id, sink, now=NOW)
        again = ingest_transactions(make_client(server), account_id, sink, now=NOW)
        assert (again.fetched, again.trades_written, again.pages) == (0, 0, 1)
        assert server.requests[-1].query == {"id": server.last_transaction_id}


class TestPaginationAndResume:
    def test_two_runs_resume_from_the_cursor_and_pick_up_new_activity(
        self, serve, make_client, sink, session, partial, account_id
    ):
        """Run 1 stops after 3 pages of 6, run 2 resumes there, run 3 sees new fills; no dupes."""
        server = serve(session["transactions"], page_size=6)
        first = ingest_transactions(make_client(server), account_id, sink, max_pages=3, now=NOW)
        cursor = sink.cursors[last_tx_cursor(account_id)]
        assert first.pages == 3 and not first.is_caught_up
        assert cursor == session["transactions"][17]["id"]

        second = ingest_transactions(make_client(server), account_id, sink, now=NOW)
        assert server.requests[3].query == {"id": cursor}  # resumed, not restarted
        assert second.is_caught_up and second.duplicates == 0
        assert first.trades.inserted + second.trades.inserted == 14
        assert _keys(sink) == _expected_keys(session)

        server.add_transactions(partial["transactions"])
        third = ingest_transactions(make_client(server), account_id, sink, now=NOW)
        assert third.trades.inserted == 4 and len(sink.rows) == 18

    def test_partial_close_then_final_close_in_separate_runs(
        self, serve, make_client, sink, partial, account_id
    ):
        """The PARTIAL row lands in run 1; run 2 closes it from the stored opening (no GET)."""
        server = serve(partial["transactions"], page_size=6)
        ingest_transactions(make_client(server), account_id, sink, max_pages=1, now=NOW)
        assert _keys(sink) == [("9001", "9008")]
        assert '"9001"' in sink.cursors[open_trades_cursor(account_id)]
        seen = len(server.requests)
        ingest_transactions(make_client(server), account_id, sink, now=NOW)
        assert _keys(sink) == [
            ("9001", "9008"),
            ("9001", "9012"),
            ("9003", "9010"),
            ("9005", "9010"),
        ]
        assert not [r for r in server.requests[seen:] if "/trades/" in r.path]
        final = sink.rows[("9001", "9012")]
        assert (final.state.value, final.units, final.strategy) == (
            "CLOSED",
            600,
            "MicroVWAPRevert",
        )

    def test_overlapping_shuffled_duplicated_pages_never_duplicate_or_skip(
        self, serve, make_client, sink, sink_factory, session, account_id
    ):
        """Pages repeating old transactions, reversed and with duplicates, give the same rows."""
        reference = sink_factory()
        ingest_transactions(make_client(serve(session["transactions"])), account_id, reference)

        def chaos(page):
            return list(reversed(page)) + page[:2]

        server = serve(session["transactions"], page_size=5, overlap=3, page_transform=chaos)
        report = ingest_transactions(make_client(server), account_id, sink, now=NOW)
        assert sink.rows == reference.rows
        assert report.trades.inserted == 14 and report.trades.updated == 0
        assert report.duplicates > 0 and report.rejected == ()

    def test_broker_outage_mid_run_keeps_committed_pages(
        self, serve, make_client, sink, session, account_id
    ):
        """A 503 storm on page 3 aborts the run; pages 1-2 stay committed and run 2 finishes."""
        server = serve(session["transactions"], page_size=10)
        server.script(*[Fault.http(503, after_requests=2)] * 4)
        with pytest.raises(BrokerUnavailable):
            ingest_transactions(make_client(server), account_id, sink, now=NOW)
        assert sink.cursors[last_tx_cursor(account_id)] == session["transactions"][19]["id"]
        committed = len(sink.rows)
        report = ingest_transactions(make_client(server), account_id, sink, now=NOW)
        assert committed + report.trades.inserted == 14 and report.trades.unchanged == 0
        assert _keys(sink) == _expected_keys(session)


class TestOpeningsFromTheTradesEndpoint:
    def test_trades_opened_before_the_first_sync_are_fetched(
        self, serve, make_client, sink, session, account_id
    ):
        """Starting after two openings, GET trades/{id} supplies them and the rows match."""
        server = serve(session["transactions"])
        report = ingest_transactions(
            make_client(server), account_id, sink, initial_since_id="4430", now=NOW
        )
        assert report.openings_fetched == 2 and report.rejected == ()
        fetched = sorted(r.path.rsplit("/", 1)[1] for r in server.requests if "/trades/" in r.path)
        assert fetched == ["4419", "4427"]
        want = {e["broker_trade_id"]: e for e in session["expected"]}
        for trade_id in ("4419", "4427"):
            row = sink.rows[(trade_id, want[trade_id]["close_tx_id"])]
            assert row.entry_price == want[trade_id]["entry_price"]
            assert row.pocket == want[trade_id]["pocket"]
            assert row.entry_at == datetime.fromisoformat(want[trade_id]["entry_time"])

    def test_partial_and_final_close_share_one_fetch(
        self, serve, make_client, sink, partial, account_id
    ):
        """A reduce and the final close of a pre-sync trade fetch its opening only once."""
        server = serve(partial["transactions"])
        report = ingest_transactions(
            make_client(server), account_id, sink, initial_since_id="9006", now=NOW
        )
        assert report.openings_fetched == 3 and len(sink.rows) == 4
        assert sink.rows[("9001", "9008")].config_version == "2025-10-23.1"

    def test_an_opening_the_broker_does_not_know_is_rejected_and_passed(
        self, serve, make_client, sink, partial, account_id
    ):
        """A close of a trade OANDA answers 404 for is reported once; the cursor moves on."""
        close_only = [t for t in partial["transactions"] if t["id"] in ("9008", "9012")]
        server = serve(close_only)
        report = ingest_transactions(make_client(server), account_id, sink, now=NOW)
        assert [r.tx_id for r in report.rejected] == ["9008", "9012"]
        assert "NO_SUCH_TRADE" in report.rejected[0].reason
        assert sink.cursors[last_tx_cursor(account_id)] == "9012"
        again = ingest_transactions(make_client(server), account_id, sink, now=NOW)
        assert again.rejected == ()


class TestMalformedAndFailures:
    def test_a_malformed_transaction_is_reported_logged_and_not_fatal(
        self, serve, make_client, sink, session, account_id
    ):
        """A naive close time rejects that fill only; the other 13 trades and the cursor proceed."""
        txs = copy.deepcopy(session["transactions"])
        bad = next(t for t in txs if t["id"] == "4634")
        bad["time"] = "2025-10-22 09:16:36.907809"
        server = serve(txs)
        with structlog.testing.capture_logs() as logs:
            report = ingest_transactions(make_client(server), account_id, sink, now=NOW)
        (rejected,) = report.rejected
        assert rejected.tx_id == "4634" and "naive timestamp" in rejected.reason
        assert len(sink.rows) == 13 and ("4427", "4634") not in sink.rows
        assert sink.cursors[last_tx_cursor(account_id)] == server.last_transaction_id
        assert "tx 4634: " in report.format()
        assert {"event": "oanda_transaction_rejected", "tx_id": "4634"}.items() <= next(
            e for e in logs if e["event"] == "oanda_transaction_rejected"
        ).items()

    def test_retries_during_ingest_are_counted(
        self, serve, make_client, sink, session, account_id, sleeps
    ):
        """A 429 (Retry-After 2) and a timeout on the way are absorbed and reported as retries."""
        server = serve(session["transactions"], page_size=30)
        server.script(
            Fault.http(429, headers={"Retry-After": "2"}), Fault.delay(0.6, path_contains="sinceid")
        )
        report = ingest_transactions(make_client(server, timeout_s=0.2), account_id, sink, now=NOW)
        # >= rather than ==: on a loaded CI host a normal answer may also exceed 0.2 s.
        assert report.retries >= 2 and len(sink.rows) == 14
        assert sleeps.delays[0] == 2.0

    def test_auth_failure_raises_and_leaves_the_cursor_alone(
        self, serve, sink, session, account_id, token
    ):
        """A rejected token raises BrokerRejected and writes nothing."""
        server = serve(session["transactions"])
        sink.cursors[last_tx_cursor(account_id)] = "4443"
        client = V20Client(token="wrong-" + token, base_url=server.base_url)
        with pytest.raises(BrokerRejected, match="401"):
            ingest_transactions(client, account_id, sink, now=NOW)
        client.close()
        assert sink.cursors == {last_tx_cursor(account_id): "4443"} and sink.rows == {}

    def test_a_corrupt_cursor_is_a_ledger_error(self, serve, make_client, sink, account_id):
        """A cursor that is not a transaction id stops the run instead of guessing."""
        sink.cursors[last_tx_cursor(account_id)] = "12abc"
        with pytest.raises(LedgerError, match="not a transaction id"):
            ingest_transactions(make_client(serve([])), account_id, sink)

    def test_a_corrupt_openings_cursor_is_noted_and_recovered(
        self, serve, make_client, sink, partial, account_id
    ):
        """Damaged open_trades JSON is noted and the openings are fetched again."""
        server = serve(partial["transactions"])
        sink.cursors[last_tx_cursor(account_id)] = "9006"
        sink.cursors[open_trades_cursor(account_id)] = "{not json"
        report = ingest_transactions(make_client(server), account_id, sink, now=NOW)
        assert report.notes and "re-fetched" in report.notes[0]
        assert len(sink.rows) == 4 and report.openings_fetched == 3

    def test_report_is_readable_and_token_free(
        self, serve, make_client, sink, session, account_id, token
    ):
        """format() states the counts and never the token."""
        server = serve(session["transactions"])
        text = ingest_transactions(make_client(server), account_id, sink, now=NOW).format()
        assert "14 inserted" in text and "fetched 70 in 1 page(s)" in text
        assert token not in text and token not in repr(sink.cursors)


def test_sql_ledger_integration(serve, make_client, session, partial, account_id, tmp_path):
    """With the real SqlLedger (SQLite), two runs store 18 rows once and the cursor survives."""
    sql = pytest.importorskip("autolearn.ledger.sql", reason="autolearn.ledger.sql not written yet")
    ledger = sql.SqlLedger.open("sqlite:///" + str(tmp_path / "l.db"))
    try:
        server = serve(session["transactions"], page_size=25)
        first = ingest_transactions(make_client(server), account_id, ledger, now=NOW)
        server.add_transactions(partial["transactions"])
        second = ingest_transactions(make_client(server), account_id, ledger, now=NOW)
        again = ingest_transactions(make_client(server), account_id, ledger, now=NOW)
        assert (first.trades.inserted, second.trades.inserted, again.trades_written) == (14, 4, 0)
        assert ledger.count_trades() == 18
        assert ledger.get_cursor(last_tx_cursor(account_id)) == "9012"
    finally:
        ledger.close()


def test_retry_policy_zero_attempts_is_a_config_error():
    """A policy that would never try is refused."""
    from autolearn.errors import ConfigError

    with pytest.raises(ConfigError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
