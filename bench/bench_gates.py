"""Benchmark: ``Gates.check_entry`` latency against a large SQLite ledger with trades arriving.

    .venv/bin/python bench/bench_gates.py            # 1,000,000 trades (ledger cached)
    .venv/bin/python bench/bench_gates.py --quick    # 100,000 trades

Builds the ledger once under bench/results/ (gitignored), then times 10,000 ``check_entry``
calls on a moving simulated clock while a new trade is appended through the bot's
``TradeWriter`` every 10 calls. Two refresh settings are timed: ``refresh_s=0`` (read the
ledger on every call: the worst case) and the default 1 s. The naive baseline recomputes the
3-day window with a SQL query per call (what a gate without incremental aggregates does; the
original even re-read the whole table), measured on fewer calls in the same run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from autolearn.core.metrics import pnl, summarize
from autolearn.core.model import Side, Trade
from autolearn.gates import Gates
from autolearn.ledger.sql import SqlLedger, TradeWriter
from autolearn.settings import load_registry

RESULTS = Path(__file__).resolve().parent / "results"
POCKETS = ("macro", "micro", "scalp")
STRATEGIES = tuple(f"Strat{i}" for i in range(8))
START = datetime(2024, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=365)


def make_trade(i: int, close_at: datetime, rng: random.Random) -> Trade:
    pl = rng.gauss(0.05, 3.0)
    side = Side.LONG if rng.random() < 0.5 else Side.SHORT
    entry = 150.0 + rng.uniform(-5, 5)
    return Trade(
        broker_trade_id=f"T{i:09d}",
        close_tx_id=f"X{i:09d}",
        instrument="USD_JPY",
        pocket=rng.choice(POCKETS),
        strategy=rng.choice(STRATEGIES),
        side=side,
        units=1000,
        entry_price=entry,
        close_price=max(entry + side.sign * pl * 0.01, 0.01),
        entry_at=close_at - timedelta(minutes=rng.randint(1, 90)),
        close_at=close_at,
        pl_pips=round(pl, 1),
        pl_account=round(pl * 10, 2),
        broker_close_reason=rng.choice(("TAKE_PROFIT_ORDER", "STOP_LOSS_ORDER", "MARKET_ORDER")),
    )


def build(path: Path, n: int) -> None:
    if path.exists():
        with SqlLedger.open(f"sqlite:///{path}") as ledger:
            if ledger.count_trades() == n:
                return
        path.unlink()
    print(f"building {n:,} trades in {path} (once) ...", flush=True)
    rng = random.Random(7)
    step = SPAN / n
    t0 = time.perf_counter()
    with SqlLedger.open(f"sqlite:///{path}") as ledger:
        batch = []
        for i in range(n):
            batch.append(make_trade(i, START + step * i, rng))
            if len(batch) == 20_000:
                ledger.upsert_trades(batch)
                batch = []
        ledger.upsert_trades(batch)
    print(f"built in {time.perf_counter() - t0:.0f} s", flush=True)


def pct(samples: list[float], q: float) -> float:
    return (
        statistics.quantiles(samples, n=1000)[int(q * 1000) - 1] if len(samples) > 1 else samples[0]
    )


def run_gates(url: str, state: Path, n_existing: int, calls: int, refresh_s: float) -> list[float]:
    rng = random.Random(11)
    writer = TradeWriter.open(url)
    last = writer.ledger.last_close_at()
    assert last is not None
    now = last + timedelta(seconds=1)
    gates = Gates.open(url, state, load_registry(None), refresh_s=refresh_s)
    gates.refresh(now)  # start-up: load the history window (not timed)
    samples = []
    next_id = n_existing + 10_000_000 * (1 + int(refresh_s * 10))
    for k in range(calls):
        now += timedelta(seconds=1)
        if k % 10 == 0:
            writer.record_trade(make_trade(next_id, now, rng))
            next_id += 1
        pocket, strategy = rng.choice(POCKETS), rng.choice(STRATEGIES)
        t = time.perf_counter()
        gates.check_entry(strategy, pocket, Side.LONG, 150.0, now)
        samples.append(time.perf_counter() - t)
    gates.close()
    writer.close()
    return samples


def run_naive(url: str, calls: int) -> list[float]:
    rng = random.Random(13)
    with SqlLedger.open(url) as ledger:
        last = ledger.last_close_at()
        assert last is not None
        samples = []
        for _ in range(calls):
            pocket, strategy = rng.choice(POCKETS), rng.choice(STRATEGIES)
            t = time.perf_counter()
            window = ledger.trades(
                closed_since=last - timedelta(days=3), pocket=pocket, strategy=strategy
            )
            summarize(pnl(window))
            samples.append(time.perf_counter() - t)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 trades instead of 1,000,000")
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--naive-calls", type=int, default=100)
    args = parser.parse_args()
    n = 100_000 if args.quick else 1_000_000
    RESULTS.mkdir(parents=True, exist_ok=True)
    db = RESULTS / f"ledger_{n}.db"
    build(db, n)
    work = RESULTS / f"work_{n}.db"  # a copy, so appended trades never grow the cached ledger
    work.write_bytes(db.read_bytes())
    url = f"sqlite:///{work}"
    state = RESULTS / "state"
    print(f"ledger: {n:,} trades; {args.calls:,} check_entry calls, one new trade per 10 calls")
    results = {}
    for refresh_s in (0.0, 1.0):
        samples = run_gates(url, state, n, args.calls, refresh_s)
        results[refresh_s] = samples
        print(
            f"check_entry refresh_s={refresh_s:g}: p50 {pct(samples, 0.5) * 1e3:.3f} ms, "
            f"p99 {pct(samples, 0.99) * 1e3:.3f} ms, max {max(samples) * 1e3:.2f} ms"
        )
    naive = run_naive(url, args.naive_calls)
    p50n = pct(naive, 0.5)
    print(
        f"naive per-call SQL window ({args.naive_calls} calls): p50 {p50n * 1e3:.2f} ms, "
        f"p99 {pct(naive, 0.99) * 1e3:.2f} ms"
    )
    for refresh_s, samples in results.items():
        print(f"speed-up at p50 (refresh_s={refresh_s:g}): {p50n / pct(samples, 0.5):.0f}x")
    for refresh_s, samples in results.items():
        ok = pct(samples, 0.99) < 1e-3
        print(f"p99 < 1 ms (refresh_s={refresh_s:g}):", "yes" if ok else "NO")
    work.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
