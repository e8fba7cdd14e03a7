"""The shared state of several hosts: one account's state files on the PostgreSQL they all reach.

With ``AUTOLEARN_STATE_URL`` set, ``StateStore`` keeps its documents (``effective.json``,
``snapshots/<version>.json``, ``mechanisms/<name>.json``, ``control.json``) here instead of in
its directory, under their paths, and appends its run records here; every host then serves one
version (issue 19 item 3). The tables are the ledger schema's (v5, ``state_*``): the database is
migrated by opening it as a ledger, so concurrent first use of a fresh one creates them once.

The guarantees of the files hold in SQL: a version switch is the one transaction that writes
``effective.json`` *and* appends its run record (no crash can leave one without the other);
snapshots are inserted once and never updated (content-addressed, verified by the reader);
records are only inserted, numbered in commit order under the scope's transaction lock, so a
host copying "every record after the last one it holds" into its local ``history.jsonl`` (the
replica ``status`` and ``history`` read) never misses one. ``state_hosts`` holds what each
process serves, for ``status`` to compare the hosts.

Must not: decide anything (the store and the guard do), or let an error pass as "no state": an
unreachable server is ``StateUnavailable`` (exit 75), never an empty document.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from autolearn.adapters.logs import redact
from autolearn.errors import ConfigError, LedgerError, StateError, StateUnavailable
from autolearn.ops.hosts import ServedVersion

__all__ = ["SharedState", "default_host"]

# the scope's write lock: every insert into state_docs/state_records takes it for its
# transaction, so ``seq`` order is commit order (a reader after the highest seq misses none)
_WRITE_LOCK = "autolearn.state:"
# heartbeats older than this are deleted by the next one (a process gone for good)
_FORGET_HOSTS_US = 7 * 86_400 * 1_000_000


def default_host() -> str:
    """This host's name in ``state_hosts`` (``AUTOLEARN_HOST`` overrides it)."""
    return socket.gethostname() or "localhost"


class SharedState:
    """The shared state documents and records of account ``scope`` at ``url``.

    The engine is made, and the schema checked, on first use: a command that never reads the
    state never connects.
    """

    def __init__(
        self,
        url: str,
        scope: str = "",
        *,
        host: str | None = None,
        where: str = "AUTOLEARN_STATE_URL",
    ) -> None:
        try:
            backend = make_url(url).get_backend_name()
        except (ArgumentError, ValueError):
            backend = ""
        if backend != "postgresql":
            raise ConfigError(
                f"{where}={redact(url)}: shared state needs a postgresql:// URL (the database "
                "every host reaches), e.g. postgresql+psycopg://user@db-host/autolearn"
            )
        self.url = url
        self.scope = scope
        self.host = host or default_host()
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()  # a worker's refresh thread and its gates share us

    def describe(self) -> str:
        """Where the state is, for ``status`` (credentials redacted)."""
        shown = redact(make_url(self.url).render_as_string(hide_password=True))
        return f"{shown} (account {self.scope!r})"

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- documents --------------------------------------------------------------------------
    def get(self, name: str) -> bytes | None:
        """The bytes of document ``name`` (None: never written)."""
        docs = _tables().docs
        with self._reading(f"read {name}") as conn:
            body = conn.execute(
                sa.select(docs.c.body).where(docs.c.scope == self.scope, docs.c.name == name)
            ).scalar_one_or_none()
        return None if body is None else str(body).encode()

    def stamp(self, name: str) -> int | None:
        """The write number of document ``name``: it changes whenever the document does."""
        docs = _tables().docs
        with self._reading(f"read {name}") as conn:
            seq = conn.execute(
                sa.select(docs.c.seq).where(docs.c.scope == self.scope, docs.c.name == name)
            ).scalar_one_or_none()
        return None if seq is None else int(seq)

    def listing(self, prefix: str) -> list[tuple[str, bytes]]:
        """Every document whose name starts with ``prefix``, by name."""
        docs = _tables().docs
        with self._reading(f"list {prefix}") as conn:
            rows = conn.execute(
                sa.select(docs.c.name, docs.c.body)
                .where(docs.c.scope == self.scope, docs.c.name.startswith(prefix))
                .order_by(docs.c.name)
            ).all()
        return [(str(name), str(body).encode()) for name, body in rows]

    def changed_after(self, seq: int) -> list[tuple[int, str, bytes]]:
        """Every document written after write number ``seq``: ``(seq, name, bytes)`` in order."""
        docs = _tables().docs
        with self._reading("read the shared documents") as conn:
            rows = conn.execute(
                sa.select(docs.c.seq, docs.c.name, docs.c.body)
                .where(docs.c.scope == self.scope, docs.c.seq > seq)
                .order_by(docs.c.seq)
            ).all()
        return [(int(q), str(name), str(body).encode()) for q, name, body in rows]

    def put(self, name: str, body: bytes, *, once: bool = False) -> None:
        """Write document ``name``; ``once``: only if absent (an immutable snapshot)."""
        self.publish({name: body}, None, once=frozenset({name}) if once else frozenset())

    def publish(
        self,
        documents: Mapping[str, bytes],
        record: Mapping[str, Any] | None,
        *,
        once: frozenset[str] = frozenset(),
    ) -> int | None:
        """Write ``documents`` and append ``record`` in one transaction; the record's ``seq``.

        A version switch and its run record land together or not at all. Names in ``once``
        are inserted only if absent (snapshots: content-addressed, never rewritten).
        """
        with self._writing("write the shared state") as conn:
            self._write_documents(conn, documents, once)
            return None if record is None else self._insert_record(conn, record)

    def _write_documents(
        self, conn: Connection, documents: Mapping[str, bytes], once: frozenset[str]
    ) -> None:
        docs = _tables().docs
        now_us = _now_us()
        seq = _next_seq(conn, docs.c.seq, docs.c.scope, self.scope)
        for offset, (name, body) in enumerate(sorted(documents.items())):
            row = {
                "scope": self.scope,
                "name": name,
                "body": body.decode(),
                "seq": seq + offset,
                "updated_at_us": now_us,
            }
            stmt = postgresql.insert(docs).values(**row)
            if name in once:
                conn.execute(stmt.on_conflict_do_nothing(index_elements=["scope", "name"]))
            else:
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["scope", "name"],
                        set_={"body": row["body"], "seq": row["seq"], "updated_at_us": now_us},
                    )
                )

    def _insert_record(self, conn: Connection, record: Mapping[str, Any]) -> int:
        records = _tables().records
        seq = _next_seq(conn, records.c.seq, records.c.scope, self.scope)
        applied = record.get("version_after") if record.get("applied") is True else ""
        conn.execute(
            sa.insert(records).values(
                scope=self.scope,
                seq=seq,
                run_id=str(record.get("run_id") or ""),
                applied_version=str(applied or ""),
                host=self.host,
                body=json.dumps({**dict(record), "shared_seq": seq}, sort_keys=True, default=str),
                at_us=_now_us(),
            )
        )
        return seq

    def upload(
        self,
        documents: Mapping[str, bytes],
        records: Sequence[Mapping[str, Any]],
        *,
        once: frozenset[str] = frozenset(),
    ) -> int:
        """Fill an empty scope with ``documents`` and ``records`` in one transaction; the last
        record's ``seq``. ``StateError`` (nothing written) when the scope holds anything."""
        docs, table = _tables().docs, _tables().records
        with self._writing("upload the state") as conn:
            held = (
                conn.execute(
                    sa.select(sa.func.count()).select_from(docs).where(docs.c.scope == self.scope)
                ).scalar_one()
                + conn.execute(
                    sa.select(sa.func.count()).select_from(table).where(table.c.scope == self.scope)
                ).scalar_one()
            )
            if held:
                raise StateError(
                    f"shared state {self.describe()} is not empty: nothing uploaded (another "
                    "host shared its state first; move this dir aside to replicate it)"
                )
            self._write_documents(conn, documents, once)
            seq = 0
            for record in records:
                seq = self._insert_record(conn, record)
            return seq

    # -- records ----------------------------------------------------------------------------
    def append(self, record: Mapping[str, Any]) -> int:
        """Append one run record; its ``seq``."""
        seq = self.publish({}, record)
        assert seq is not None  # a record was given
        return seq

    def records_after(self, seq: int, *, limit: int = 10_000) -> list[dict[str, Any]]:
        """Up to ``limit`` records with a higher ``seq``, in order (each carries ``shared_seq``)."""
        records = _tables().records
        with self._reading("read the shared history") as conn:
            rows = conn.execute(
                sa.select(records.c.seq, records.c.body)
                .where(records.c.scope == self.scope, records.c.seq > seq)
                .order_by(records.c.seq)
                .limit(limit)
            ).all()
        out = []
        for row_seq, body in rows:
            try:
                doc = json.loads(str(body))
            except ValueError as exc:
                raise StateError(
                    f"shared state {self.describe()}: record {row_seq} is not JSON ({exc})"
                ) from exc
            out.append(doc if isinstance(doc, dict) else {"shared_seq": int(row_seq)})
        return out

    def last_applied_version(self) -> str | None:
        """The ``version_after`` of the last applied record (None: nothing ever applied)."""
        records = _tables().records
        with self._reading("read the shared history") as conn:
            return conn.execute(
                sa.select(records.c.applied_version)
                .where(records.c.scope == self.scope, records.c.applied_version != "")
                .order_by(records.c.seq.desc())
                .limit(1)
            ).scalar_one_or_none()

    def head(self) -> int:
        """The highest record ``seq`` (0: none)."""
        records = _tables().records
        with self._reading("read the shared history") as conn:
            value = conn.execute(
                sa.select(sa.func.max(records.c.seq)).where(records.c.scope == self.scope)
            ).scalar_one_or_none()
        return int(value or 0)

    # -- hosts ------------------------------------------------------------------------------
    def heartbeat(self, role: str, version: str, *, process: str | None = None) -> None:
        """Record that this host's ``process`` (default: this pid) serves ``version`` now."""
        hosts = _tables().hosts
        now_us = _now_us()
        row = {
            "scope": self.scope,
            "host": self.host,
            "process": process or str(os.getpid()),
            "role": role,
            "version": version,
            "seen_at_us": now_us,
        }
        with self._connection("record a heartbeat", write=False) as conn, conn.begin():
            stmt = postgresql.insert(hosts).values(**row)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["scope", "host", "process"],
                    set_={k: row[k] for k in ("role", "version", "seen_at_us")},
                )
            )
            conn.execute(
                sa.delete(hosts).where(
                    hosts.c.scope == self.scope, hosts.c.seen_at_us < now_us - _FORGET_HOSTS_US
                )
            )

    def hosts(self) -> list[ServedVersion]:
        """Every process's last heartbeat, newest first."""
        hosts = _tables().hosts
        with self._reading("read the hosts") as conn:
            rows = conn.execute(
                sa.select(
                    hosts.c.host, hosts.c.process, hosts.c.role, hosts.c.version, hosts.c.seen_at_us
                )
                .where(hosts.c.scope == self.scope)
                .order_by(hosts.c.seen_at_us.desc())
            ).all()
        return [
            ServedVersion(str(h), str(p), str(r), str(v), datetime.fromtimestamp(s / 1e6, UTC))
            for h, p, r, v, s in rows
        ]

    # -- connections ------------------------------------------------------------------------
    @contextmanager
    def _reading(self, what: str) -> Iterator[Connection]:
        with self._connection(what, write=False) as conn:
            yield conn

    @contextmanager
    def _writing(self, what: str) -> Iterator[Connection]:
        with self._connection(what, write=True) as conn, conn.begin():
            conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                {"k": _WRITE_LOCK + self.scope},
            )
            yield conn

    @contextmanager
    def _connection(self, what: str, *, write: bool) -> Iterator[Connection]:
        try:
            engine = self._ensure_engine()
            with engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            orig = getattr(exc, "orig", None)
            detail = redact(str(orig if orig is not None else exc).strip().splitlines()[0])
            nothing = "; nothing was written" if write else ""
            raise StateUnavailable(
                f"shared state {self.describe()}: {what} failed: {detail}{nothing}"
            ) from exc

    def _ensure_engine(self) -> Engine:
        with self._engine_lock:
            if self._engine is not None:
                return self._engine
            from autolearn.ledger._engine import make_engine
            from autolearn.ledger.sql import SqlLedger

            try:  # creates or migrates the tables (v5) once, whoever opens a fresh one first
                SqlLedger.open(self.url, account=self.scope).close()
            except LedgerError as exc:
                raise StateUnavailable(f"shared state {self.describe()}: {exc}") from exc
            engine, _ = make_engine(self.url, 5_000)
            self._engine = engine
            return engine


@dataclass(frozen=True, slots=True)
class _Tables:
    docs: sa.Table
    records: sa.Table
    hosts: sa.Table


def _tables() -> _Tables:
    from autolearn.ledger._schema import (
        state_docs_table,
        state_hosts_table,
        state_records_table,
    )

    return _Tables(state_docs_table, state_records_table, state_hosts_table)


def _next_seq(
    conn: Connection, column: sa.Column[Any], scope_col: sa.Column[Any], scope: str
) -> int:
    """The next write number of ``scope`` (the caller holds the scope's write lock)."""
    current = conn.execute(sa.select(sa.func.max(column)).where(scope_col == scope)).scalar()
    return int(current or 0) + 1


def _now_us() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000)
