"""Benchmark: history size per record (folding) and `status` / `history --since 24h` cost.

    .venv/bin/python bench/bench_history.py            # 5,000 / 50,000 / 500,000 records
    .venv/bin/python bench/bench_history.py --quick    # 5,000 / 50,000

Real record shapes: a four-day replay of the bundled month (tuner freezes and holds, policy
holds with their statistics, scalp trainer runs) is run once and cached under
bench/results/cache/; its records are replayed in order, again and again, keeping the replay's
own spacing (each mechanism at its cadence: ~250 records a day), shifted to end now, with
fresh run ids, through ``HistoryFile.append`` into a state dir in /tmp (fsync off while
building only: the build is setup, not what is measured; retention set to ten years so no
record is pruned). Then each size prints:

* bytes per record in full (what the previous writer wrote per line) and on disk (folded);
* whole-process CPU (user + system, from ``wait4``) of ``autolearn status`` and ``autolearn
  history --since 24h --json``, against ``python -c pass`` and against plain ``tail -n`` of
  the last day's lines (what reading only the end of one file costs), medians of 3;
* the previous implementation's figure where it is cheap to get: the same reads through
  ``read_runs()`` of every segment (the old readers read the whole file).

No assertion on time: the goal (<= 0.3 s for status and --since 24h at any size, <= 1 KB per
unchanged record) is printed as met or missed by how much.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _machine import installed_env

from autolearn.adapters.history import HistoryFile, RotationPolicy, strict_json
from autolearn.core.timestamps import format_utc, parse_utc

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / "results" / "cache" / "history_templates"
WORK = Path("/tmp/bench_history")
CANDLES = ROOT / "examples" / "data" / "fx" / "DAT_ASCII_EURUSD_M1_201807.csv"
EXE = Path(sys.executable).parent / "autolearn"
GOAL_S = 0.3
GOAL_BYTES = 1024
BENCH_POLICY = RotationPolicy(retention=timedelta(days=3650))


def templates() -> list[dict[str, Any]]:
    """Run records of a four-day replay of the bundled month (cached)."""
    path = CACHE / "learning" / "state" / "history.jsonl"
    if not path.exists() and not list(path.parent.glob("history*.jsonl")):
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"building templates: a four-day replay into {CACHE} ...", flush=True)
        subprocess.run(
            [
                *(str(EXE), "replay", "--candles", str(CANDLES)),
                *("--from", "2018-07-02", "--to", "2018-07-06", "--out", str(CACHE), "--quiet"),
            ],
            check=True,
            cwd="/tmp",
            stdout=subprocess.DEVNULL,
        )
    return HistoryFile(path).read().records


def build(n: int, shapes: list[dict[str, Any]], now: datetime) -> Path:
    """A state dir whose history holds ``n`` records at the replay's cadence, the last now."""
    times = [parse_utc(str(r["at"])) for r in shapes]
    span = times[-1] - times[0] + timedelta(minutes=10)  # one pass of the templates
    cycles, last = divmod(n - 1, len(shapes))
    shift = now - (times[last] + cycles * span)
    state = WORK / f"state_{n}"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    history = HistoryFile(state / "history.jsonl", BENCH_POLICY)
    real_fsync, os.fsync = os.fsync, lambda fd: None  # setup only: see the module docstring
    try:
        for i in range(n):
            cycle, j = divmod(i, len(shapes))
            record = dict(shapes[j])
            record["at"] = format_utc(times[j] + cycle * span + shift)
            record["run_id"] = f"bench-{i}"
            history.append(record)
    finally:
        os.fsync = real_fsync
    return state


def cpu_of(args: list[str], env: dict[str, str] | None = None) -> float:
    """Whole-process CPU seconds (user + system) of one run, its output discarded."""
    proc = subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=installed_env(env),
        cwd="/tmp",
    )
    _, _, usage = os.wait4(proc.pid, 0)
    return usage.ru_utime + usage.ru_stime


def median_cpu(args: list[str], env: dict[str, str] | None = None, runs: int = 3) -> float:
    return statistics.median(cpu_of(args, env) for _ in range(runs))


def env_for(state: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AUTOLEARN_BOT_ROOT=str(state.parent),
        AUTOLEARN_STATE_DIR=str(state),
        AUTOLEARN_LEDGER_URL=f"sqlite:///{state.parent / 'ledger.db'}",
        COLUMNS="200",
    )
    return env


def sizes(state: Path, n: int) -> tuple[float, float]:
    """(bytes per record written in full, bytes per record on disk)."""
    records = HistoryFile(state / "history.jsonl").read().records
    full = sum(len(strict_json(r)) + 1 for r in records) / len(records)
    disk = sum(p.stat().st_size for p in state.glob("history*.jsonl")) / n
    return full, disk


def line_kinds(state: Path) -> dict[str, tuple[int, float]]:
    """Lines on disk by kind: full, an unchanged repeat (a delta with nothing set), a delta."""
    found: dict[str, list[int]] = {"full": [], "unchanged repeat": [], "delta": []}
    for path in state.glob("history*.jsonl"):
        for line in path.read_bytes().splitlines():
            fold = json.loads(line).get("_fold")
            kind = (
                "full"
                if fold is None
                else ("delta" if set(fold) - {"base", "base_run_id"} else "unchanged repeat")
            )
            found[kind].append(len(line) + 1)
    return {k: (len(v), statistics.fmean(v) if v else 0.0) for k, v in found.items()}


def in_process_new(state: Path, now: datetime) -> tuple[float, float]:
    """In-process CPU of what status and --since 24h read now (no imports, no printing)."""
    history = HistoryFile(state / "history.jsonl")
    start = time.process_time()
    history.read_status(now - timedelta(hours=24))
    status = time.process_time() - start
    start = time.process_time()
    history.read_runs_since(now - timedelta(hours=24))
    return status, time.process_time() - start


def in_process_old(state: Path, now: datetime) -> float:
    """CPU of reading every segment (what the previous status and history did), in-process."""
    start = time.process_time()
    runs = HistoryFile(state / "history.jsonl").read_runs().runs
    _ = [r for r in runs if r.at is not None and r.at >= now - timedelta(hours=24)]
    return time.process_time() - start


def verdict(figure: float, goal: float, unit: str) -> str:
    if figure <= goal:
        return f"met ({figure:.3g} {unit} <= {goal:g})"
    return f"MISSED by {figure / goal:.2f}x ({figure:.3g} {unit} > {goal:g})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5k and 50k records only")
    args = parser.parse_args()
    counts = [5_000, 50_000] if args.quick else [5_000, 50_000, 500_000]
    print(f"load: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores")
    shapes = templates()
    print(f"templates: {len(shapes)} real run records (four replayed days)")
    bare = median_cpu([sys.executable, "-c", "pass"])
    print(f"baseline python -c pass: {bare * 1e3:.0f} ms CPU")
    empty = WORK / "state_empty"
    shutil.rmtree(empty, ignore_errors=True)
    empty.mkdir(parents=True)
    status_empty = median_cpu([str(EXE), "status"], env_for(empty))
    print(f"baseline autolearn status, empty history: {status_empty * 1e3:.0f} ms CPU")
    for n in counts:
        now = datetime.now(UTC)
        start = time.process_time()
        state = build(n, shapes, now)
        built = time.process_time() - start
        full, disk = sizes(state, n)
        kinds = line_kinds(state)
        segments = len(list(state.glob("history-*.jsonl")))
        env = env_for(state)
        status = median_cpu([str(EXE), "status"], env)
        since = median_cpu([str(EXE), "history", "--since", "24h", "--json"], env)
        day = sum(
            1
            for r in shapes
            if parse_utc(str(r["at"])) >= parse_utc(str(shapes[-1]["at"])) - timedelta(days=1)
        )
        tail = median_cpu(["tail", "-n", str(day), str(state / "history.jsonl")])
        old = in_process_old(state, now)
        new_status, new_since = in_process_new(state, now)
        print(f"\n--- {n:,} records ({segments} rotated segments; built in {built:.1f} s CPU)")
        print(
            f"bytes/record: {full:,.0f} in full (previous writer), {disk:,.0f} on disk folded "
            f"({full / disk:.1f}x smaller)"
        )
        print("lines: " + "; ".join(f"{k} {c:,} x {b:,.0f} B" for k, (c, b) in kinds.items()))
        print(f"unchanged repeat: {verdict(kinds['unchanged repeat'][1], GOAL_BYTES, 'B')}")
        print(
            f"status:              {status * 1e3:6.0f} ms CPU = {status / bare:5.1f}x python "
            f"-c pass, {status / max(tail, 1e-4):6.1f}x tail; "
            f"{verdict(status, GOAL_S, 's')}"
        )
        print(
            f"history --since 24h: {since * 1e3:6.0f} ms CPU = {since / bare:5.1f}x python "
            f"-c pass, {since / max(tail, 1e-4):6.1f}x tail; "
            f"{verdict(since, GOAL_S, 's')}"
        )
        print(
            f"status - empty-history status: {(status - status_empty) * 1e3:+.0f} ms "
            "(what the history costs it)"
        )
        print(
            f"tail -n {day} (one day): {tail * 1e3:.1f} ms CPU; reading every segment "
            f"(previous readers, in-process): {old * 1e3:,.0f} ms CPU"
        )
        print(
            f"in-process history reads: status {new_status * 1e3:.0f} ms, --since 24h "
            f"{new_since * 1e3:.0f} ms CPU (the rest of the figures above is imports, the "
            "ledger probe and printing)"
        )
        shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
