"""Benchmark: one full tune cycle (lock, read ledger + state, decide, record) on a big ledger.

Usage: ``python bench/bench_tune.py [--quick] [--runs N]``. The ledger (1,000,000 trades, or
100,000 with ``--quick``) is built once through ``SqlLedger.upsert_trades`` into
``bench/results/cache/`` (gitignored) and reused; its build time is printed separately. The
cycle time is in-process (no interpreter start), median of ``--runs`` runs on a fresh state dir
each, with the clock just after the newest trade. Target: < 200 ms at 1,000,000 trades.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from autolearn.adapters.state import StateStore
from autolearn.core.model import Side, Trade
from autolearn.ledger.sql import SqlLedger
from autolearn.ledger.sqlite_reader import open_reader
from autolearn.settings import load_registry
from autolearn.tuner import TunerConfig, run_cycle

CACHE = Path(__file__).parent / "results" / "cache"
START = datetime(2024, 1, 1, tzinfo=UTC)
_POCKETS = [
    ("scalp", "M1Scalper"),
    ("micro", "MomentumPulse"),
    ("micro", "MicroVWAPRevert"),
    ("micro", "VolCompressionBreak"),
    ("micro", "BB_RSI_Fast"),
    ("macro", "TrendMA"),
]
_EXITS = ["hard_timeout", "hazard_exit", "scratch", "tp_hit", "sl_hit"]
_REGIMES = ["quiet_low_vol", "trend", "range", "volatile"]


def _trades(lo: int, hi: int, version: str) -> list[Trade]:
    rng = random.Random(lo)
    out = []
    for i in range(lo, hi):
        pocket, strategy = _POCKETS[i % len(_POCKETS)]
        entry = START + timedelta(minutes=i)  # ~1 trade a minute: 1M trades ~ 1.9 years
        pips = round(rng.gauss(0.2, 2.0), 2)
        out.append(
            Trade(
                broker_trade_id=str(i),
                close_tx_id=str(i),
                instrument="USD_JPY",
                pocket=pocket,
                strategy=strategy,
                side=Side.LONG if i % 2 else Side.SHORT,
                units=1000,
                entry_price=150.0,
                close_price=150.0 + pips * 0.01,
                entry_at=entry,
                close_at=entry + timedelta(seconds=40),
                pl_pips=pips,
                pl_account=pips * 10,
                exit_reason=_EXITS[i % len(_EXITS)],
                regime_micro=_REGIMES[(i // 7) % len(_REGIMES)],
                config_version=version,
            )
        )
    return out


def build_ledger(n: int, version: str) -> tuple[str, float | None]:
    """The cached ledger URL and its build time (None when it was reused)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"ledger_{n}.db"
    url = f"sqlite:///{path}"
    if path.exists():
        with SqlLedger.open(url) as ledger:
            if ledger.count_trades() == n:
                return url, None
        path.unlink()
    started = time.perf_counter()
    with SqlLedger.open(url) as ledger:
        batch = 50_000
        for lo in range(0, n, batch):
            ledger.upsert_trades(_trades(lo, min(n, lo + batch), version))
    return url, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100,000 trades instead of 1M")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    n = 100_000 if args.quick else 1_000_000
    registry = load_registry(None)
    base_version = StateStore(CACHE / "unused", registry).base_version()
    url, build_s = build_ledger(n, base_version)
    if build_s is None:
        print(f"ledger: {n:,} trades reused from {CACHE}")
    else:
        print(f"ledger build: {n:,} trades in {build_s:.1f} s ({n / build_s:,.0f} trades/s)")
    now = START + timedelta(minutes=n, seconds=60)
    config = TunerConfig()
    times = []
    decisions = []
    with open_reader(url) as ledger:  # what `autolearn tune` opens (sqlite3 on SQLite)
        for run in range(args.runs + 1):
            state_dir = CACHE / f"state_{run}"
            shutil.rmtree(state_dir, ignore_errors=True)
            store = StateStore(state_dir, registry)
            started = time.perf_counter()
            record = run_cycle(store, ledger, config, now)
            elapsed = time.perf_counter() - started
            shutil.rmtree(state_dir, ignore_errors=True)
            if run:  # the first run warms imports and the page cache
                times.append(elapsed)
                decisions.append(record["decision"])
            trades_read = record["metrics"]["window"]["trades"]
    median_ms = statistics.median(times) * 1000
    print(
        f"tune cycle: median {median_ms:.1f} ms (min {min(times) * 1000:.1f}, max "
        f"{max(times) * 1000:.1f}) over {len(times)} runs; {trades_read:,} trades in the "
        f"{config.max_lookback.days}-day max window of a {n:,}-trade ledger; "
        f"decisions {sorted(set(decisions))}"
    )
    print(f"target < 200 ms: {'met' if median_ms < 200 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
