"""One runner per (account, mechanism) across hosts: the run locks on PostgreSQL
(``AUTOLEARN_LOCK_URL``). Two "hosts" are two state dirs; an advisory lock is per session, so two
stores in one process conflict as two machines do."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from autolearn.adapters.pg_lock import RunLocks, advisory_key, run_lock_name
from autolearn.adapters.state import StateStore
from autolearn.autotune.shared import _lock_name as _autotune_lock_name
from autolearn.cli import main
from autolearn.cli._common import run_locks
from autolearn.errors import ConfigError, LockBusy, LockUnavailable
from autolearn.ledger.sql import SqlLedger
from autolearn.mechanism import base_record, run_locked
from autolearn.settings import Settings, load_registry

REGISTRY = load_registry(None)
NOW = datetime(2025, 10, 23, 3, 0, tzinfo=UTC)
UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/x"  # nothing listens on port 1
_BOUND_S = 60.0  # an upper bound for a subprocess to start or a server to notice a death


def _scope() -> str:
    """An account key of this test alone (other runs may share the server)."""
    return f"test-{uuid.uuid4().hex[:12]}"


def _store(root: Path, url: str | None, scope: str = "") -> StateStore:
    locks = None if url is None else RunLocks(url, scope)
    return StateStore(root, REGISTRY, run_locks=locks)


def _run(store: StateStore, mechanism: str, body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    base = base_record(mechanism, NOW, shadow=True, run_id=uuid.uuid4().hex)
    return run_locked(store, base, body)


def _ran() -> dict[str, Any]:
    return {"decision": "ran"}


def _decisions(store: StateStore) -> list[str]:
    return [str(r["decision"]) for r in store.history.read().records]


def _wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    """Until the subprocess wrote ``path`` (bounded; its death fails at once)."""
    deadline = time.monotonic() + _BOUND_S
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(
                f"lock holder exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"lock holder did not signal {path} within {_BOUND_S:g} s")
        time.sleep(0.01)


_HOLDER = """
import sys, time
from pathlib import Path
from autolearn.adapters.pg_lock import RunLocks
from autolearn.adapters.state import StateStore
from autolearn.settings import load_registry
root, url, scope, mechanism, flag = sys.argv[1:]
store = StateStore(Path(root), load_registry(None), run_locks=RunLocks(url, scope))
with store.lock(mechanism):
    Path(flag).write_text("held")
    time.sleep(3600)  # until killed
"""


@contextmanager
def _holder(root: Path, url: str, scope: str, mechanism: str) -> Iterator[subprocess.Popen[str]]:
    """Another host's run holding ``mechanism``'s lock in a process of its own."""
    flag = root.parent / f"{root.name}.held"
    argv = [sys.executable, "-c", _HOLDER, str(root), url, scope, mechanism, str(flag)]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(flag, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=_BOUND_S)
        if proc.stderr:
            proc.stderr.close()


class TestAcrossHosts:
    def test_a_second_host_records_lock_busy_then_runs_after_the_first(
        self, tmp_path: Path, pg_url: str
    ) -> None:
        """While host A's run is in its body, host B's run of the mechanism records lock_busy
        (its body never runs); once A is done, B runs."""
        scope = _scope()
        host_a, host_b = (
            _store(tmp_path / "a", pg_url, scope),
            _store(tmp_path / "b", pg_url, scope),
        )
        ran_b: list[str] = []

        def body_b() -> dict[str, Any]:
            ran_b.append("b")
            return _ran()

        def body_a() -> dict[str, Any]:
            inner = _run(host_b, "tuner", body_b)
            assert inner["decision"] == "lock_busy"
            return _ran()

        assert _run(host_a, "tuner", body_a)["decision"] == "ran"
        assert ran_b == []
        assert _decisions(host_b) == ["lock_busy"]
        assert _decisions(host_a) == []  # A's own record is its body's to write
        assert _run(host_b, "tuner", body_b)["decision"] == "ran"
        assert ran_b == ["b"]

    def test_another_account_or_mechanism_runs_at_once(self, tmp_path: Path, pg_url: str) -> None:
        """The key is (account, mechanism): another account's tuner and this account's policy
        run while this account's tuner is held."""
        scope = _scope()
        host_a = _store(tmp_path / "a", pg_url, scope)
        other_account = _store(tmp_path / "b", pg_url, _scope())
        same_account = _store(tmp_path / "c", pg_url, scope)
        inner: list[str] = []

        def body_a() -> dict[str, Any]:
            inner.append(_run(other_account, "tuner", _ran)["decision"])
            inner.append(_run(same_account, "policy", _ran)["decision"])
            return _ran()

        assert _run(host_a, "tuner", body_a)["decision"] == "ran"
        assert inner == ["ran", "ran"]

    def test_a_killed_holder_frees_the_lock(self, tmp_path: Path, pg_url: str) -> None:
        """A host's run killed with SIGKILL mid-run leaves no stale lock: its session dies
        with it and the next run on another host takes the lock."""
        scope = _scope()
        host_b = _store(tmp_path / "b", pg_url, scope)
        with _holder(tmp_path / "a", pg_url, scope, "autotune") as proc:
            assert _run(host_b, "autotune", _ran)["decision"] == "lock_busy"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=_BOUND_S)
        deadline = time.monotonic() + _BOUND_S  # the server notices the closed socket
        while _run(host_b, "autotune", _ran)["decision"] == "lock_busy":
            assert time.monotonic() < deadline, "lock still held after its holder was killed"
            time.sleep(0.05)

    def test_the_local_flock_still_answers_first(self, tmp_path: Path, pg_url: str) -> None:
        """A second run on the same host finds the flock held: lock_busy, as without a URL."""
        scope = _scope()
        store = _store(tmp_path / "a", pg_url, scope)
        local = _store(tmp_path / "a", None)  # same state dir, no run locks: the flock alone
        inner: list[str] = []

        def body() -> dict[str, Any]:
            inner.append(_run(local, "tuner", _ran)["decision"])
            return _ran()

        assert _run(store, "tuner", body)["decision"] == "ran"
        assert inner == ["lock_busy"]

    def test_merged_view_and_control_locks_stay_local(self, tmp_path: Path, pg_url: str) -> None:
        """``effective`` and ``control`` guard this host's files: another host holding them on
        the server (same key scheme) does not block them."""
        scope = _scope()
        store = _store(tmp_path / "a", pg_url, scope)
        other = RunLocks(pg_url, scope)
        with other.hold("effective"), other.hold("control"):
            taken = []
            for name in ("effective", "control"):
                with store.lock(name):
                    taken.append(name)
        assert taken == ["effective", "control"]

    def test_the_keys_are_stable(self) -> None:
        """A run lock's key is sha256 of ``autolearn.run:<account>:<mechanism>``, and autotune's
        storage locks keep the keys of earlier versions: hosts of two versions still agree."""
        assert run_lock_name("101-004-1", "tuner") == "autolearn.run:101-004-1:tuner"
        assert advisory_key(run_lock_name("", "tuner")) == -6481961692885438586
        assert advisory_key(_autotune_lock_name("schema")) == -4262185678915476347
        assert advisory_key("autolearn.run:a:tuner") != advisory_key("autolearn.run:b:tuner")


class TestConfiguration:
    @pytest.mark.parametrize(
        "url", ["sqlite:///x.db", "mysql://bot:s3cr3t-pw@db/autolearn", "not a url", ""]
    )
    def test_only_postgresql_is_accepted(self, url: str) -> None:
        """Any other URL is a ConfigError naming AUTOLEARN_LOCK_URL, with no password in it."""
        with pytest.raises(ConfigError, match="AUTOLEARN_LOCK_URL") as caught:
            RunLocks(url)
        assert "s3cr3t-pw" not in str(caught.value)

    def test_settings_build_the_locks_for_the_account(self, tmp_path: Path) -> None:
        """The CLI's stores get run locks scoped by AUTOLEARN_ACCOUNT; none without a URL."""
        env = {"AUTOLEARN_STATE_DIR": str(tmp_path), "AUTOLEARN_ACCOUNT": "101-004-1"}
        assert run_locks(Settings.resolve(env=env)) is None
        locks = run_locks(Settings.resolve(env=env | {"AUTOLEARN_LOCK_URL": UNREACHABLE}))
        assert locks is not None and locks.scope == "101-004-1"
        with pytest.raises(ConfigError, match="AUTOLEARN_LOCK_URL"):
            run_locks(Settings.resolve(env=env | {"AUTOLEARN_LOCK_URL": "sqlite:///l.db"}))

    def test_an_unreachable_server_runs_nothing(self, tmp_path: Path) -> None:
        """No server: a clear LockUnavailable (exit 75), the body not run, nothing recorded,
        and the local flock released (a run without the URL goes ahead)."""
        store = _store(tmp_path / "a", UNREACHABLE, "acct")
        ran: list[str] = []

        def body() -> dict[str, Any]:
            ran.append("body")
            return _ran()

        with pytest.raises(LockUnavailable, match=r"lock database .* is unreachable") as caught:
            _run(store, "tuner", body)
        assert caught.value.exit_code == 75
        assert not isinstance(caught.value, LockBusy)
        assert ran == []
        assert _decisions(store) == []
        assert _run(_store(tmp_path / "a", None), "tuner", body)["decision"] == "ran"

    def test_an_unreachable_server_leaves_local_locks_alone(self, tmp_path: Path) -> None:
        """The merged view's and the switches' locks never touch the server."""
        store = _store(tmp_path / "a", UNREACHABLE)
        with store.lock("effective"), store.lock("control"):
            pass


class TestCommandLine:
    def test_tune_on_a_second_host_records_lock_busy(
        self,
        tmp_path: Path,
        pg_url: str,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """``autolearn tune`` with AUTOLEARN_LOCK_URL while another host's tuner runs: it
        records lock_busy and exits 0."""
        scope = _scope()
        ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
        SqlLedger.open(ledger).close()
        monkeypatch.setenv("AUTOLEARN_ENV_FILE", "/dev/null")
        monkeypatch.setenv("AUTOLEARN_LOCK_URL", pg_url)
        monkeypatch.setenv("AUTOLEARN_ACCOUNT", scope)
        argv = ["--state-dir", str(tmp_path / "b"), "--ledger", ledger, "tune", "--json"]
        with _holder(tmp_path / "a", pg_url, scope, "tuner"):
            assert main(argv) == 0
        records = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x[:1] == "{"]
        assert [r["decision"] for r in records] == ["lock_busy"]
        assert _decisions(_store(tmp_path / "b", None)) == ["lock_busy"]

    def test_tune_without_the_lock_database_fails_clearly(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """An unreachable lock database: exit 75, one line saying so, nothing recorded."""
        ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
        SqlLedger.open(ledger).close()
        monkeypatch.setenv("AUTOLEARN_ENV_FILE", "/dev/null")
        monkeypatch.setenv("AUTOLEARN_LOCK_URL", UNREACHABLE)
        argv = ["--state-dir", str(tmp_path / "b"), "--ledger", ledger, "tune"]
        assert main(argv) == 75
        assert "is unreachable" in capsys.readouterr().err
        assert _decisions(_store(tmp_path / "b", None)) == []

    def test_status_names_the_lock_database(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``status`` says the run locks are on PostgreSQL, without the password."""
        monkeypatch.setenv("AUTOLEARN_ENV_FILE", "/dev/null")
        monkeypatch.setenv("AUTOLEARN_LOCK_URL", "postgresql://bot:s3cr3t-pw@db-host/locks")
        main(["--state-dir", str(tmp_path / "s"), "status"])
        out = capsys.readouterr().out
        assert "run locks on PostgreSQL" in out and "db-host" in out
        assert "s3cr3t-pw" not in out
