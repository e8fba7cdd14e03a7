"""Benchmark: a worker reading shared state on PostgreSQL, against its state dir (issue 19).

    .venv/bin/python bench/bench_shared_state.py           # 20,000 gets, 300 refreshes a round
    .venv/bin/python bench/bench_shared_state.py --quick   # the same (what run_all.py passes)

One account's state (a tuned layer of 12 knobs, 20 versions applied) is written both ways: in
a state dir (the baseline, files, as a single host runs) and in a fresh database on PostgreSQL
(``AUTOLEARN_STATE_URL``). A ``Tuning`` reads each, and per worker the run times:

  (a) ``get`` between refreshes (the bot's hot path: memory, on both);
  (b) a refresh that finds nothing changed (files: one ``lstat``; shared: one ``SELECT seq``
      by primary key, plus the heartbeat when one is due; in a worker it runs on a background
      thread, so ``get`` never waits for it);
  (c) a reload after another host's switch (files: read, parse, verify; shared: the same after
      one ``SELECT``);
  (d) a cold start: ``Tuning(...)`` and its first ``get`` (shared: the engine, the schema check
      and the first reads);
  (e) an apply of one knob with its run record (shared: one transaction, then the replica);
  (f) each worker's resident memory after (d), in a process of its own.

The footer turns (b) into the server's load: each worker checks once per ``refresh_s`` (1 s by
default), so W workers cost W queries a second. PostgreSQL: ``--pg-url``, else
``$AUTOLEARN_BENCH_PG_URL``, else ``$AUTOLEARN_TEST_PG_URL``, else the local server; the run
creates ``autolearn_bench_state_<pid>`` and drops it; an unreachable server skips the shared half
with a message. Times are wall-clock ``perf_counter``; the header gives the machine and its
load, the footer this process's CPU time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _machine import cpu_model, pg_database

from autolearn.adapters.shared_state import SharedState
from autolearn.adapters.state import StateStore
from autolearn.core.apply_guard import ApplyKind
from autolearn.core.knobs import KnobType
from autolearn.core.registry import Registry
from autolearn.runtime import Tuning
from autolearn.settings import load_registry

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
VERSIONS = 20


def tuned_knobs(registry: Registry) -> list[str]:
    """12 float knobs with a step (a realistic tuned layer)."""
    return [
        k.name
        for k in registry.knobs.values()
        if k.type is KnobType.FLOAT and k.step and k.upper is not None
    ][:12]


def moved(registry: Registry, key: str, up: bool) -> float:
    """``key``'s preset, or one step off it (inside its bounds)."""
    spec = registry.spec(key)
    base, step = float(spec.default), float(spec.step or 0)  # type: ignore[arg-type]
    if not up:
        return base
    return base + step if base + step <= float(spec.upper or base) else base - step


def fill(store: StateStore, knobs: list[str], registry: Registry) -> None:
    """``VERSIONS`` applies of the tuned layer (each a distinct version), with run records."""
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=VERSIONS)
    for i in range(1, VERSIONS + 1):
        wanted = {key: moved(registry, key, bool(i >> j & 1)) for j, key in enumerate(knobs)}
        store.apply(
            "operator",
            wanted,
            now + timedelta(hours=i),
            kind=ApplyKind.OPERATOR,
            record={"run_id": f"fill-{i}", "mechanism": "operator", "decision": "set"},
        )


def timed(fn: Callable[[], object], reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


_RSS = """
import sys
from pathlib import Path
from autolearn.runtime import Tuning
from autolearn.settings import load_registry
root, url, key = sys.argv[1:]
shared = None
if url:
    from autolearn.adapters.shared_state import SharedState
    shared = SharedState(url, "bench")
t = Tuning(Path(root), load_registry(None), shared=shared)
t.get(key)
print(hwm())
"""
# peak RSS of this process's own image (VmHWM: ru_maxrss would count the parent's at fork)
_HWM = (
    "def hwm():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            return int(line.split()[1])\n"
)
_BARE = "print(hwm())"


def rss_mb(root: Path, url: str, key: str) -> float:
    """Peak RSS (MB) of a process that opens a ``Tuning`` and reads one knob, over a bare one."""
    runs = []
    for script, args in ((_BARE, []), (_RSS, [str(root), url, key])):
        out = subprocess.run(
            [sys.executable, "-c", _HWM + script, *args], capture_output=True, text=True, check=True
        )
        runs.append(int(out.stdout.strip().splitlines()[-1]) / 1024)
    return runs[1] - runs[0]


def measure(
    name: str, root: Path, url: str | None, registry: Registry, knobs: list[str], args: object
) -> dict[str, float]:
    shared = SharedState(url, "bench", host="bench") if url else None
    store = StateStore(root, registry, shared=shared)
    fill(store, knobs, registry)
    calls, refreshes = int(args.calls), int(args.refreshes)
    out: dict[str, float] = {}
    cold = timed(
        lambda: Tuning(root, registry, shared=SharedState(url, "bench") if url else None).get(
            knobs[0]
        ),
        5,
    )
    out["cold start"] = statistics.median(cold)
    worker = Tuning(root, registry, refresh_s=3600.0, shared=shared)
    worker.get(knobs[0])
    gets = timed(lambda: worker.get(knobs[0]), calls)
    out["get p50"], out["get p99"] = pct(gets, 0.5), pct(gets, 0.99)
    checks = timed(worker.refresh, refreshes)
    out["refresh, no change p50"], out["refresh, no change p99"] = (
        pct(checks, 0.5),
        pct(checks, 0.99),
    )
    other = StateStore(root, registry, shared=SharedState(url, "bench", host="b") if url else None)
    reloads, applies = [], []
    for i in range(max(5, refreshes // 30)):
        t0 = time.perf_counter()
        other.apply(
            "operator",
            {knobs[-1]: moved(registry, knobs[-1], i % 2 == 0)},
            datetime.now(UTC),
            kind=ApplyKind.OPERATOR,
            record={"run_id": f"bench-{i}", "mechanism": "operator", "decision": "set"},
        )
        applies.append(time.perf_counter() - t0)
        if url is None:  # a file's mtime may not move within its resolution: force the reload
            worker._stamp = None
        reloads += timed(worker.refresh, 1)
    out["reload after a switch"] = statistics.median(reloads)
    out["apply + record"] = statistics.median(applies)
    out["worker RSS over bare"] = rss_mb(root, url or "", knobs[0]) * 1e-3  # shown in MB
    print(f"{name}: measured", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the default sizes")
    parser.add_argument("--calls", type=int, default=20_000, help="gets for (a)")
    parser.add_argument("--refreshes", type=int, default=300, help="refreshes for (b)")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("AUTOLEARN_BENCH_PG_URL")
        or os.environ.get("AUTOLEARN_TEST_PG_URL")
        or DEFAULT_PG,
    )
    args = parser.parse_args()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    print(
        f"machine: {platform.node()}, {os.cpu_count()} CPUs ({cpu_model()}), "
        f"Python {platform.python_version()}; load average at start "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    registry = load_registry(None)
    knobs = tuned_knobs(registry)
    print(f"state: {len(knobs)} tuned knobs, {VERSIONS} versions applied before the timing")
    with (
        tempfile.TemporaryDirectory(prefix="autolearn_bench_") as tmp,
        pg_database(args.pg_url, "autolearn_bench_state") as pg_url,
    ):
        files = measure("files", Path(tmp) / "files", None, registry, knobs, args)
        shared = (
            measure("shared", Path(tmp) / "shared", pg_url, registry, knobs, args)
            if pg_url
            else None
        )
    print()
    print(f"| {'per worker':<24} | {'state dir':>10} | {'PostgreSQL':>10} | {'PG / dir':>9} |")
    print(f"|{'-' * 26}|{'-' * 12}|{'-' * 12}|{'-' * 11}|")
    for key, v in files.items():

        def fmt(x: float, key: str = key) -> str:
            if key.startswith("worker RSS"):
                return f"{x * 1e3:.1f} MB"
            return f"{x * 1e6:.1f} us" if key.startswith("get") else f"{x * 1e3:.2f} ms"

        if shared is None:
            print(f"| {key:<24} | {fmt(v):>10} | {'skipped':>10} | {'-':>9} |")
        else:
            ratio = f"{shared[key] / v:.1f}x" if v > 0 else "-"
            print(f"| {key:<24} | {fmt(v):>10} | {fmt(shared[key]):>10} | {ratio:>9} |")
    if shared is not None:
        per_check = shared["refresh, no change p50"]
        print(
            f"\nserver load: each worker checks once per refresh_s (1 s default); one check "
            f"{per_check * 1e3:.2f} ms wall here, so 100 workers = 100 queries/s, about "
            f"{100 * per_check * 1e3:.0f} ms of round trips a second spread over the hosts"
        )
    print(
        f"\nwall {time.perf_counter() - wall0:.1f} s, this process's CPU "
        f"{time.process_time() - cpu0:.1f} s (the PostgreSQL server not included); load "
        "average at end " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
