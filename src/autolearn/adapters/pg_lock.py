"""PostgreSQL advisory locks: one holder among every host that reaches the same server.

A flock (``locks.py``) is one machine's; hosts that share a ledger need the lock where they all
meet. A *session-level* advisory lock, held on a connection of its own, is released by the
server when that session ends, so a killed process (SIGKILL, OOM, a host gone) frees it as a
flock does: no lock row to go stale, no lease to renew or expire.

``advisory_lock`` is the primitive (autotune's storage locks use it too); ``RunLocks`` is the
run lock of each (account, mechanism) that ``StateStore.lock`` takes, after its flock, when
``AUTOLEARN_LOCK_URL`` is set.

Must not: lock anything but by key (no table, no DDL), or let a run go on as if it held a lock
it could not take (an unreachable server is ``LockUnavailable``, never "no lock").
"""

from __future__ import annotations

import hashlib
import importlib.util
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import sqlalchemy
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import NullPool

from autolearn.adapters.logs import get_logger, redact
from autolearn.errors import ConfigError, LockBusy, LockUnavailable

__all__ = ["RunLocks", "advisory_key", "advisory_lock", "lock_engine", "run_lock_name"]

_POLL_S = 0.01
# a run lock is taken at the start of a timer run: a server that does not answer in seconds
# is down, and the run must say so rather than hang until the unit's timeout
_CONNECT_TIMEOUT_S = 5

_log = get_logger(__name__)  # structlog loads on the first line logged


def advisory_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key: the first 8 bytes of sha256(``name``)."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def run_lock_name(scope: str, mechanism: str) -> str:
    """What the run lock of ``mechanism`` for the account ``scope`` is keyed on."""
    return f"autolearn.run:{scope}:{mechanism}"


def lock_engine(url: str) -> Engine:
    """An engine for locks: no pool (a lock's session is its own), a short connect timeout.

    A bare ``postgresql://`` uses psycopg 3 when psycopg2 is not installed (as the storage).
    """
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg2") is None:
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return sqlalchemy.create_engine(
        url, poolclass=NullPool, connect_args={"connect_timeout": _CONNECT_TIMEOUT_S}
    )


def _where(engine: Engine) -> str:
    return redact(engine.url.render_as_string(hide_password=True))


@contextmanager
def advisory_lock(
    engine_or_url: Engine | str,
    name: str,
    *,
    timeout_s: float = 0.0,
    poll_s: float = _POLL_S,
    what: str | None = None,
) -> Iterator[None]:
    """Hold the advisory lock keyed on ``name`` (``advisory_key``) on a connection of its own.

    ``engine_or_url``: an engine to open that connection on, or a URL (an engine is made and
    disposed of here). ``what`` names the lock in messages (default: ``name``).

    Raises:
        LockBusy: another session still holds it after ``timeout_s`` (0: tried once).
        LockUnavailable: the server could not be reached or failed while taking the lock;
            nothing is held.
    """
    own = isinstance(engine_or_url, str)
    engine = lock_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    label = what or name
    key = advisory_key(name)
    try:
        try:
            conn = engine.connect()
        except sa_exc.DBAPIError as exc:
            raise LockUnavailable(
                f"lock {label}: the lock database {_where(engine)} is unreachable "
                f"({redact(str(exc.orig or exc)).strip()}); nothing was run"
            ) from exc
        try:
            _acquire(conn, key, label, timeout_s, poll_s)
            try:
                yield
            finally:
                _release(conn, key, label)
        finally:
            # ends the session: the server drops any lock it still held; a broken connection
            # fails to close, and its session is gone already
            with suppress(sa_exc.SQLAlchemyError):
                conn.close()
    finally:
        if own:
            engine.dispose()


def _acquire(conn: Connection, key: int, label: str, timeout_s: float, poll_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    query = sqlalchemy.text("SELECT pg_try_advisory_lock(:k)")
    try:
        while not conn.execute(query, {"k": key}).scalar():
            conn.rollback()  # do not sit in an open transaction while waiting
            if time.monotonic() >= deadline:
                raise LockBusy(f"{label} is held by another run (on {_where(conn.engine)})")
            time.sleep(poll_s)
        conn.rollback()
    except sa_exc.DBAPIError as exc:
        raise LockUnavailable(
            f"lock {label}: the lock database {_where(conn.engine)} failed while taking it "
            f"({redact(str(exc.orig or exc)).strip()}); nothing was run"
        ) from exc


def _release(conn: Connection, key: int, label: str) -> None:
    """Unlock; never raises: the work under the lock is done (or its error is on its way)."""
    try:
        held = conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key}).scalar()
        conn.rollback()
    except sa_exc.SQLAlchemyError as exc:  # the session is gone, and its lock with it
        _log.warning("advisory_unlock_failed", lock=label, error=redact(str(exc)))
        return
    if not held:  # the session was reset while held: another run may have overlapped
        _log.warning("advisory_lock_lost", lock=label)


class RunLocks:
    """The run lock of each mechanism for one account, on a PostgreSQL all hosts reach.

    ``scope`` is the account key (``Settings.account``): two bots on different accounts run
    at once; two hosts of one account do not. The engine is made on the first lock, so a
    command that takes none never connects.
    """

    def __init__(self, url: str, scope: str = "", *, where: str = "AUTOLEARN_LOCK_URL") -> None:
        try:
            backend = make_url(url).get_backend_name()
        except sa_exc.ArgumentError:
            backend = ""
        if backend != "postgresql":
            raise ConfigError(
                f"{where}={redact(url)}: run locks across hosts need a postgresql:// URL "
                "(PostgreSQL's advisory locks), e.g. postgresql+psycopg://user@db-host/autolearn"
            )
        self.url = url
        self.scope = scope
        self._engine: Engine | None = None

    def describe(self) -> str:
        """Where the locks are, for ``status`` (credentials redacted)."""
        shown = redact(make_url(self.url).render_as_string(hide_password=True))
        return f"{shown} (account {self.scope!r})"

    @contextmanager
    def hold(self, mechanism: str, *, timeout_s: float = 0.0) -> Iterator[None]:
        """Hold the run lock of ``mechanism`` (``LockBusy``, ``LockUnavailable``)."""
        if self._engine is None:
            self._engine = lock_engine(self.url)
        with advisory_lock(
            self._engine,
            run_lock_name(self.scope, mechanism),
            timeout_s=timeout_s,
            what=f"run lock {mechanism!r} of account {self.scope!r}",
        ):
            yield
