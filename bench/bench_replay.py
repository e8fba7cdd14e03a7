"""Benchmark: closed-loop replay CPU per month, and whether its cost is linear in length.

    .venv/bin/python bench/bench_replay.py            # 1 month vs 3 months of EUR/USD M1
    .venv/bin/python bench/bench_replay.py --pair usdjpy --months 4   # USD/JPY 2016-01 vs 01..04
    .venv/bin/python bench/bench_replay.py --quick    # 1 week vs 3 weeks of the bundled month

Each replay runs in a fresh interpreter (no memo or cache carried from one run to the next) and
reports the CPU time (user + sys) of ``run_replay`` alone, without imports or CSV parsing. Prints,
in the same run: the static replay of the first period (strategies, gates, broker and ledger
only: the baseline), the learning replay (every mechanism) of the first period and of all
periods, CPU per period, the multi/one ratio against the linear bound (issue 16: 4 months <=
4.5x one month, i.e. 1.125x per period; the tuner's and scalp trainer's windows reach 30-45
days, so a first month runs on windows still filling) and the goal of <= 10 CPU-s for a month
(the mean cycle times are wall clock, so they move with the machine's load). The months
beyond the bundled one come from the shared data (``../shared/data`` beside the repo, or
``$AUTOLEARN_SHARED_DATA``); when they are missing the bench says so and measures one month.
Never asserts on time (noisy machines).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "examples/data/fx/DAT_ASCII_EURUSD_M1_201807.csv"
SHARED = Path(os.environ.get("AUTOLEARN_SHARED_DATA", REPO.parent / "shared" / "data"))
# pair -> its months in order (the first EUR/USD one is bundled with the repo)
MONTHS = {
    "eurusd": [BUNDLED]
    + [SHARED / f"fx/histdata-paskl-fxot/DAT_ASCII_EURUSD_M1_2018{m:02d}.csv" for m in (8, 9)],
    "usdjpy": [
        SHARED / f"fx/histdata-calvincouch/DAT_ASCII_USDJPY_M1_2016{m:02d}.csv" for m in range(1, 7)
    ],
}
LINEAR_SLACK = 1.125  # issue 16: 4 months <= 4.5x one month
MONTH_GOAL_S = 10.0


def _child(spec: dict[str, object]) -> int:
    """One replay in this (fresh) interpreter; prints its figures as one JSON line."""
    import tempfile
    from datetime import timedelta

    from autolearn.cli._replay import load_replay_candles
    from autolearn.core.timestamps import from_epoch_us
    from autolearn.replay import ReplayConfig, run_replay, slice_candles
    from autolearn.settings import load_registry

    paths = [Path(str(p)) for p in spec["paths"]]  # type: ignore[attr-defined]
    candles = load_replay_candles(paths, None, None)
    weeks = int(spec.get("weeks", 0))  # type: ignore[call-overload]
    if weeks:
        start = from_epoch_us(int(candles.time_us[0]))
        candles = slice_candles(candles, start, start + timedelta(days=7 * weeks))
    config = ReplayConfig() if spec["learning"] else ReplayConfig(mechanisms=())
    registry = load_registry(None)
    with tempfile.TemporaryDirectory() as tmp:
        before = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.perf_counter()
        out = run_replay(candles, Path(tmp) / "run", config, registry)
        wall = time.perf_counter() - wall
        after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(
        json.dumps(
            {
                "bars": len(candles),
                "cpu_s": cpu,
                "wall_s": wall,
                "trades": out.summary["trades"],
                "cycle_ms": out.cycle_ms,
                "cycles": out.summary["cycles"],
            }
        )
    )
    return 0


def _measure(paths: list[Path], *, learning: bool, weeks: int = 0) -> dict[str, object]:
    spec = {"paths": [str(p) for p in paths], "learning": learning, "weeks": weeks}
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,  # the candles' source is stored as given: the same relative path each run
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _row(label: str, r: dict[str, object], periods: int, unit: str) -> str:
    cpu = float(r["cpu_s"])  # type: ignore[arg-type]
    return (
        f"{label:26s} {int(r['bars']):8,d} bars  {cpu:7.1f} CPU-s  "  # type: ignore[call-overload]
        f"{cpu / periods:6.1f} CPU-s/{unit}  {float(r['wall_s']):7.1f} s wall"  # type: ignore[arg-type]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="1 week vs 3 weeks of the bundled month"
    )
    parser.add_argument("--pair", choices=sorted(MONTHS), default="eurusd")
    parser.add_argument("--months", type=int, default=3, help="months in the long run (>= 2)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(json.loads(args.child))
    if args.quick:
        one: list[Path] = [BUNDLED]
        many, periods, unit = [BUNDLED], 3, "week"
    else:
        months = MONTHS[args.pair][: max(args.months, 2)]
        missing = [p for p in months if not p.exists()]
        if missing:
            print(f"shared data missing ({len(missing)} of {len(months)} months):")
            for p in missing:
                print(f"  {p}")
            print(
                "  the months beyond the bundled one live in ../shared/data beside the repo "
                "(or $AUTOLEARN_SHARED_DATA)"
            )
            months = months[: months.index(missing[0])]  # the consecutive months there are
            if not months:
                print(f"no {args.pair} month to replay: nothing measured")
                return 0
            if len(months) == 1:
                print("one month only: no multi-month ratio")
        one, many, periods, unit = months[:1], months, len(months), "month"
    weeks_one, weeks_many = (1, 3) if args.quick else (0, 0)
    name = "eurusd (bundled month)" if args.quick else args.pair
    print(f"{name}: 1 {unit}" + (f" and {periods} {unit}s" if periods > 1 else ""))
    static = _measure(one, learning=False, weeks=weeks_one)
    learning = _measure(one, learning=True, weeks=weeks_one)
    print(_row(f"static, 1 {unit}", static, 1, unit))
    print(_row(f"learning, 1 {unit}", learning, 1, unit))
    cycles = learning["cycle_ms"]
    assert isinstance(cycles, dict)
    for name, ms in sorted(cycles.items()):
        print(f"  {name:14s} {learning['cycles'][name]:5d} cycles, {ms:5.1f} ms each (wall)")  # type: ignore[index]
    l_cpu, s_cpu = float(learning["cpu_s"]), float(static["cpu_s"])  # type: ignore[arg-type]
    print(f"learning / static CPU, 1 {unit}: {l_cpu / s_cpu:.2f}x")
    if not args.quick:
        n_cycles = sum(learning["cycles"].values())  # type: ignore[attr-defined]
        per_cycle_ms = (l_cpu - s_cpu) / max(n_cycles, 1) * 1000
        verdict = (
            "met"
            if l_cpu <= MONTH_GOAL_S
            else f"missed by {l_cpu / MONTH_GOAL_S:.1f}x: the static replay is {s_cpu:.1f} s; "
            f"the other {l_cpu - s_cpu:.1f} s are {n_cycles:,} mechanism cycles at "
            f"~{per_cycle_ms:.1f} ms CPU each, every one reading and writing its state and "
            "appending a record (their decisions are about a third of it, by profile)"
        )
        print(f"goal <= {MONTH_GOAL_S:.0f} CPU-s for a month: {l_cpu:.1f} s ({verdict})")
    if many and periods > 1:
        long = _measure(many, learning=True, weeks=weeks_many)
        print(_row(f"learning, {periods} {unit}s", long, periods, unit))
        ratio = float(long["cpu_s"]) / l_cpu  # type: ignore[arg-type]
        bound = LINEAR_SLACK * periods
        verdict = "linear" if ratio <= bound else "grows faster than linear"
        print(f"{periods} {unit}s / 1 {unit} CPU: {ratio:.2f}x (bound {bound:.2f}x: {verdict})")
        for name, ms in sorted(long["cycle_ms"].items()):  # type: ignore[attr-defined]
            print(
                f"  {name:14s} {ms:5.1f} ms per cycle, wall (1 {unit}: {cycles.get(name, 0):.1f})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
