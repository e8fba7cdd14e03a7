"""Benchmark: does the learning decide at FX variance and real trade rates? (known truth)

    .venv/bin/python bench/bench_judge.py             # 200 seeds per scenario (~70 CPU-min)
    .venv/bin/python bench/bench_judge.py --quick     # 20 seeds per scenario
    .venv/bin/python bench/bench_judge.py --seeds 50 --only harm_0.8

Every seed drives the real tuner cycle (``autolearn.knowntruth``: real runtime API with
concurrent arms, real SQLite ledger and state store) at simulated times; per-trade P/L is
N(mu, 5 pips). Each scenario's first change is followed until it ends; the figures are rates
with Wilson 95 % intervals and medians with bootstrap 95 % intervals over the seeds. The
fixed-sample optimum is the textbook one-sided z-test size at the same alpha, power 0.95 and the
same arm allocation, printed next to the sequential median it is the yardstick for.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

from autolearn.core.judge import fixed_sample_size
from autolearn.core.lifecycle import FlightSettings
from autolearn.knowntruth import FlightOutcome, Scenario, first_flight, make_bot
from autolearn.tuner import TunerConfig

SD = 5.0
SCENARIOS = {
    # a no-effect flight runs to its deadline: hourly looks keep 200 seeds affordable
    "null": Scenario(name="null", effect_pips=0.0, minutes=60),
    "harm_0.8": Scenario(name="harm_0.8", effect_pips=-0.8, minutes=30),
    "harm_2.3": Scenario(name="harm_2.3", effect_pips=-2.3, minutes=10),
    "help_1.0": Scenario(name="help_1.0", effect_pips=1.0, minutes=30),
    "before_after_null": Scenario(
        name="before_after_null", effect_pips=0.0, minutes=60, pass_units=False
    ),
    "before_after_harm_0.8": Scenario(
        name="before_after_harm_0.8", effect_pips=-0.8, minutes=30, pass_units=False
    ),
}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def median_ci(values: Sequence[float], rounds: int = 2000) -> tuple[float, float, float]:
    if not values:
        return (math.nan, math.nan, math.nan)
    rng = random.Random(0)
    boots = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(rounds))
    return (statistics.median(values), boots[int(0.025 * rounds)], boots[int(0.975 * rounds)])


def _one(job: tuple[str, int]) -> dict[str, object]:
    name, seed = job
    with tempfile.TemporaryDirectory() as tmp:
        outcome = first_flight(SCENARIOS[name], seed, Path(tmp))
    return {"scenario": name, **asdict(outcome)}


def rate(label: str, k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{label}: {k}/{n} = {k / n:.1%} [95% CI {lo:.1%}, {hi:.1%}]" if n else f"{label}: -"


def report(name: str, outcomes: list[FlightOutcome]) -> None:
    n = len(outcomes)
    by = {d: [o for o in outcomes if o.decision == d] for d in ("rollback", "revert", "promote")}
    hard = [o for o in by["rollback"] if o.reason.startswith("hard_limit")]
    print(f"\n[{name}] {n} seeds; P/L sd {SD} pips; effect {SCENARIOS[name].effect_pips:+} pips")
    print("  " + rate("rolled back (harm or hard limit)", len(by["rollback"]), n))
    print("  " + rate("  of which by a hard limit", len(hard), n))
    print("  " + rate("reverted at the deadline (undecided)", len(by["revert"]), n))
    print("  " + rate("promoted", len(by["promote"]), n))
    print("  " + rate("removed (rollback or revert)", len(by["rollback"]) + len(by["revert"]), n))
    decided = by["rollback"] if SCENARIOS[name].effect_pips < 0 else by["promote"]
    if decided:
        med, lo, hi = median_ci([o.n_candidate for o in decided])
        print(f"  median candidate trades to the decision: {med:.0f} [95% CI {lo:.0f}, {hi:.0f}]")
        hours = statistics.median(o.hours for o in decided)
        print(f"  median simulated hours to the decision: {hours:.1f}")
    effect = abs(SCENARIOS[name].effect_pips) / SD
    if effect:
        share = FlightSettings().arms.candidate_share
        alpha = FlightSettings().judge.alpha
        optimum = fixed_sample_size(effect, alpha, 0.95, (1 - share) / share)
        print(
            f"  fixed-sample optimum (one-sided z, alpha {alpha}, power 0.95, "
            f"{share:.0%} candidate share): {optimum} candidate trades"
        )
        if decided:
            print(f"  ratio median / optimum: {med / optimum:.2f}")
    modes = sorted({o.baseline_mode for o in outcomes if o.baseline_mode})
    print(f"  baseline modes seen: {modes}")


def realistic_rate(seeds: int) -> None:
    """300 trades a month for 30 simulated days: does the tuner decide at all?"""
    tph = 300 / (30 * 24)
    decided = 0
    applied = 0
    for seed in range(seeds):
        with tempfile.TemporaryDirectory() as tmp:
            bot = make_bot(
                Path(tmp),
                Scenario(name="rate", effect_pips=-2.3, base_pips=-2.0).truth(),
                seed=seed,
                trades_per_hour=tph,
            )
            records = bot.run(30 * 24, minutes=60)
            bot.ledger.close()
        decisions = [
            r["decision"] for r in records if r.get("applied") or r["decision"] == "promote"
        ]
        applied += "apply" in decisions
        decided += any(d in ("rollback", "revert", "promote") for d in decisions)
    print(f"\n[rate_300_per_month] {seeds} seeds x 30 days, {tph:.2f} trades/h, tuner hourly")
    print("  " + rate("seeds with an apply within the month", applied, seeds))
    print(
        "  " + rate("seeds whose change was also judged (promote/rollback/revert)", decided, seeds)
    )


def thin_market(seeds: int) -> None:
    """2 trades an hour for 24 h: nothing may move, and the records say why."""
    moved = 0
    reasons: set[str] = set()
    for seed in range(seeds):
        with tempfile.TemporaryDirectory() as tmp:
            bot = make_bot(
                Path(tmp),
                Scenario(name="thin", effect_pips=0.0).truth(),
                seed=seed,
                trades_per_hour=2.0,
            )
            records = bot.run(24)
            bot.ledger.close()
        moved += any(r.get("applied") for r in records)
        reasons |= {x for r in records for x in r["reasons"] if x.startswith("micro.entry:")}
    print(
        f"\n[thin_2_per_hour] {seeds} seeds x 24 h: {moved} moved a knob; reasons {sorted(reasons)}"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 seeds per scenario")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--only", action="append", choices=[*SCENARIOS, "rate", "thin"])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    seeds = args.seeds or (20 if args.quick else 200)
    names = args.only or [*SCENARIOS, "rate", "thin"]
    config = TunerConfig()
    print(
        f"known-truth judge benchmark: {seeds} seeds; defaults {config.flight.judge}, "
        f"candidate share {config.flight.arms.candidate_share}, deadline "
        f"{config.flight.deadline_trades} candidate trades, min_trades {config.min_trades}"
    )
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    jobs = [(name, seed) for name in names if name in SCENARIOS for seed in range(seeds)]
    results: dict[str, list[FlightOutcome]] = {}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for row in pool.map(_one, jobs, chunksize=4):
            name = str(row.pop("scenario"))
            results.setdefault(name, []).append(FlightOutcome(**row))  # type: ignore[arg-type]
    for name, outcomes in results.items():
        report(name, outcomes)
    if "rate" in names:
        realistic_rate(max(3, seeds // 10))
    if "thin" in names:
        thin_market(max(3, seeds // 10))
    wall = timedelta(seconds=round(time.perf_counter() - start_wall))
    print(
        f"\nwall {wall} on {args.workers} worker processes "
        f"(parent CPU {time.process_time() - start_cpu:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
