"""Benchmark: ``ingest --follow`` of a 1,000,000-row ``trades.db`` with 100 new rows.

    .venv/bin/python bench/bench_follow.py            # 1,000,000 rows
    .venv/bin/python bench/bench_follow.py --quick    # 100,000 rows

Builds a v3 ``trades.db`` (the original's schema and indexes, mixed timestamp formats, about
two years of closes) in a temporary directory, follows it once to set the watermark (that
first run is not timed: it is the one-off full import), appends 100 rows as the position
manager does, and times the follow that imports them (read, convert, upsert into the ledger,
store the watermark). The baseline is a plain ``sqlite3`` query that fetches the same 100 rows
with ``SELECT * FROM trades WHERE rowid > ?`` (the least any incremental import must do).
Target: well under one second. Figures are printed, never asserted (bench/run_all.py).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autolearn.adapters.state import StateStore
from autolearn.core.timestamps import parse_utc, to_epoch_us
from autolearn.importers.follow import Watermark, run_follow
from autolearn.ledger.sql import SqlLedger
from autolearn.settings import load_registry
from tests.compat.pretend import SCHEMA, stamp

END = datetime(2026, 3, 2, 12, tzinfo=UTC)
STYLES = ("iso", "space_ns", "no_fraction")


def row(i: int, close_at: datetime) -> tuple[object, ...]:
    pips = ((i * 7919) % 200 - 95) / 10
    opened = close_at - timedelta(minutes=15)
    return (
        100_000 + i,
        str(i),
        ("macro", "micro", "scalp")[i % 3],
        "USD_JPY",
        1000,
        1000,
        150.0,
        150.0 + pips / 100,
        150.0 + pips / 100,
        pips,
        pips * 10,
        0.0,
        0.0,
        opened.isoformat(),
        opened.isoformat(),
        stamp(close_at, STYLES[i % 3]),
        "STOP_LOSS_ORDER",
        "CLOSED",
        close_at.isoformat(),
        "v3",
        0.0,
        "MomentumPulse",
        f"qr-1-micro-s{i % 7}",
        f"S{i % 7}",
        "{}",
        "Range",
        "Range",
    )


def build(path: Path, n: int) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.execute("PRAGMA journal_mode=WAL")
    step = timedelta(days=730) / n
    start = END - timedelta(days=730)
    sql = f"INSERT INTO trades ({COLUMNS}) VALUES ({','.join('?' * 27)})"
    conn.executemany(sql, (row(i, start + step * i) for i in range(n)))
    conn.commit()
    conn.close()


COLUMNS = (
    "transaction_id, ticket_id, pocket, instrument, units, closed_units, entry_price, "
    "close_price, fill_price, pl_pips, realized_pl, commission, financing, entry_time, "
    "open_time, close_time, close_reason, state, updated_at, version, unrealized_pl, strategy, "
    "client_order_id, strategy_tag, entry_thesis, macro_regime, micro_regime"
)


def append(path: Path, first: int, k: int) -> None:
    conn = sqlite3.connect(path)
    sql = f"INSERT OR REPLACE INTO trades ({COLUMNS}) VALUES ({','.join('?' * 27)})"
    conn.executemany(sql, (row(first + j, END + timedelta(seconds=30 * j)) for j in range(k)))
    conn.commit()
    conn.close()


def seed_mark(db: Path, n: int) -> dict[str, object]:
    """The watermark after the last of the ``n`` rows, with the keys of its re-read window."""
    conn = sqlite3.connect(db)
    last = conn.execute(
        "SELECT close_time, ticket_id, transaction_id FROM trades WHERE rowid = ?", (n,)
    ).fetchone()
    close = parse_utc(last[0])
    since = (close - timedelta(days=1)).date().isoformat()
    recent = [
        [str(t), str(x), to_epoch_us(parse_utc(c))]
        for c, t, x in conn.execute(
            "SELECT close_time, ticket_id, transaction_id FROM trades WHERE close_time >= ?",
            (since,),
        )
    ]
    conn.close()
    mark = Watermark(close_at=close, ticket=str(last[1]), tx=str(last[2]), max_rowid=n)
    return mark.to_json() | {"recent": recent}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 100_000 if args.quick else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "trades.db"
        t0 = time.perf_counter()
        build(db, n)
        print(f"built {n:,} rows in {time.perf_counter() - t0:.0f} s", flush=True)
        store = StateStore(Path(tmp) / "state", load_registry(None))
        ledger = SqlLedger.open(f"sqlite:///{Path(tmp) / 'ledger.db'}")
        try:
            # the watermark a first follow leaves (that one-off full import is not timed here)
            store.write_mechanism("follow", {"sources": {str(db.resolve()): seed_mark(db, n)}})
            follow_s, plain_s = [], []
            for rep in range(5):
                top = n + 100 * rep
                append(db, top, 100)
                t0 = time.perf_counter()
                conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                got = conn.execute("SELECT * FROM trades WHERE rowid > ?", (top,)).fetchall()
                conn.close()
                plain_s.append(time.perf_counter() - t0)
                assert len(got) == 100
                t0 = time.perf_counter()
                _, counts = run_follow(db, store, ledger, now=END + timedelta(days=1))
                follow_s.append(time.perf_counter() - t0)
                assert counts.inserted == 100, counts
        finally:
            ledger.close()
    f50, p50 = statistics.median(follow_s), statistics.median(plain_s)
    print(
        f"follow of 100 new rows in a {n:,}-row trades.db: median {f50 * 1000:.0f} ms "
        f"(max {max(follow_s) * 1000:.0f} ms)"
    )
    print(
        f"plain sqlite3 query of the same 100 rows: median {p50 * 1000:.1f} ms; "
        f"ratio {f50 / p50:.0f}x"
    )
    print("well under a second (max < 0.5 s):", "yes" if max(follow_s) < 0.5 else "NO")
    return 0


if __name__ == "__main__":
    sys.exit(main())
