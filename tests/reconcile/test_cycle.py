"""``autolearn reconcile`` against a local v20 server serving the real-shaped OANDA session."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autolearn.adapters.state import StateStore
from autolearn.cli import main
from autolearn.ledger.sql import SqlLedger
from autolearn.oanda.transactions import ingest_transactions
from autolearn.reconcile import ReconcileConfig, run_reconcile
from autolearn.settings import load_registry
from autolearn.testing import make_trade
from autolearn.testing.oanda_v20 import FakeV20Server, Fault

TOKEN = "tok-7c1e55d0a4b94e2f-RECONCILE-SECRET"  # = conftest.TOKEN
ACCOUNT = "001-009-0000000-002"
SESSION_TRADES = 14  # the fixture's 14 round trips (tests/data/PROVENANCE.md)


@dataclasses.dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def record(self) -> dict[str, Any]:
        (line,) = [x for x in self.out.splitlines() if x.startswith("{")]
        doc: dict[str, Any] = json.loads(line)
        return doc


@pytest.fixture(name="reconcile_cli")
def fixture_reconcile_cli(
    tmp_path: Path,
    ledger_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Run]:
    """``autolearn reconcile`` in-process on the test ledger and state dir, token in the env."""
    monkeypatch.setenv("OANDA_TOKEN", TOKEN)

    def run(server: FakeV20Server, *extra: str, command: str = "reconcile") -> Run:
        capsys.readouterr()
        argv = ["--state-dir", str(tmp_path / "state"), "--ledger", ledger_url, command]
        if command == "reconcile":
            argv += ["--account", ACCOUNT, "--oanda-url", server.base_url, "--since", "1000d"]
        code = main([*argv, *extra])
        got = capsys.readouterr()
        assert TOKEN not in got.out + got.err  # never printed, whatever happened
        return Run(code, got.out, got.err)

    return run


def _ingest(server: FakeV20Server, client_for: Callable[..., Any], ledger: SqlLedger) -> None:
    report = ingest_transactions(client_for(server), ACCOUNT, ledger)
    assert report.rejected == ()


def test_session_ingested_then_reconciled_clean(
    session: dict[str, Any], serve, client_for, ledger: SqlLedger, reconcile_cli, store: StateStore
) -> None:
    """What the transactions importer wrote agrees with the broker's closed trades: exit 0."""
    server = serve(session["transactions"])
    _ingest(server, client_for, ledger)
    run = reconcile_cli(server)
    assert run.code == 0, run.err
    record = run.record
    assert record["mechanism"] == "reconcile" and record["decision"] == "clean"
    assert record["metrics"]["broker_trades"] == SESSION_TRADES
    assert record["metrics"]["matched"] == SESSION_TRADES
    assert record["findings"] == [] and record["instruments"] == ["USD_JPY"]
    (history,) = store.history.read().records
    assert history["run_id"] == record["run_id"]
    state = store.read_mechanism("reconcile")
    assert state["last_clean_at"] == record["at"] and state["last_decision"] == "clean"
    # the server was asked for closed trades only, read-only
    assert {r.query.get("state") for r in server.requests if r.path.endswith("/trades")} == {
        "CLOSED"
    }


def test_deleted_and_altered_rows_are_both_reported(
    session: dict[str, Any],
    serve,
    client_for,
    ledger: SqlLedger,
    ledger_url: str,
    reconcile_cli,
    store: StateStore,
) -> None:
    """One row deleted, one P/L altered: both reported, exit 1, status degraded; repaired: clean."""
    server = serve(session["transactions"])
    _ingest(server, client_for, ledger)
    rows = sorted(ledger.trades(), key=lambda t: int(t.broker_trade_id))
    gone, altered = rows[3], rows[7]
    with sqlite3.connect(ledger_url.removeprefix("sqlite:///")) as db:
        db.execute("DELETE FROM trades WHERE broker_trade_id = ?", (gone.broker_trade_id,))
    ledger.upsert_trades([dataclasses.replace(altered, pl_account=altered.pl_account + 1.5)])

    run = reconcile_cli(server)
    assert run.code == 1
    record = run.record
    assert record["decision"] == "mismatch" and record["findings_total"] == 2
    found = {(f["kind"], f["broker_trade_id"], f["field"]) for f in record["findings"]}
    assert found == {
        ("missing", gone.broker_trade_id, ""),
        ("differs", altered.broker_trade_id, "pl_account"),
    }
    differs = next(f for f in record["findings"] if f["kind"] == "differs")
    assert float(differs["ledger"]) == pytest.approx(altered.pl_account + 1.5)
    assert float(differs["broker"]) == pytest.approx(altered.pl_account)
    assert f"missing: trade {gone.broker_trade_id}" in run.err
    assert f"trade {altered.broker_trade_id} USD_JPY: pl_account" in run.err

    status = reconcile_cli(server, "--json", command="status")
    report = json.loads(status.out)
    assert status.code == 1
    assert report["reconcile"]["state"] == "mismatch"
    assert report["reconcile"]["text"].startswith("mismatch: 2 findings at ")
    assert any(p.startswith("reconcile mismatch: 2 findings") for p in report["problems"])
    doctor = json.loads(reconcile_cli(server, "--json", command="doctor").out)
    (check,) = [f for f in doctor if f["check"] == "reconcile"]
    assert check["severity"] == "warning" and "mismatch: 2 findings" in check["what"]

    ledger.upsert_trades([gone, altered])  # the repair
    assert reconcile_cli(server).code == 0
    after = json.loads(reconcile_cli(server, "--json", command="status").out)
    assert after["reconcile"]["state"] == "clean"
    assert after["reconcile"]["text"].startswith("last clean ")


def test_partial_closes_are_compared_as_one_broker_trade(
    partial: dict[str, Any], serve, client_for, ledger: SqlLedger, reconcile_cli
) -> None:
    """A trade closed in two fills is two ledger rows and one broker trade: they agree."""
    server = serve(partial["transactions"])
    _ingest(server, client_for, ledger)
    rows = ledger.trades()
    assert any(r.state.value == "PARTIAL" for r in rows)
    run = reconcile_cli(server)
    assert run.code == 0, run.err
    metrics = run.record["metrics"]
    assert metrics["ledger_rows"] == len(rows) > metrics["ledger_trades"] == metrics["matched"]


def test_ledger_trades_the_pages_missed_are_looked_up(
    session: dict[str, Any], serve, client_for, ledger: SqlLedger, reconcile_cli, broker_trades
) -> None:
    """A ledger trade the broker has OPEN and one it does not know are extra, after a lookup."""
    still_open = {
        **broker_trades(session["transactions"])[0],
        "id": "9990",
        "state": "OPEN",
        "closingTransactionIDs": [],
    }
    server = serve(
        session["transactions"],
        trades=[*broker_trades(session["transactions"]), still_open],
    )
    _ingest(server, client_for, ledger)
    last = max(t.close_at for t in ledger.trades())
    ledger.upsert_trades(
        [
            make_trade(close_at=last, pl_pips=1.0, broker_trade_id="9990", close_tx_id="9991"),
            make_trade(close_at=last, pl_pips=1.0, broker_trade_id="9995", close_tx_id="9996"),
        ]
    )
    run = reconcile_cli(server)
    assert run.code == 1
    extras = {f["broker_trade_id"]: f["detail"] for f in run.record["findings"]}
    assert set(extras) == {"9990", "9995"}
    assert "the broker has it OPEN" in extras["9990"]
    assert "unknown at the broker" in extras["9995"]
    assert run.record["metrics"]["lookups"] == 1  # 9995 answered 404: not a trade
    looked = [r.path for r in server.requests if r.path.split("/")[-1] in ("9990", "9995")]
    assert sorted(p.rsplit("/", 1)[-1] for p in looked) == ["9990", "9995"]


def test_broker_unavailable_is_recorded_and_exits_75(
    session: dict[str, Any], serve, client_for, ledger: SqlLedger, reconcile_cli, store: StateStore
) -> None:
    """503s on every try: exit 75, a broker_unavailable record, the last clean run kept."""
    server = serve(session["transactions"])
    _ingest(server, client_for, ledger)
    assert reconcile_cli(server).code == 0
    clean_at = store.read_mechanism("reconcile")["last_clean_at"]
    server.script(*[Fault.http(503, path_contains="/trades") for _ in range(5)])
    run = reconcile_cli(server)
    assert run.code == 75
    assert "failed after 5 attempt(s)" in run.err
    last = store.history.read().records[-1]
    assert last["decision"] == "broker_unavailable" and last["mechanism"] == "reconcile"
    state = store.read_mechanism("reconcile")
    assert state["last_clean_at"] == clean_at and state["last_attempt"] == "broker_unavailable"


def test_missing_token_is_a_config_error(serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without OANDA_TOKEN nothing is fetched and the run exits 78."""
    server = serve([])
    monkeypatch.delenv("OANDA_TOKEN", raising=False)
    code = main(["reconcile", "--account", ACCOUNT, "--oanda-url", server.base_url])
    assert code == 78
    assert server.requests == []


def test_second_run_while_locked_records_lock_busy(
    session: dict[str, Any], serve, client_for, ledger: SqlLedger, tmp_path: Path
) -> None:
    """A run that finds the reconcile lock held records lock_busy and fetches nothing."""
    server = serve(session["transactions"])
    store = StateStore(tmp_path / "state", load_registry(None))
    with store.lock("reconcile"):
        record = run_reconcile(
            store=store,
            broker=client_for(server),
            ledger=ledger,
            account_id=ACCOUNT,
            config=ReconcileConfig(),
            now=datetime(2025, 10, 23, tzinfo=UTC),
        )
    assert record["decision"] == "lock_busy"
    assert server.requests == []
    assert store.history.read().records[-1]["decision"] == "lock_busy"


def _keyed(ledger: SqlLedger) -> dict[tuple[str, str], Any]:
    return {(t.broker_trade_id, t.close_tx_id): t for t in ledger.trades()}


def test_repair_fetches_by_id_what_ingest_never_fetches_again(
    session: dict[str, Any],
    serve,
    client_for,
    ledger: SqlLedger,
    ledger_url: str,
    reconcile_cli,
    store: StateStore,
    tmp_path: Path,
) -> None:
    """Trades behind the cursor, a wrong P/L and a close after now: --repair fixes all, recorded."""
    server = serve(session["transactions"])
    first = ingest_transactions(client_for(server), ACCOUNT, ledger, initial_since_id="4530")
    assert first.rejected == ()
    again = ingest_transactions(client_for(server), ACCOUNT, ledger)
    assert again.trades_written == 0  # resumes at its cursor: the 4 earlier trades never come
    rows = sorted(ledger.trades(), key=lambda t: int(t.broker_trade_id))
    altered, future = rows[0], rows[1]
    ledger.upsert_trades(
        [dataclasses.replace(altered, pl_account=altered.pl_account + 1.5, strategy="Bot-Label")]
    )
    with sqlite3.connect(ledger_url.removeprefix("sqlite:///")) as db:  # an old, unchecked row
        db.execute(
            "UPDATE trades SET close_at_us = ? WHERE broker_trade_id = ?",
            (
                int((datetime.now(UTC) + timedelta(days=2)).timestamp() * 1e6),
                future.broker_trade_id,
            ),
        )

    plain = reconcile_cli(server)
    assert plain.code == 1
    kinds = {(f["kind"], f["broker_trade_id"], f["field"]) for f in plain.record["findings"]}
    assert kinds == {
        *{("missing", t, "") for t in ("4419", "4471", "4499", "4515")},
        ("differs", altered.broker_trade_id, "pl_account"),
        ("differs", future.broker_trade_id, "close_at"),
    }

    run = reconcile_cli(server, "--repair")
    assert run.code == 0, run.err
    record = run.record
    assert record["decision"] == "clean" and record["reasons"][0] == "repaired:6"
    repair = record["repair"]
    assert repair["before"]["findings_total"] == 6 and repair["failed"] == []
    assert repair["rows"] == {"inserted": 4, "updated": 2, "unchanged": 0}
    assert "repair: 6 of 6 trade(s) fetched by id" in run.err
    fetched = {r.path.rsplit("/", 1)[-1] for r in server.requests if "/transactions/" in r.path}
    assert {"4419", "4443", "4515", "4527"} <= fetched  # opening fill and closing transaction
    assert store.history.read().records[-1]["repair"]["repaired"] == sorted(
        repair["repaired"], key=int
    )
    assert store.read_mechanism("reconcile")["last_repair_at"] == record["at"]

    # the repaired ledger is the one a full ingest writes; the bot's own label was kept
    full = SqlLedger.open(f"sqlite:///{tmp_path / 'full.db'}")
    try:
        assert ingest_transactions(client_for(server), ACCOUNT, full).rejected == ()
        expected, got = _keyed(full), _keyed(ledger)
    finally:
        full.close()
    assert set(got) == set(expected)
    key = (altered.broker_trade_id, altered.close_tx_id)
    assert got[key].strategy == "Bot-Label"
    assert dataclasses.replace(got[key], strategy=expected[key].strategy) == expected[key]
    assert all(got[k] == expected[k] for k in expected if k != key)

    # idempotent: nothing left to repair, nothing written
    again_run = reconcile_cli(server, "--repair")
    assert again_run.code == 0 and "repair" not in again_run.record
    status = json.loads(reconcile_cli(server, "--json", command="status").out)
    assert status["reconcile"]["state"] == "clean"


def test_repair_cannot_delete_an_extra_trade_and_says_so(
    session: dict[str, Any], serve, client_for, ledger: SqlLedger, reconcile_cli
) -> None:
    """An extra trade is not fetched or removed: the re-check still reports it, exit 1."""
    server = serve(session["transactions"])
    _ingest(server, client_for, ledger)
    last = max(t.close_at for t in ledger.trades())
    ledger.upsert_trades(
        [make_trade(close_at=last, pl_pips=1.0, broker_trade_id="9995", close_tx_id="9996")]
    )
    run = reconcile_cli(server, "--repair")
    assert run.code == 1
    assert "repair" not in run.record  # nothing repairable: no fetch by id
    assert [f["kind"] for f in run.record["findings"]] == ["extra"]


def test_status_and_doctor_point_at_the_repair(
    session: dict[str, Any], serve, client_for, ledger: SqlLedger, ledger_url: str, reconcile_cli
) -> None:
    """After a mismatch, status and doctor name `reconcile --repair`, not `ingest --oanda`."""
    server = serve(session["transactions"])
    _ingest(server, client_for, ledger)
    with sqlite3.connect(ledger_url.removeprefix("sqlite:///")) as db:
        db.execute("DELETE FROM trades WHERE broker_trade_id = '4419'")
    assert reconcile_cli(server).code == 1
    report = json.loads(reconcile_cli(server, "--json", command="status").out)
    (problem,) = [p for p in report["problems"] if p.startswith("reconcile mismatch")]
    assert "reconcile --repair" in problem and "ingest --oanda" not in problem
    doctor = json.loads(reconcile_cli(server, "--json", command="doctor").out)
    (check,) = [f for f in doctor if f["check"] == "reconcile"]
    assert "reconcile --account ID --repair" in check["fix"]
    assert "ingest --oanda" not in check["fix"]
