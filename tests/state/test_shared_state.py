"""The shared state of several hosts on PostgreSQL (``AUTOLEARN_STATE_URL``, issue 19 item 3).

Two "hosts" are two state dirs (and processes) on one account of the local PostgreSQL. Before
this store each host kept its own ``effective.json``: two hosts applied the same block twice,
served two versions after conflicting ``set``s, and each host's judge dropped the trades of the
other's versions (no local snapshot). Here: one version served everywhere, one apply per
decision, ``lock_busy`` for the loser, every record in every host's replica once and in order.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from autolearn.adapters.shared_state import SharedState
from autolearn.adapters.state import StateStore
from autolearn.cli import main
from autolearn.core.apply_guard import ApplyKind
from autolearn.core.model import Trade
from autolearn.errors import StateError, StateUnavailable
from autolearn.gates.config import load_gates_config
from autolearn.ledger.sql import SqlLedger
from autolearn.mechanism import base_record, run_locked, version_context
from autolearn.ops.hosts import REFRESH_GRACE, ServedVersion, compare_hosts
from autolearn.policy.cycle import run_policy
from autolearn.runtime import Tuning
from autolearn.settings import load_registry

REGISTRY = load_registry(None)
KNOB = "exit.lowvol.upper_bound_max_sec"  # tuner-owned float, preset 3.6
UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/x"  # nothing listens on port 1
_BOUND_S = 60.0


def _scope() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def _host(root: Path, url: str, scope: str, name: str) -> StateStore:
    return StateStore(root / name, REGISTRY, shared=SharedState(url, scope, host=name))


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _set(store: StateStore, value: float, run_id: str, now: datetime | None = None) -> str:
    result = store.apply(
        "operator",
        {KNOB: value},
        now or _now(),
        kind=ApplyKind.OPERATOR,
        record={"run_id": run_id, "mechanism": "operator", "decision": "set"},
    )
    assert result.applied, result.decisions
    return result.version_after


def _run_ids(store: StateStore) -> list[str]:
    return [str(r.get("run_id")) for r in store.history.read().records]


@pytest.fixture(name="fresh_db")
def fixture_fresh_db(pg_url: str) -> Iterator[str]:
    """A database of this test alone (created empty, dropped after)."""
    name = f"autolearn_t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


class TestOneVersionEverywhere:
    def test_conflicting_sets_on_two_hosts_leave_one_version_served_by_every_worker(
        self, tmp_path: Path, pg_url: str
    ) -> None:
        """A sets 3.9, B sets 4.2, A sets 3.7: both hosts read one layer and every worker
        (on A, on B, on a third host with no CLI at all) serves its version; before, A served
        one version and B another."""
        scope = _scope()
        a, b = _host(tmp_path, pg_url, scope, "a"), _host(tmp_path, pg_url, scope, "b")
        _set(a, 3.9, "r1")
        _set(b, 4.2, "r2")
        last = _set(a, 3.7, "r3")
        assert a.read_effective().version == b.read_effective().version == last
        workers = [
            Tuning(tmp_path / name, REGISTRY, shared=SharedState(pg_url, scope, host=name))
            for name in ("a", "b", "c")
        ]
        assert {w.config_version for w in workers} == {last}
        assert {w.get(KNOB) for w in workers} == {3.7}
        assert all(w.degraded is None for w in workers)

    def test_a_worker_follows_a_switch_on_another_host_without_blocking(
        self, tmp_path: Path, pg_url: str
    ) -> None:
        """A worker on host C serves A's new version within its refresh; ``get`` never waits
        on the network (the refresh is a background thread's); its heartbeat names it."""
        scope = _scope()
        a = _host(tmp_path, pg_url, scope, "a")
        first = _set(a, 3.9, "r1")
        worker = Tuning(
            tmp_path / "c", REGISTRY, refresh_s=0.01, shared=SharedState(pg_url, scope, host="c")
        )
        assert worker.config_version == first
        second = _set(a, 4.1, "r2")
        deadline = time.monotonic() + _BOUND_S
        while worker.config_version != second:
            assert time.monotonic() < deadline, "the worker never saw the new version"
            time.sleep(0.01)
        assert worker.get(KNOB) == 4.1
        worker.refresh()  # a heartbeat at the latest now (on change)
        served = SharedState(pg_url, scope).hosts()
        assert [(s.host, s.version) for s in served] == [("c", second)]

    def test_the_judge_on_one_host_finds_the_snapshots_of_the_others_versions(
        self, tmp_path: Path, pg_url: str, make_trade: Callable[..., Trade]
    ) -> None:
        """Trades pinned to a version host A applied are attributed on host B (before, B had
        no snapshot of it and dropped them as unattributed)."""
        scope = _scope()
        a, b = _host(tmp_path, pg_url, scope, "a"), _host(tmp_path, pg_url, scope, "b")
        version = _set(a, 3.9, "r1")
        at = datetime(2025, 10, 1, tzinfo=UTC)
        trades = [
            make_trade(close_at=at + timedelta(minutes=i), pl_pips=1.0, config_version=version)
            for i in range(2)
        ]
        _, layers = version_context(b, trades, b.read_effective().version)
        assert layers[version] == {KNOB: 3.9}
        assert b.read_snapshot(version)["values"] == {KNOB: 3.9}
        assert [d["version"] for d in b.list_snapshots()] == [version]

    def test_a_freeze_on_one_host_stops_the_mechanism_on_every_host(
        self, tmp_path: Path, pg_url: str
    ) -> None:
        scope = _scope()
        a, b = _host(tmp_path, pg_url, scope, "a"), _host(tmp_path, pg_url, scope, "b")
        a.set_control("tuner", {"frozen": True, "reason": "news day"})
        assert b.is_frozen("tuner") == (True, "news day")
        b.write_mechanism("tuner", {"mode": "probation"})
        assert a.read_mechanism("tuner") == {"mode": "probation"}
        a.sync()  # the replica holds them too
        assert StateStore(tmp_path / "a", REGISTRY).read_mechanism("tuner") == {"mode": "probation"}
        assert StateStore(tmp_path / "a", REGISTRY).is_frozen("tuner") == (True, "news day")


class TestOneApplyPerDecision:
    def _losing(self, make_trade: Callable[..., Trade], start: datetime) -> list[Trade]:
        pattern = [-2.0, -1.5, -2.5, 0.6, -1.8, -2.2, -1.2, 0.4]
        return [
            make_trade(close_at=start + timedelta(minutes=20 * i), pl_pips=pattern[i % 8])
            for i in range(16)
        ]

    def test_the_policy_on_two_hosts_blocks_a_losing_pocket_once(
        self, tmp_path: Path, pg_url: str, make_trade: Callable[..., Trade]
    ) -> None:
        """Host A's policy run blocks the pocket; host B's run, on the same ledger and the
        shared state, finds it blocked and applies nothing: one apply record, not two."""
        scope = _scope()
        a, b = _host(tmp_path, pg_url, scope, "a"), _host(tmp_path, pg_url, scope, "b")
        start = datetime(2025, 10, 1, tzinfo=UTC)
        now = start + timedelta(hours=6)
        with SqlLedger.open(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
            ledger.upsert_trades(self._losing(make_trade, start))
            first = run_policy(ledger=ledger, store=a, config=load_gates_config(), now=now)
            second = run_policy(
                ledger=ledger, store=b, config=load_gates_config(), now=now + timedelta(minutes=5)
            )
        assert first["decision"] == "apply"
        assert second["decision"] != "apply"
        b.sync()
        applied = [r for r in b.history.read().records if r.get("applied")]
        assert [(r["mechanism"], r["host"]) for r in applied] == [("policy", "a")]
        assert b.current_values()["pockets.micro.allow_new"] is False

    def test_the_second_host_records_lock_busy_while_the_first_runs(
        self, tmp_path: Path, pg_url: str
    ) -> None:
        """While host A (another process) holds the policy's run, host B's run records
        ``lock_busy`` in the shared history (its body never runs), seen on host A too."""
        scope = _scope()
        flag = tmp_path / "held"
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(tmp_path / "a"), pg_url, scope, str(flag)],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + _BOUND_S
            while not flag.exists():
                assert holder.poll() is None, holder.stderr.read() if holder.stderr else ""
                assert time.monotonic() < deadline, "the holder never took the lock"
                time.sleep(0.01)
            b = _host(tmp_path, pg_url, scope, "b")
            ran: list[str] = []
            base = base_record("policy", _now(), shadow=False, run_id="b1")
            record = run_locked(b, base, lambda: ran.append("b") or {"decision": "ran"})
            assert record["decision"] == "lock_busy" and ran == []
        finally:
            holder.kill()
            holder.wait(timeout=_BOUND_S)
        a = _host(tmp_path, pg_url, scope, "a")
        a.sync()
        assert [(r["decision"], r["host"]) for r in a.history.read().records] == [
            ("lock_busy", "b")
        ]


_HOLDER = """
import sys, time
from pathlib import Path
from autolearn.adapters.shared_state import SharedState
from autolearn.adapters.state import StateStore
from autolearn.settings import load_registry
root, url, scope, flag = sys.argv[1:]
store = StateStore(Path(root), load_registry(None), shared=SharedState(url, scope, host="a"))
with store.lock("policy"):
    Path(flag).write_text("held")
    time.sleep(3600)  # until killed
"""


_APPENDER = """
import sys
from pathlib import Path
from autolearn.adapters.shared_state import SharedState
from autolearn.adapters.state import StateStore
from autolearn.settings import load_registry
url, scope, root, host, n = sys.argv[1:]
store = StateStore(Path(root), load_registry(None), shared=SharedState(url, scope, host=host))
for i in range(int(n)):
    store.record({"run_id": f"{host}-{i}", "mechanism": "tuner", "decision": f"d{i}"})
"""


class TestHistoryReplica:
    def test_concurrent_hosts_records_reach_every_replica_once_in_one_order(
        self, tmp_path: Path, pg_url: str
    ) -> None:
        """4 host processes append 40 records each at once: every host's history.jsonl ends
        with all 160, each once, in the same (commit) order."""
        scope = _scope()
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _APPENDER,
                    pg_url,
                    scope,
                    str(tmp_path / f"h{i}"),
                    f"h{i}",
                    "40",
                ],
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(4)
        ]
        for p in procs:
            _, err = p.communicate(timeout=_BOUND_S * 3)
            assert p.returncode == 0, err
        orders = []
        for i in range(4):
            host = _host(tmp_path, pg_url, scope, f"h{i}")
            host.sync()
            orders.append(_run_ids(host))
        assert len(orders[0]) == 160 == len(set(orders[0]))
        assert all(order == orders[0] for order in orders)
        seqs = [
            r["shared_seq"] for r in _host(tmp_path, pg_url, scope, "h0").history.read().records
        ]
        assert seqs == list(range(1, 161))

    def test_a_crash_before_the_watermark_is_written_duplicates_nothing(
        self, tmp_path: Path, pg_url: str
    ) -> None:
        """Records appended to the replica but not yet counted in replica.json (a crash in
        between, put back here) are found in the history itself: the next sync adds none twice."""
        scope = _scope()
        a, b = _host(tmp_path, pg_url, scope, "a"), _host(tmp_path, pg_url, scope, "b")
        a.record({"run_id": "r1", "mechanism": "tuner", "decision": "hold"})
        b.sync()
        before = (tmp_path / "b" / "replica.json").read_bytes()
        a.record({"run_id": "r2", "mechanism": "tuner", "decision": "hold"})
        a.record({"run_id": "r3", "mechanism": "tuner", "decision": "hold"})
        assert b.sync() == 2
        (tmp_path / "b" / "replica.json").write_bytes(before)  # the crash: an old watermark
        assert b.sync() == 0
        assert _run_ids(b) == ["r1", "r2", "r3"]

    def test_a_crash_in_a_hosts_first_sync_leaves_a_replica_not_own_history(
        self, tmp_path: Path, pg_url: str
    ) -> None:
        """The watermark is written before a new host's first append: a crash after appending
        (the watermark put back as it was then) is a replica that resumes, not "own history"."""
        scope = _scope()
        a = _host(tmp_path, pg_url, scope, "a")
        for i in range(3):
            a.record({"run_id": f"r{i}", "mechanism": "tuner", "decision": "hold"})
        b = _host(tmp_path, pg_url, scope, "b")
        assert b.sync() == 3
        (tmp_path / "b" / "replica.json").write_text(
            json.dumps({"schema_version": 1, "seq": 0, "position": 0, "docs_seq": 0})
        )
        assert b.sync() == 0
        assert _run_ids(b) == ["r0", "r1", "r2"]

    def test_a_corrupt_shared_document_is_not_copied_and_blocks_nothing_else(
        self, tmp_path: Path, pg_url: str
    ) -> None:
        """A hand-edited shared mechanism document that is not JSON: every host's sync goes on
        (the other documents and records are copied), its local copy is kept, and reading it
        names the shared document."""
        scope = _scope()
        a = _host(tmp_path, pg_url, scope, "a")
        a.write_mechanism("tuner", {"mode": "probation"})
        a.sync()
        assert a.shared is not None
        a.shared.put("mechanisms/tuner.json", b"{not json")
        a.record({"run_id": "r1", "mechanism": "tuner", "decision": "hold"})
        b = _host(tmp_path, pg_url, scope, "b")
        b.sync()
        assert _run_ids(b) == _run_ids(a) == ["r1"]
        assert StateStore(tmp_path / "a", REGISTRY).read_mechanism("tuner") == {"mode": "probation"}
        with pytest.raises(StateError, match=r"mechanisms/tuner.json of the shared state.*JSON"):
            b.read_mechanism("tuner")

    def test_a_hosts_own_follow_watermarks_stay_its_own(self, tmp_path: Path, pg_url: str) -> None:
        """``follow`` watermarks are of this host's trades.db files: never in the shared state,
        never copied over another host's."""
        scope = _scope()
        a, b = _host(tmp_path, pg_url, scope, "a"), _host(tmp_path, pg_url, scope, "b")
        a.write_mechanism("follow", {"files": {"/bot/trades.db": 10}})
        b.write_mechanism("follow", {"files": {"/bot/trades.db": 99}})
        a.sync()
        assert a.read_mechanism("follow") == {"files": {"/bot/trades.db": 10}}
        assert a.shared is not None and a.shared.get("mechanisms/follow.json") is None

    def test_a_dir_with_its_own_history_is_refused_not_mixed(
        self, tmp_path: Path, pg_url: str
    ) -> None:
        """A host that kept its own state before sharing must not interleave it with the shared
        records: sync refuses, naming the two ways out; nothing is appended."""
        own = StateStore(tmp_path / "b", REGISTRY)
        own.record({"run_id": "local-1", "mechanism": "tuner", "decision": "hold"})
        scope = _scope()
        _set(_host(tmp_path, pg_url, scope, "a"), 3.9, "r1")
        b = _host(tmp_path, pg_url, scope, "b")
        with pytest.raises(StateError, match=r"autolearn share.*move the state dir aside"):
            b.sync()
        assert _run_ids(own) == ["local-1"]


class TestShare:
    def test_a_control_host_moves_its_state_into_the_shared_store(
        self, tmp_path: Path, pg_url: str
    ) -> None:
        """`share` uploads a host's snapshots, switches, effective layer and history; another
        host then serves that version and replicates that history; a second share is refused."""
        local = StateStore(tmp_path / "a", REGISTRY)
        _set(local, 3.9, "r1")
        version = _set(local, 4.0, "r2")
        local.set_control("tuner", {"frozen": True, "reason": "x"})
        scope = _scope()
        a = _host(tmp_path, pg_url, scope, "a")
        assert a.share(_now()) == 2
        b = _host(tmp_path, pg_url, scope, "b")
        b.sync()
        assert b.read_effective().version == version
        assert b.is_frozen("tuner") == (True, "x")
        assert _run_ids(b) == ["r1", "r2"] == _run_ids(a)
        assert len(b.list_snapshots()) == 2
        a.record({"run_id": "r3", "mechanism": "tuner", "decision": "hold"})
        assert _run_ids(a) == ["r1", "r2", "r3"]  # the uploaded records are not copied back
        with pytest.raises(StateError, match="not empty: nothing uploaded"):
            b.share(_now())
        c = _host(tmp_path, pg_url, _scope(), "c")  # a switch alone makes the state non-empty
        c.set_control("tuner", {"frozen": True, "reason": "y"})
        with pytest.raises(StateError, match="not empty: nothing uploaded"):
            StateStore(tmp_path / "a", REGISTRY, shared=c.shared).share(_now())
        alone = StateStore(tmp_path / "b", REGISTRY)  # back to one host: B's replica is whole
        assert alone.read_effective().version == version
        assert alone.is_frozen("tuner") == (True, "x")
        assert len(alone.list_snapshots()) == 2
        assert alone.read_snapshot(version)["values"] == {KNOB: 4.0}

    def test_the_cli_share_then_status_on_another_host(
        self,
        tmp_path: Path,
        pg_url: str,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """`autolearn share` on A; `status --json` on B reports the shared state, the version
        and the hosts; a host serving another version past the grace makes status degraded."""
        scope = _scope()
        local = StateStore(tmp_path / "a", REGISTRY)
        version = _set(local, 3.9, "r1")
        monkeypatch.setenv("AUTOLEARN_STATE_URL", pg_url)
        monkeypatch.setenv("AUTOLEARN_ACCOUNT", scope)
        monkeypatch.setenv("AUTOLEARN_LEDGER_URL", f"sqlite:///{tmp_path / 'l.db'}")
        monkeypatch.setenv("AUTOLEARN_HOST", "a")
        assert main(["--state-dir", str(tmp_path / "a"), "share"]) == 0
        assert json.loads(capsys.readouterr().out.strip())["version"] == version
        shared = SharedState(pg_url, scope, host="b")
        shared.heartbeat("worker", version, process="1")
        monkeypatch.setenv("AUTOLEARN_HOST", "b")
        main(["--state-dir", str(tmp_path / "b"), "status", "--json"])
        report = json.loads(capsys.readouterr().out)
        assert report["effective"]["version"] == version
        assert [h["host"] for h in report["shared_state"]["hosts"]] == ["b"]
        assert not any("serves" in p for p in report["problems"])
        SharedState(pg_url, scope, host="c").heartbeat("worker", "v000000000000", process="9")
        with sa.create_engine(pg_url).begin() as conn:  # the switch was long ago
            conn.execute(
                sa.text(
                    "UPDATE state_docs SET body = regexp_replace(body, "
                    '\'"updated_at": "[^"]*"\', \'"updated_at": "2020-01-01T00:00:00Z"\') '
                    "WHERE scope = :s AND name = 'effective.json'"
                ),
                {"s": scope},
            )
        main(["--state-dir", str(tmp_path / "b"), "status", "--json"])
        report = json.loads(capsys.readouterr().out)
        assert any("host c serves v000000000000, not the shared" in p for p in report["problems"])
        assert report["exit_code"] >= 1


class TestAtomicAndDegraded:
    def test_a_switch_whose_record_fails_changes_nothing(
        self, tmp_path: Path, fresh_db: str
    ) -> None:
        """A database that refuses the run record (a trigger, here) refuses the switch with it:
        the version stays, no record, and the error says nothing was written."""
        scope = _scope()
        a = _host(tmp_path, fresh_db, scope, "a")
        before = _set(a, 3.9, "r1")
        with sa.create_engine(fresh_db).begin() as conn:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'disk full'; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON state_records "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        with pytest.raises(StateUnavailable, match="disk full; nothing was written"):
            _set(a, 4.4, "r2")
        b = _host(tmp_path, fresh_db, scope, "b")
        assert b.read_effective().version == before
        assert SharedState(fresh_db, scope).head() == 1

    def test_concurrent_first_use_of_a_fresh_database(self, tmp_path: Path, fresh_db: str) -> None:
        """6 hosts start on an empty database at once: the tables are created once, every
        host's record lands."""
        scope = _scope()
        errors: list[BaseException] = []

        def start(i: int) -> None:
            try:
                _host(tmp_path, fresh_db, scope, f"h{i}").record(
                    {"run_id": f"h{i}", "mechanism": "tuner", "decision": "hold"}
                )
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert SharedState(fresh_db, scope).head() == 6

    def test_a_worker_keeps_its_version_when_the_server_goes_away(
        self, tmp_path: Path, fresh_db: str
    ) -> None:
        """The database is dropped under a serving worker: ``get`` keeps answering the last
        good values, never raises, and the worker reports itself degraded."""
        scope = _scope()
        version = _set(_host(tmp_path, fresh_db, scope, "a"), 3.9, "r1")
        worker = Tuning(
            tmp_path / "w", REGISTRY, refresh_s=0.01, shared=SharedState(fresh_db, scope)
        )
        assert worker.config_version == version
        admin = sa.create_engine(
            sa.make_url(fresh_db).set(database="postgres"), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            name = sa.make_url(fresh_db).database
            conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.dispose()
        worker.refresh()
        assert worker.degraded is not None and "shared state" in worker.degraded
        assert (worker.config_version, worker.get(KNOB)) == (version, 3.9)

    def test_a_cold_start_without_the_server_serves_the_hosts_replica(
        self, tmp_path: Path, pg_url: str
    ) -> None:
        """A worker starting while the server is down serves the version this host's replica
        holds (``effective.json``, copied by every sync), degraded; not the presets."""
        scope = _scope()
        a = _host(tmp_path, pg_url, scope, "a")
        version = _set(a, 3.9, "r1")
        assert (tmp_path / "a" / "effective.json").exists()
        worker = Tuning(tmp_path / "a", REGISTRY, shared=SharedState(UNREACHABLE, scope))
        assert (worker.config_version, worker.get(KNOB)) == (version, 3.9)
        assert worker.degraded is not None


class TestServerDown:
    def test_status_reports_the_replica_and_why_when_the_server_is_down(
        self,
        tmp_path: Path,
        pg_url: str,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """`status` on a host whose shared state does not answer: the replica's version and
        a problem naming the server (degraded), not a failed command."""
        scope = _scope()
        a = _host(tmp_path, pg_url, scope, "a")
        version = _set(a, 3.9, "r1")
        monkeypatch.setenv("AUTOLEARN_STATE_URL", UNREACHABLE)
        monkeypatch.setenv("AUTOLEARN_ACCOUNT", scope)
        monkeypatch.setenv("AUTOLEARN_LEDGER_URL", f"sqlite:///{tmp_path / 'l.db'}")
        code = main(["--state-dir", str(tmp_path / "a"), "status", "--json"])
        report = json.loads(capsys.readouterr().out)
        assert code == report["exit_code"] >= 1
        assert report["effective"]["version"] == version
        assert any(p.startswith("shared state unreachable") for p in report["problems"])

    def test_get_is_served_while_a_refresh_waits_on_a_silent_server(
        self, tmp_path: Path, pg_url: str
    ) -> None:
        """A server that accepts connections and never answers: the cold start falls back to
        the replica, and while a background refresh hangs on the server, ``get`` answers
        (it is served before that refresh ends: it never waited for its lock)."""
        import socket

        scope = _scope()
        version = _set(_host(tmp_path, pg_url, scope, "a"), 3.9, "r1")
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # never accepted: a connect hangs until its timeout
        try:
            port = silent.getsockname()[1]
            url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/x?connect_timeout=3"
            worker = Tuning(tmp_path / "a", REGISTRY, refresh_s=0.0, shared=SharedState(url))
            assert (worker.config_version, worker.degraded is not None) == (version, True)
            worker.get(KNOB)  # starts the background refresh, which hangs
            deadline = time.monotonic() + _BOUND_S
            while not worker._refreshing:
                assert time.monotonic() < deadline
                time.sleep(0.001)
            assert worker.get(KNOB) == 3.9
            assert worker._refreshing
        finally:
            silent.close()


class TestCompareHosts:
    NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    def _row(self, host: str, version: str, ago_s: float, process: str = "1") -> ServedVersion:
        return ServedVersion(host, process, "worker", version, self.NOW - timedelta(seconds=ago_s))

    def test_a_live_host_on_another_version_after_the_grace_is_a_problem(self) -> None:
        rows = [self._row("a", "v1", 5), self._row("b", "v0", 5), self._row("b", "v1", 5, "2")]
        switched = self.NOW - REFRESH_GRACE - timedelta(seconds=1)
        hosts = compare_hosts(rows, "v1", switched, self.NOW)
        assert [(h.host, h.versions, h.problem is None) for h in hosts] == [
            ("a", ("v1",), True),
            ("b", ("v0", "v1"), False),
        ]
        assert "host b serves v0, not the shared v1 (1 of 2 live processes" in str(hosts[1].problem)

    def test_within_the_grace_or_when_gone_it_is_not(self) -> None:
        rows = [self._row("b", "v0", 5), self._row("c", "v0", 3600)]
        assert all(h.problem is None for h in compare_hosts(rows, "v1", self.NOW, self.NOW))
        late = self.NOW - timedelta(hours=1)
        hosts = compare_hosts(rows, "v1", late, self.NOW)
        assert [h.host for h in hosts if h.problem] == ["b"]  # c said nothing for an hour
        assert hosts[1].live == 0

    def test_an_unreadable_shared_version_compares_nothing(self) -> None:
        assert all(
            h.problem is None
            for h in compare_hosts([self._row("b", "v0", 1)], None, None, self.NOW)
        )


class TestWorkerConnect:
    def test_connect_serves_the_shared_version_and_its_gate_overrides(
        self, tmp_path: Path, pg_url: str
    ) -> None:
        """``autolearn.connect`` with AUTOLEARN_STATE_URL: the bot's knobs and the gates' operator
        overrides come from the shared state another host wrote, not from this host's dir."""
        import autolearn
        from autolearn.settings import Settings

        scope = _scope()
        a = _host(tmp_path, pg_url, scope, "a")
        version = _set(a, 3.9, "r1")
        a.write_mechanism("gates", {"overrides": {"refresh_s": 7.0}})
        env = {"AUTOLEARN_STATE_URL": pg_url, "AUTOLEARN_ACCOUNT": scope, "AUTOLEARN_HOST": "w"}
        settings = Settings.resolve(bot_root=tmp_path / "bot", env=env)
        with autolearn.connect(settings) as worker:
            assert (worker.tuning.config_version, worker.tuning.get(KNOB)) == (version, 3.9)
            assert worker.gates.config.refresh_s == 7.0
        # the worker kept its host's replica of the layer it serves (for a cold start offline)
        replica = StateStore(settings.state_dir, REGISTRY).read_effective()
        assert (replica.version, replica.values) == (version, {KNOB: 3.9})

    def test_the_gates_start_on_the_replica_when_the_server_is_down(
        self, tmp_path: Path, pg_url: str
    ) -> None:
        """Gates.open while the shared state's server does not answer: the operator's gate
        overrides from the host's replica, not a crash of the bot at start-up."""
        from autolearn.gates import Gates

        scope = _scope()
        a = _host(tmp_path, pg_url, scope, "a")
        a.write_mechanism("gates", {"overrides": {"refresh_s": 7.0}})
        a.sync()
        gates = Gates.open(
            f"sqlite:///{tmp_path / 'l.db'}",
            tmp_path / "a",
            REGISTRY,
            shared=SharedState(UNREACHABLE, scope),
        )
        try:
            assert gates.config.refresh_s == 7.0
        finally:
            gates.close()
