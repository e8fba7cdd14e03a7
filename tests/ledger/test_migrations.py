"""Ledger schema migrations (alembic): v1 ledgers are stamped and upgraded, newer ones refused.

The v1 ledger is ``tests/data/ledger/v1-ledger.sql``: what autolearn wrote before migrations
existed (315 real QuantRabbit trades, shadow signals, a cursor). It is loaded as-is on SQLite and
row by row into a v1 schema (the baseline migration) on PostgreSQL. Opening it runs the v2
migration (the signal log and the candle store; every shadow signal copied into the log).
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from autolearn.core.model import EntrySignal
from autolearn.errors import LedgerError
from autolearn.ledger import _migrate, _schema
from autolearn.ledger._schema import SCHEMA_VERSION, head_revision, metadata
from autolearn.ledger.sql import SqlLedger

V1_DUMP = Path(__file__).resolve().parents[1] / "data" / "ledger" / "v1-ledger.sql"
V1_TABLES = ("meta", "trades", "shadow_signals", "cursors")


@pytest.fixture(name="empty_url")
def fixture_empty_url(request: pytest.FixtureRequest, ledger_url: str, tmp_path: Path) -> Any:
    """A factory of further empty ledger locations on the same backend as ``ledger_url``."""

    def make() -> str:
        if ledger_url.startswith("sqlite"):
            return f"sqlite:///{tmp_path / f'{uuid.uuid4().hex[:8]}.db'}"
        new_pg_schema = request.getfixturevalue("new_pg_schema")
        return str(new_pg_schema(f"m{uuid.uuid4().hex[:10]}"))

    return make


def _v1_rows() -> dict[str, list[dict[str, Any]]]:
    """Every row of the v1 dump, per table, as dicts."""
    mem = sqlite3.connect(":memory:")
    mem.row_factory = sqlite3.Row
    mem.executescript(V1_DUMP.read_text(encoding="utf-8"))
    rows = {t: [dict(r) for r in mem.execute(f'SELECT * FROM "{t}"')] for t in V1_TABLES}
    mem.close()
    return rows


def _alembic_to(conn: sa.Connection, revision: str, scripts: Path | None = None) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(scripts or _migrate.MIGRATIONS_DIR))
    config.attributes["connection"] = conn
    command.upgrade(config, revision)


def _write_v1(url: str) -> None:
    """A pre-alembic v1 ledger holding the dump's rows at ``url``."""
    if url.startswith("sqlite"):
        path = sa.make_url(url).database
        assert path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path)
        db.executescript(V1_DUMP.read_text(encoding="utf-8"))
        db.close()
        return
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _alembic_to(conn, "v1")  # the frozen v1 DDL
        conn.exec_driver_sql("DROP TABLE alembic_version")  # v1 code had no alembic
        conn.exec_driver_sql("DELETE FROM meta")
        for table, rows in _v1_rows().items():
            conn.execute(
                sa.table(table, *(sa.column(c.name) for c in _v1_columns(table))).insert(), rows
            )
    engine.dispose()


def _v1_columns(table: str) -> list[sa.Column[Any]]:
    """The columns ``table`` had in v1 (v3 added ``trades.seq``, v4 ``account``)."""
    return [c for c in metadata.tables[table].columns if c.name not in ("seq", "account")]


def _read_all(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        out = {
            t: sorted(tuple(r) for r in conn.execute(sa.select(*_v1_columns(t)))) for t in V1_TABLES
        }
        if sa.inspect(conn).has_table("alembic_version"):
            out["alembic_version"] = [
                tuple(r) for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")
            ]
    engine.dispose()
    return out


def _shape(url: str) -> dict[str, Any]:
    """Tables, columns, keys and indexes as the database reports them."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        insp = sa.inspect(conn)
        shape = {
            t: (
                [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t)],
                insp.get_pk_constraint(t)["constrained_columns"],
                sorted((i["name"], tuple(i["column_names"])) for i in insp.get_indexes(t)),
            )
            for t in sorted(insp.get_table_names())
        }
    engine.dispose()
    return shape


class TestUpgradeFromV1:
    def test_v1_ledger_with_real_rows_is_upgraded_with_nothing_lost(self, ledger_url: str) -> None:
        """A v1 ledger from before alembic opens at schema 4, stamped at the head, every v1 row
        intact and the v2 tables present."""
        _write_v1(ledger_url)
        before = _read_all(ledger_url)
        assert "alembic_version" not in before
        assert before["meta"] == [("schema_version", "1")]
        with SqlLedger.open(ledger_url) as ledger:
            assert ledger.count_trades() == 315
        after = _read_all(ledger_url)
        assert after["alembic_version"] == [(head_revision(),)] == [("v5",)]
        assert [k for k in after["meta"] if k[0] != "ledger_id"] == [("schema_version", "5")]
        assert [len(v) for k, v in after["meta"] if k == "ledger_id"] == [32]  # v3: its identity
        assert SCHEMA_VERSION == 5
        assert {t: after[t] for t in V1_TABLES if t != "meta"} == {
            t: v for t, v in before.items() if t != "meta"
        }
        engine = sa.create_engine(ledger_url)
        with engine.connect() as conn:
            assert {"signals", "candles"} <= set(sa.inspect(conn).get_table_names())
        engine.dispose()
        with SqlLedger.open(ledger_url) as again:  # and it stays ready (read-only open)
            assert again.count_trades() == 315

    def test_v1_shadow_signals_are_copied_into_the_signal_log(self, ledger_url: str) -> None:
        """Every v1 shadow signal becomes a not-taken signal (its reason, else ``shadow``) with
        its fields, no scores, and ingestion time kept; the shadow table itself is untouched."""
        _write_v1(ledger_url)
        with SqlLedger.open(ledger_url) as ledger:
            shadows = ledger.shadow_signals()
            signals = ledger.signals()
        assert len(shadows) == len(_v1_rows()["shadow_signals"]) > 0
        assert signals == [
            EntrySignal(
                signal_id=s.signal_id,
                at=s.at,
                instrument=s.instrument,
                pocket=s.pocket,
                strategy=s.strategy,
                side=s.side,
                price=s.price,
                sl_pips=s.sl_pips,
                tp_pips=s.tp_pips,
                taken=False,
                not_taken=s.reason or "shadow",
                config_version=s.config_version,
                extra=s.extra,
            )
            for s in shadows
        ]
        engine = sa.create_engine(ledger_url)
        with engine.connect() as conn:

            def ingested(table: str) -> dict[str, int]:
                query = sa.text(f"SELECT signal_id, ingested_at_us FROM {table}")
                return {r[0]: r[1] for r in conn.execute(query)}

            assert ingested("signals") == ingested("shadow_signals")
        engine.dispose()

    def test_migrated_log_equals_shadows_received_new(
        self, ledger_url: str, empty_url: Any
    ) -> None:
        """The migration's copy and upsert_shadow_signals map a shadow signal identically: a
        v2 ledger receiving the v1 shadow signals holds the migrated ledger's signal log."""
        _write_v1(ledger_url)
        with SqlLedger.open(ledger_url) as migrated:
            shadows, migrated_log = migrated.shadow_signals(), migrated.signals()
        with SqlLedger.open(empty_url()) as fresh:
            fresh.upsert_shadow_signals(shadows)
            assert fresh.signals() == migrated_log

    def test_concurrent_first_opens_of_a_v1_ledger_stamp_once(self, ledger_url: str) -> None:
        """Four processes' worth of first opens at once: all succeed, one stamp, rows intact."""
        _write_v1(ledger_url)
        errors: list[BaseException] = []
        barrier = threading.Barrier(4)

        def opener() -> None:
            try:
                barrier.wait()
                with SqlLedger.open(ledger_url) as ledger:
                    ledger.count_trades()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=opener) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert _read_all(ledger_url)["alembic_version"] == [(head_revision(),)]

    def test_next_migration_runs_on_open(
        self, ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Adding ``versions/v6_*.py`` and raising SCHEMA_VERSION migrates a v1 ledger on open
        through v2, v3, v4, v5 and v6 in one go, keeping every v1 row."""
        scripts = tmp_path / "migrations"
        shutil.copytree(_migrate.MIGRATIONS_DIR, scripts, ignore=shutil.ignore_patterns("__py*"))
        (scripts / "versions" / "v6_example.py").write_text(_V6_EXAMPLE, encoding="utf-8")
        _write_v1(ledger_url)
        before = _read_all(ledger_url)
        monkeypatch.setattr(_schema, "SCHEMA_VERSION", 6)
        monkeypatch.setattr(_migrate, "SCHEMA_VERSION", 6)
        monkeypatch.setattr(_migrate, "MIGRATIONS_DIR", scripts)
        with SqlLedger.open(ledger_url) as ledger:
            assert ledger.count_trades() == 315
        after = _read_all(ledger_url)
        assert after["alembic_version"] == [("v6",)]
        assert [k for k in after["meta"] if k[0] != "ledger_id"] == [("schema_version", "6")]
        assert {t: after[t] for t in V1_TABLES if t != "meta"} == {
            t: v for t, v in before.items() if t != "meta"
        }
        engine = sa.create_engine(ledger_url)
        with engine.connect() as conn:
            assert sa.inspect(conn).has_table("example_signals")
            assert sa.inspect(conn).has_table("signals")  # v2 ran on the way
            columns = {c["name"] for c in sa.inspect(conn).get_columns("trades")}
            assert {"seq", "account"} <= columns  # v3 and v4 ran on the way
            assert sa.inspect(conn).has_table("state_records")  # and v5
        engine.dispose()


_V6_EXAMPLE = """
import sqlalchemy as sa
from alembic import op

revision = "v6"
down_revision = "v5"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("example_signals", sa.Column("signal_id", sa.Text, primary_key=True))
"""


def _write_v2(url: str) -> None:
    """A v2 ledger (stamped, as autolearn 2 left it) holding the v1 dump's rows."""
    _write_v1(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _schema.stamp_revision(conn, "v1")
        _alembic_to(conn, "v2")
        conn.exec_driver_sql("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    engine.dispose()


def _seqs(url: str) -> list[tuple[int, int, str, str]]:
    """``(seq, close_at_us, broker_trade_id, close_tx_id)`` of every trade, by ``seq``."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT seq, close_at_us, broker_trade_id, close_tx_id FROM trades ORDER BY seq"
        )
        out = [tuple(r) for r in rows]
    engine.dispose()
    return out  # type: ignore[return-value]


class TestUpgradeToV3:
    def test_v2_ledger_gets_its_commit_order_in_ledger_order(self, ledger_url: str) -> None:
        """A v2 ledger's 315 real trades are kept and numbered 1..315 in the ledger order
        ``(close_at, broker_trade_id, close_tx_id)``; the head is 315."""
        _write_v2(ledger_url)
        before = _read_all(ledger_url)
        with SqlLedger.open(ledger_url) as ledger:
            assert ledger.commit_head() == 315
            committed = ledger.trades_committed()
            assert [c.trade for c in committed] == ledger.trades()
        after = _read_all(ledger_url)
        assert before["alembic_version"] == [("v2",)]
        assert after["alembic_version"] == [("v5",)]
        assert [k for k in after["meta"] if k[0] != "ledger_id"] == [("schema_version", "5")]
        assert {t: after[t] for t in V1_TABLES} == {
            t: before[t] for t in V1_TABLES if t != "meta"
        } | {"meta": after["meta"]}
        seqs = _seqs(ledger_url)
        assert [s for s, *_ in seqs] == list(range(1, 316))
        assert [tuple(k) for _, *k in seqs] == sorted(tuple(k) for _, *k in seqs)

    def test_writes_after_the_upgrade_go_to_the_head(
        self, ledger_url: str, make_trade: Any
    ) -> None:
        """On a migrated ledger a new trade takes 316, and a corrected old one moves to 317 (a
        reader resuming after 315 sees both); an unchanged re-delivery keeps its place."""
        _write_v2(ledger_url)
        with SqlLedger.open(ledger_url) as ledger:
            oldest = ledger.trades()[0]
            ledger.upsert_trades([make_trade(broker_trade_id="new-1", close_tx_id="n1")])
            ledger.upsert_trades([oldest])  # unchanged: not moved
            corrected = make_trade(
                **{
                    f: getattr(oldest, f)
                    for f in ("broker_trade_id", "close_tx_id", "close_at", "entry_at")
                },
                pl_pips=oldest.pl_pips + 1.0,
            )
            ledger.upsert_trades([corrected])
            tail = ledger.trades_committed(after=315)
            assert [(c.seq, c.trade.broker_trade_id) for c in tail] == [
                (316, "new-1"),
                (317, oldest.broker_trade_id),
            ]
            assert tail[1].trade.pl_pips == oldest.pl_pips + 1.0
            assert ledger.count_trades() == 316

    def test_a_fresh_v3_ledger_refuses_a_duplicate_seq(self, ledger_url: str) -> None:
        """``seq`` is unique: a row numbered behind the writer's back fails loudly."""
        SqlLedger.open(ledger_url).close()
        engine = sa.create_engine(ledger_url)
        with engine.connect() as conn:
            indexes = {i["name"]: i for i in sa.inspect(conn).get_indexes("trades")}
        engine.dispose()
        assert indexes["ix_trades_seq"]["unique"]
        assert indexes["ix_trades_seq"]["column_names"] == ["seq"]


class TestSchemaAgreement:
    def test_fresh_ledger_equals_the_migration_chain(self, empty_url: Any) -> None:
        """``create_all`` + stamp (a new ledger) and the chain from nothing give one schema."""
        fresh, chained = empty_url(), empty_url()
        SqlLedger.open(fresh).close()
        engine = sa.create_engine(chained)
        with engine.begin() as conn:
            _alembic_to(conn, "head")
        engine.dispose()
        assert _shape(fresh) == _shape(chained)
        assert _read_all(chained)["alembic_version"] == [(head_revision(),)]

    def test_revisions_are_one_line_v1_to_head(self) -> None:
        """Revision ``vN`` yields schema version N; one head, no branches."""
        from alembic.script import ScriptDirectory

        scripts = ScriptDirectory(str(_migrate.MIGRATIONS_DIR))
        assert scripts.get_heads() == [head_revision()]
        chain = [s.revision for s in scripts.walk_revisions()]
        assert chain == [f"v{n}" for n in range(SCHEMA_VERSION, 0, -1)]


class TestRefusals:
    def test_unknown_revision_is_refused_untouched(self, ledger_url: str) -> None:
        """A revision this code does not know (a newer autolearn) is refused before any write."""
        SqlLedger.open(ledger_url).close()
        engine = sa.create_engine(ledger_url)
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'v99'")
            conn.exec_driver_sql("DROP TABLE cursors")
        with pytest.raises(LedgerError, match=r"alembic revision \['v99'\].*upgrade autolearn"):
            SqlLedger.open(ledger_url)
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("cursors")
        engine.dispose()

    def test_upgrade_without_alembic_names_the_extra(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A bare worker install facing an older ledger says which install migrates it."""
        monkeypatch.setitem(sys.modules, "alembic", None)
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
        with (
            engine.begin() as conn,
            pytest.raises(LedgerError, match=r"revision v0.*pip install 'autolearn\[cli\]'"),
        ):
            _migrate.run_alembic_upgrade(conn, url_for_errors="x", current="v0")
        engine.dispose()
