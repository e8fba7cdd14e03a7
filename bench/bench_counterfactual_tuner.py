"""Benchmark: does the counterfactual tuner find the known best threshold in 30 days? (issue 12)

    .venv/bin/python bench/bench_counterfactual_tuner.py                 # 50 seeds per scenario
    .venv/bin/python bench/bench_counterfactual_tuner.py --seeds 10 --minutes 60 --jobs 2
    .venv/bin/python bench/bench_counterfactual_tuner.py --only null

Every seed drives the real tuner cycle (``autolearn.knowntruth.run_cf_scenario``: synthetic M1
candles with known truth, every signal logged, arms honoured through the real runtime API, a
real SQLite ledger and state store, under /dev/shm when it exists) for 30 simulated days. The
scenarios (``CfScenario``; ~300 trades a month at the preset 0.65, per-trade sd ~5-6 pips):

- ``loosen``: s* = 0.62, the best value is 0.62 (two grid steps below the preset's max_step
  reach): "reached" = the LKG within one grid step of it at any time in the 30 days;
- ``at_best``: s* = 0.65, the preset is the best value: any move is harmful;
- ``null``: no signal has an edge: any applied move is a false proposal.

Also counted on every seed: applied moves the truth says lose P/L, and applied moves whose
recorded counterfactual evidence was not a confirmed gain (must be 0: "never applies a value
the counterfactual says is worse"). Rates carry Wilson 95 % intervals.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from autolearn.knowntruth import CfOutcome, CfScenario, run_cf_scenario

SCENARIOS = {
    "loosen": CfScenario(name="loosen", s_star=0.62),
    "at_best": CfScenario(name="at_best", s_star=0.65),
    "null": CfScenario(name="null", s_star=None),
}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate(label: str, k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{label}: {k}/{n} = {k / n:.1%} [95% CI {lo:.1%}, {hi:.1%}]" if n else f"{label}: -"


def _one(job: tuple[str, int, int]) -> CfOutcome:
    name, seed, minutes = job
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp:
        return run_cf_scenario(replace(SCENARIOS[name], minutes=minutes), seed, Path(tmp))


def report(name: str, outcomes: list[CfOutcome], seconds: float) -> None:
    n = len(outcomes)
    moved = sum(1 for o in outcomes if o.applied)
    worse = sum(1 for o in outcomes if o.worse_applied)
    unconfirmed = sum(o.cf_not_improving for o in outcomes)
    print(f"\n[{name}] {n} seeds, {seconds:.0f} s")
    if name == "loosen":
        print(
            "  "
            + rate(
                "best value +/- 1 step within 30 days (LKG)", sum(o.reached for o in outcomes), n
            )
        )
    if name == "at_best":
        print("  " + rate("harmful candidate rejected before going live", n - worse, n))
    if name == "null":
        print("  " + rate("false proposal applied", moved, n))
    print("  " + rate("seeds with any applied move", moved, n))
    print("  " + rate("seeds applying a truly worse value", worse, n))
    print(f"  applied moves without a confirmed counterfactual gain: {unconfirmed} (must be 0)")
    finals: dict[float, int] = {}
    for o in outcomes:
        finals[round(o.final_lkg, 2)] = finals.get(round(o.final_lkg, 2), 0) + 1
    print(f"  final LKG values: {dict(sorted(finals.items()))}")
    verdicts: dict[str, int] = {}
    for o in outcomes:
        for code in ("cf_confirmed", "cf_contradicted", "worse_than_lkg"):
            if o.reasons.get(code):
                verdicts[code] = verdicts.get(code, 0) + 1
    print(f"  seeds whose flights ended with: {verdicts}")
    for o in outcomes:
        moves = " -> ".join(f"{after:g}" for _, after in o.applied) or "none"
        print(f"    seed {o.seed}: moves {moves}; final LKG {o.final_lkg:g}, reached {o.reached}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds first..first+seeds-1 (extend a run)"
    )
    parser.add_argument("--minutes", type=int, default=10, help="between tuner runs")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--only", choices=sorted(SCENARIOS))
    args = parser.parse_args(argv)
    names = [args.only] if args.only else list(SCENARIOS)
    print(f"counterfactual tuner known truth: {args.seeds} seeds, tuner every {args.minutes} min")
    for name in names:
        start = time.perf_counter()
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        jobs = [(name, seed, args.minutes) for seed in seeds]
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            outcomes = list(pool.map(_one, jobs))
        report(name, outcomes, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
