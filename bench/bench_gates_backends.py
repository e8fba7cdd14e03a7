"""Benchmark: the gates' latency and refresh cost on PostgreSQL against SQLite (issue 19).

    .venv/bin/python bench/bench_gates_backends.py           # N = 10,000 trades
    .venv/bin/python bench/bench_gates_backends.py --quick   # the same (what run_all.py passes)
    .venv/bin/python bench/bench_gates_backends.py --big     # N = 100,000 trades

The same ledger of N trades, all inside the gates' 7-day history window (the worst case: the
bootstrap and the aggregates hold every one), is built on both backends, and the gates are
timed on each:

  (a) ``check_entry`` p50/p99 with a fresh cache (no ledger read: the hot path, which should
      not depend on the backend);
  (b) ``refresh`` when k = 0, 1, 100 trades were committed since the previous one (the bot's
      ``TradeWriter.record_trade``, one commit each), plus the k = 0 refresh that falls on a
      ``COMMIT_SWEEP_S`` sweep (it re-reads up to ``COMMIT_OVERLAP_MAX`` sequence values);
  (c) the bootstrap: the first refresh of a new ``Gates``, reading the window of N trades;
  (d) ``check_entry`` p50/p99/max, one call every ~1 ms for a few seconds, while another
      process writes a trade every ~10 ms, with the real monotonic clock and the packaged
      ``refresh_s`` (gates.yaml); beside it the same paced calls with no writer ("paced":
      a call after a 1 ms sleep costs ~3x one in a tight loop, writer or not).

The baseline is SQLite (a file in a temporary directory) in the same run: the table prints
each figure on both backends and the ratio PG / SQLite. PostgreSQL: ``--pg-url``, else
``$AUTOLEARN_BENCH_PG_URL``, else ``$AUTOLEARN_TEST_PG_URL``, else the local server
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``. The run creates its own database
``autolearn_bench_<pid>`` there and drops it at the end; an unreachable server skips the
PostgreSQL half with a message. Times are wall-clock ``perf_counter``; the header gives the
machine and its load, the footer this process's CPU time.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import multiprocessing as mp
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event
from pathlib import Path

from _machine import cpu_model, pg_database

from autolearn.core.model import Side, Trade
from autolearn.gates import Gates
from autolearn.gates.api import COMMIT_OVERLAP_MAX, COMMIT_SWEEP_S
from autolearn.gates.config import GatesConfig, load_gates_config
from autolearn.ledger.sql import SqlLedger, TradeWriter
from autolearn.testing import make_trade

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
POCKETS = ("macro", "micro", "scalp")
STRATEGIES = tuple(f"Strat{i}" for i in range(8))
# The ledger spans 6 days ending an hour ago: inside the 7-day history window, never "future".
SPAN = timedelta(days=6)


def trade(tag: str, i: int, close_at: datetime, rng: random.Random) -> Trade:
    """One trade with ids unique to ``tag`` (make_trade's counter restarts in every process)."""
    return make_trade(
        close_at=close_at,
        pl_pips=round(rng.gauss(0.05, 3.0), 1),
        broker_trade_id=f"{tag}T{i:09d}",
        close_tx_id=f"{tag}X{i:09d}",
        pocket=rng.choice(POCKETS),
        strategy=rng.choice(STRATEGIES),
    )


def fill(url: str, n: int, end: datetime) -> None:
    rng = random.Random(7)
    step = SPAN / n
    t0 = time.perf_counter()
    with SqlLedger.open(url) as ledger:
        batch = []
        for i in range(n):
            batch.append(trade("B", i, end - SPAN + step * i, rng))
            if len(batch) == 10_000:
                ledger.upsert_trades(batch)
                batch = []
        ledger.upsert_trades(batch)
        assert ledger.count_trades() == n
    print(f"  built {n:,} trades in {time.perf_counter() - t0:.1f} s", flush=True)


def pct(samples: list[float], q: float) -> float:
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=1000, method="inclusive")[int(q * 1000) - 1]


class FakeClock:
    """The gates' monotonic clock, moved by hand so refresh_s and sweeps happen when we say."""

    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def new_gates(url: str, config: GatesConfig, clock: Callable[[], float]) -> Gates:
    return Gates(ledger=SqlLedger.open(url), config=config, clock=clock)


def time_bootstrap(url: str, config: GatesConfig, n: int, reps: int) -> list[float]:
    """(c) wall time of the first refresh of a new Gates (its connection already open)."""
    samples = []
    for _ in range(reps):
        gates = new_gates(url, config, FakeClock())
        t = time.perf_counter()
        seen = gates.refresh(datetime.now(UTC))
        samples.append(time.perf_counter() - t)
        gates.close()
        assert seen >= n, f"bootstrap read {seen} trades, expected at least {n}"
    return samples


def time_refresh(
    url: str, config: GatesConfig, reps: dict[int, int], tag: str
) -> dict[str, list[float]]:
    """(b) refresh times after k trades were committed, and of a k=0 refresh on a sweep."""
    rng = random.Random(17)
    clock = FakeClock()
    gates = new_gates(url, config, clock)
    gates.refresh(datetime.now(UTC))  # bootstrap, not timed
    writer = TradeWriter.open(url)
    out: dict[str, list[float]] = {}
    i = 0
    for k, r in reps.items():
        samples = out.setdefault(f"refresh k={k}", [])
        for _ in range(r):
            for _ in range(k):
                close = datetime.now(UTC) - timedelta(minutes=30)
                writer.record_trade(trade(tag, i, close, rng))
                i += 1
            t = time.perf_counter()
            seen = gates.refresh(datetime.now(UTC))
            samples.append(time.perf_counter() - t)
            assert seen == k, f"refresh read {seen} new trades, expected {k}"
    samples = out.setdefault("refresh k=0, sweep", [])
    for _ in range(reps[0]):
        clock.t += COMMIT_SWEEP_S
        t = time.perf_counter()
        gates.refresh(datetime.now(UTC))
        samples.append(time.perf_counter() - t)
    writer.close()
    gates.close()
    return out


def time_hot(url: str, config: GatesConfig, calls: int) -> list[float]:
    """(a) check_entry with a fresh cache: the fake clock never reaches refresh_s."""
    rng = random.Random(11)
    gates = new_gates(url, dataclasses.replace(config, refresh_s=3600.0), FakeClock())
    now = datetime.now(UTC)
    gates.refresh(now)
    gc.collect()  # the previous sections' garbage must not be collected inside the timing
    samples = []
    for _ in range(calls):
        pocket, strategy = rng.choice(POCKETS), rng.choice(STRATEGIES)
        t = time.perf_counter()
        gates.check_entry(strategy, pocket, Side.LONG, 150.0, now)
        samples.append(time.perf_counter() - t)
    gates.close()
    return samples


def write_every(url: str, period_s: float, ready: Event, stop: Event, tag: str) -> None:
    """The writer process of (d): one ``record_trade`` every ``period_s`` until ``stop``."""
    rng = random.Random(23)
    writer = TradeWriter.open(url)
    i = 0
    next_at = time.monotonic()
    while not stop.is_set():
        writer.record_trade(trade(tag, i, datetime.now(UTC) - timedelta(seconds=1), rng))
        i += 1
        ready.set()
        next_at += period_s
        time.sleep(max(0.0, next_at - time.monotonic()))
    writer.close()


def paced_calls(gates: Gates, seconds: float) -> list[float]:
    """check_entry about every 1 ms with the real clock (the pacing of (d), with its cold
    caches between calls: a paced call costs more than one in a tight loop, writer or not)."""
    rng = random.Random(13)
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pocket, strategy = rng.choice(POCKETS), rng.choice(STRATEGIES)
        now = datetime.now(UTC)
        t = time.perf_counter()
        gates.check_entry(strategy, pocket, Side.LONG, 150.0, now)
        samples.append(time.perf_counter() - t)
        time.sleep(0.001)
    return samples


def time_paced(url: str, config: GatesConfig, seconds: float) -> list[float]:
    """(d)'s baseline: the same paced calls and refresh_s, with no writer."""
    gates = Gates(ledger=SqlLedger.open(url), config=config)
    gates.refresh(datetime.now(UTC))
    samples = paced_calls(gates, seconds)
    gates.close()
    return samples


def time_under_writer(
    url: str, config: GatesConfig, seconds: float, tag: str
) -> tuple[list[float], int]:
    """(d) paced check_entry calls while another process writes a trade every 10 ms."""
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=write_every, args=(url, 0.010, ready, stop, tag))
    proc.start()
    try:
        if not ready.wait(60):
            raise RuntimeError(f"the writer process wrote nothing to {url} within 60 s")
        gates = Gates(ledger=SqlLedger.open(url), config=config)
        gates.refresh(datetime.now(UTC))
        before = gates.aggregates.trades_seen
        samples = paced_calls(gates, seconds)
        gates.refresh(datetime.now(UTC))
        read = gates.aggregates.trades_seen - before
        gates.close()
    finally:
        stop.set()
        proc.join(30)
    if proc.exitcode != 0:
        raise RuntimeError(f"the writer process on {url} exited with {proc.exitcode}")
    return samples, read


def measure_round(
    url: str, config: GatesConfig, n: int, args: argparse.Namespace, tag: str
) -> dict[str, list[float]]:
    """One round of (c), (a), (b) on ``url``: every sample, keyed by measure."""
    out: dict[str, list[float]] = {"bootstrap": time_bootstrap(url, config, n, args.reps)}
    out["check_entry fresh"] = time_hot(url, config, args.calls)
    out.update(time_refresh(url, config, {0: 5 * args.reps, 1: 5 * args.reps, 100: 2}, tag))
    return out


def summarise(
    samples: dict[str, list[float]], paced: list[float], loaded: list[float]
) -> dict[str, float]:
    """Medians of the refresh/bootstrap samples; p50/p99 (and max) of check_entry."""
    out = {"bootstrap": statistics.median(samples["bootstrap"])}
    hot = samples["check_entry fresh"]
    out["check_entry fresh p50"], out["check_entry fresh p99"] = pct(hot, 0.5), pct(hot, 0.99)
    for key, values in samples.items():
        if key.startswith("refresh"):
            out[key] = statistics.median(values)
    out["check_entry paced p50"] = pct(paced, 0.5)
    out["check_entry paced p99"] = pct(paced, 0.99)
    out["check_entry +writer p50"] = pct(loaded, 0.5)
    out["check_entry +writer p99"] = pct(loaded, 0.99)
    out["check_entry +writer max"] = max(loaded)
    return out


def run(
    backends: dict[str, str], config: GatesConfig, n: int, args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    """Rounds of (a)-(c) alternating the backends, so a change of machine load hits both."""
    pooled: dict[str, dict[str, list[float]]] = {name: {} for name in backends}
    for r in range(args.rounds):
        for name, url in backends.items():
            t = time.perf_counter()
            got = measure_round(url, config, n, args, f"R{r}{name[0]}")
            for key, values in got.items():
                pooled[name].setdefault(key, []).extend(values)
            print(
                f"  round {r + 1}/{args.rounds} {name}: {time.perf_counter() - t:.1f} s; "
                f"bootstrap {statistics.median(got['bootstrap']) * 1e3:.0f} ms, check_entry p50 "
                f"{pct(got['check_entry fresh'], 0.5) * 1e6:.0f} us, refresh k=0 "
                f"{statistics.median(got['refresh k=0']) * 1e3:.2f} ms",
                flush=True,
            )
    out = {}
    for name, url in backends.items():
        paced = time_paced(url, config, args.writer_seconds)
        loaded, read = time_under_writer(url, config, args.writer_seconds, f"W{name[0]}")
        print(
            f"  (d) {name}: writer every 10 ms, refresh_s={config.refresh_s:g}: "
            f"{len(loaded):,} check_entry calls in {args.writer_seconds:g} s, "
            f"{read:,} new trades read",
            flush=True,
        )
        out[name] = summarise(pooled[name], paced, loaded)
    return out


def table(lite: dict[str, float], pg: dict[str, float] | None) -> None:
    def fmt(key: str, v: float) -> str:
        return f"{v * 1e6:.0f} us" if key.startswith("check_entry") else f"{v * 1e3:.2f} ms"

    print()
    print(f"| {'measure':<26} | {'SQLite':>10} | {'PostgreSQL':>10} | {'PG / SQLite':>11} |")
    print(f"|{'-' * 28}|{'-' * 12}|{'-' * 12}|{'-' * 13}|")
    for key, v in lite.items():
        if pg is None:
            print(f"| {key:<26} | {fmt(key, v):>10} | {'skipped':>10} | {'-':>11} |")
        else:
            ratio = f"{pg[key] / v:.2f}x"
            print(f"| {key:<26} | {fmt(key, v):>10} | {fmt(key, pg[key]):>10} | {ratio:>11} |")
    print(
        f"(refresh: medians; 'sweep': the refresh every {COMMIT_SWEEP_S:g} s of the gates' clock "
        f"re-reads up to {COMMIT_OVERLAP_MAX:,} seq values; paced: (d) without the writer)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="N = 10,000 trades (the default)")
    size.add_argument("--big", action="store_true", help="N = 100,000 trades")
    parser.add_argument(
        "--calls", type=int, default=10_000, help="check_entry calls for (a), per round"
    )
    parser.add_argument(
        "--reps", type=int, default=2, help="bootstraps per round (refreshes: 5x as many)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (a)-(c) per backend")
    parser.add_argument(
        "--writer-seconds", type=float, default=4.0, help="duration of (d) and of its baseline"
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("AUTOLEARN_BENCH_PG_URL")
        or os.environ.get("AUTOLEARN_TEST_PG_URL")
        or DEFAULT_PG,
        help="PostgreSQL server (default: $AUTOLEARN_BENCH_PG_URL, $AUTOLEARN_TEST_PG_URL, "
        f"{DEFAULT_PG}); a database autolearn_bench_<pid> is created there and dropped",
    )
    args = parser.parse_args()
    n = 100_000 if args.big else 10_000
    config = load_gates_config(None)  # the packaged gates.yaml (refresh_s, history_window)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    print(
        f"machine: {platform.node()}, {os.cpu_count()} CPUs ({cpu_model()}), "
        f"Python {platform.python_version()}; load average at start "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    print(
        f"ledger: {n:,} trades over the last {SPAN.days} days (inside the "
        f"{config.history_window.days}-day history window); packaged refresh_s "
        f"{config.refresh_s:g} s"
    )
    end = datetime.now(UTC) - timedelta(hours=1)
    with (
        tempfile.TemporaryDirectory(prefix="autolearn_bench_") as tmp,
        pg_database(args.pg_url) as pg_url,
    ):
        backends = {"SQLite": f"sqlite:///{Path(tmp) / 'ledger.db'}"}
        print(f"SQLite: {backends['SQLite']} (the baseline)")
        if pg_url is not None:
            backends["PostgreSQL"] = pg_url
        for url in backends.values():
            fill(url, n, end)
        if pg_url is not None:
            import sqlalchemy as sa

            # As autovacuum would within a minute: without statistics the planner scans.
            engine = sa.create_engine(pg_url)
            with engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE trades")
            engine.dispose()
        results = run(backends, config, n, args)
    table(results["SQLite"], results.get("PostgreSQL"))
    print(
        f"\nwall {time.perf_counter() - wall0:.1f} s, this process's CPU "
        f"{time.process_time() - cpu0:.1f} s (writer processes and the PostgreSQL server not "
        "included); load average at end " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
