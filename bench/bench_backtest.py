"""Benchmark: backtest parameter evaluations per second on a month of real EUR/USD M1 bars.

Workload (the same as docs/reference/anchors.md "Backtest engines on real data", except that
fills are at the next bar's open): SMA(fast)/SMA(slow) crossover on the close, stop-and-reverse,
SL 10 / TP 15 pips from the fill, 10,000 units, no spread or fees, on HistData
DAT_ASCII_EURUSD_M1_201807.csv (32,019 bars). Grid: fast 5..50 step 5 x slow 60..240 step 20 =
100 knob sets (``--quick`` uses the same grid; it only runs fewer backtesting.py evaluations).

Engines, all measured in this run on this machine:
  * autolearn (numba kernel): the whole grid in one ``run_grid`` call, warm (JIT excluded and
    reported separately as the first-call time).
  * backtesting.py 0.6.6: a loop of ``Backtest.run`` on a subset of the grid; its rate is per
    evaluation and extrapolated to the grid (it is the baseline of the ratios).
  * vectorbt: only if importable (it is not a project dependency), here or under the
    interpreter given by ``--vectorbt-python``; else says so.

Also measured (issue 16, backtest row): the CSV load (``load_candles``, vectorised) against
``numpy.loadtxt`` / ``numpy.genfromtxt`` of the same file and against the row-by-row parser it
replaced (``_parsers.parse_histdata``), CPU in this process; and the whole-process sweep (start
the interpreter, import, load, first call, 100 sets) as the CPU of a child process
(``os.wait4``), with its phases and the numba disk-cache hits, against ``python -c pass`` and
``python -c "import numpy"``. Goals: >= 30x vectorbt warm; whole-process sweep <= 0.5 s CPU.

Prints numbers, never asserts on time. Reads ../shared/data relative to the repo root and exits 0
with a message when the file is missing.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "fx" / "histdata-paskl-fxot"
DATA = DATA / "DAT_ASCII_EURUSD_M1_201807.csv"
FAST = list(range(5, 55, 5))
SLOW = list(range(60, 260, 20))
SL_PIPS, TP_PIPS, UNITS, PIP = 10.0, 15.0, 10_000, 0.0001


def _ours(candles, grid: list[dict[str, float]]) -> tuple[float, float, object]:
    from autolearn.backtest import run_grid

    t0 = time.perf_counter()
    run_grid(candles, "sma_cross", grid[:1])  # JIT compile (or load from the disk cache)
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        result = run_grid(candles, "sma_cross", grid)
        best = min(best, time.perf_counter() - t0)
    return first, best, result


def _backtesting_py(candles, subset: list[dict[str, float]]) -> tuple[float, list[int]]:
    """Seconds per evaluation of backtesting.py on ``subset``, and its trade counts."""
    import pandas as pd

    os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar
    from backtesting import Backtest
    from backtesting import Strategy as BtStrategy
    from backtesting.lib import crossover

    index = pd.to_datetime(candles.time_us, unit="us")
    df = pd.DataFrame(
        {
            "Open": candles.open,
            "High": candles.high,
            "Low": candles.low,
            "Close": candles.close,
            "Volume": candles.volume,
        },
        index=index,
    )
    opens = candles.open

    class Peer(BtStrategy):
        fast = 10
        slow = 20

        def init(self) -> None:
            close = pd.Series(self.data.Close)
            # rounded: pandas' last-bit noise would turn exact ties into pseudo-crosses
            self.f = self.I(lambda: close.rolling(self.fast).mean().round(12).to_numpy())
            self.s = self.I(lambda: close.rolling(self.slow).mean().round(12).to_numpy())

        def next(self) -> None:
            i = len(self.data) - 1
            if i + 1 >= len(opens):
                return
            fill = opens[i + 1]
            # one position at a time, as ours: a same-side signal does not close and reopen
            up = crossover(self.f, self.s) and not self.position.is_long
            down = crossover(self.s, self.f) and not self.position.is_short
            if up or down:
                for trade in self.trades:
                    trade.sl = None
                    trade.tp = None
            try:
                if up:
                    self.buy(size=UNITS, sl=fill - SL_PIPS * PIP, tp=fill + TP_PIPS * PIP)
                elif down:
                    self.sell(size=UNITS, sl=fill + SL_PIPS * PIP, tp=fill - TP_PIPS * PIP)
            except ValueError:
                pass  # the next open gapped past a level; ours would exit at that open

    counts = []
    t0 = time.perf_counter()
    for params in subset:
        bt = Backtest(
            df,
            Peer,
            cash=1e9,
            spread=0.0,
            commission=0.0,
            trade_on_close=False,
            exclusive_orders=True,
            finalize_trades=True,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stats = bt.run(fast=int(params["fast"]), slow=int(params["slow"]))
        counts.append(int(stats["# Trades"]))
    return (time.perf_counter() - t0) / len(subset), counts


def _vectorbt(candles, grid: list[dict[str, float]]) -> tuple[float, float] | str:
    """(first-call s, warm s) for one broadcast ``Portfolio.from_signals``, or why not.

    Semantics are vectorbt's (fills at the signal bar's close, SL/TP as a fraction of the fill,
    here 10/15 pips at the month's mean price, stops checked on high/low): a speed comparison.
    """
    try:
        import vectorbt as vbt
    except Exception as exc:  # any import failure means "unavailable", reported as such
        return f"unavailable ({type(exc).__name__}: {exc}); not a project dependency"
    import pandas as pd

    from autolearn.backtest.strategies import get_strategy

    index = pd.to_datetime(candles.time_us, unit="us")
    close = pd.Series(candles.close, index=index)
    ohl = {k: pd.Series(getattr(candles, k), index=index) for k in ("open", "high", "low")}
    signals = get_strategy("sma_cross").signals(candles, grid).T  # same crosses as ours
    up, down = signals == 1, signals == -1
    mean = float(candles.close.mean())

    def once() -> None:
        vbt.Portfolio.from_signals(
            close,
            entries=up,
            exits=down,
            short_entries=down,
            short_exits=up,
            **ohl,
            sl_stop=SL_PIPS * PIP / mean,
            tp_stop=TP_PIPS * PIP / mean,
            size=UNITS,
            freq="1min",
        )

    t0 = time.perf_counter()
    once()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    once()
    return first, time.perf_counter() - t0


def _vectorbt_elsewhere(python: str) -> tuple[float, float] | str:
    """Run the vectorbt measurement under another interpreter (e.g. a throwaway venv)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [python, __file__, "--vectorbt-only"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return f"unavailable under {python} (exit {proc.returncode}: {proc.stderr[-300:]})"
    answer = json.loads(lines[-1])
    return answer if isinstance(answer, str) else (answer[0], answer[1])


GOAL_SWEEP_CPU_S, GOAL_VS_VECTORBT = 0.5, 30.0


def _cpu_best(work: Callable[[], object], runs: int) -> float:
    """Best-of-``runs`` CPU seconds of ``work()`` in this process."""
    best = float("inf")
    for _ in range(runs):
        t0 = time.process_time()
        work()
        best = min(best, time.process_time() - t0)
    return best


def _load_figures(runs: int) -> None:
    """CSV load: ours vs numpy's text readers and vs the row-by-row parser, same file, CPU."""
    import numpy as np

    from autolearn.backtest import _bulk, _parsers, load_candles

    text = DATA.read_text(encoding="utf-8-sig")
    cols = (1, 2, 3, 4, 5)
    figures = {
        "load_candles (all of it)": _cpu_best(lambda: load_candles(DATA), runs),
        "  its parse (_bulk)": _cpu_best(lambda: _bulk.bulk_histdata(text), runs),
        "numpy.loadtxt (prices only)": _cpu_best(
            lambda: np.loadtxt(io.StringIO(text), delimiter=";", usecols=cols), runs
        ),
        "numpy.genfromtxt (prices)": _cpu_best(
            lambda: np.genfromtxt(io.StringIO(text), delimiter=";", usecols=cols), runs
        ),
        "row parser (previous)": _cpu_best(
            lambda: _bulk.row_arrays(_parsers.parse_histdata(text)), max(1, runs // 2)
        ),
    }
    base = figures["numpy.loadtxt (prices only)"]
    print(f"CSV load of {DATA.name}, CPU in this process (best of {runs}):")
    for name, cpu in figures.items():
        print(f"  {name:28s}: {cpu * 1000:7.1f} ms ({cpu / base:4.2f}x numpy.loadtxt)")


_SWEEP_CHILD = """
import sys, time
cpu = time.process_time
t0 = cpu()
import numpy
t1 = cpu()
from autolearn.backtest import _kernel, expand_grid, load_candles, run_grid
t2 = cpu()
candles = load_candles(sys.argv[1])
t3 = cpu()
grid = expand_grid({"fast": %r, "slow": %r, "sl_pips": [%r], "tp_pips": [%r]})
run_grid(candles, "sma_cross", grid[:1])
t4 = cpu()
run_grid(candles, "sma_cross", grid)
t5 = cpu()
hits = sum(_kernel.simulate.stats.cache_hits.values())
misses = sum(_kernel.simulate.stats.cache_misses.values())
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, hits, misses)
"""


def _child_cpu(argv: list[str]) -> tuple[float, str]:
    """CPU seconds (user + system) of one child process, from its own rusage, and its stdout."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.stdout:
        proc.stdout.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:3]} exited {proc.returncode}")
    return usage.ru_utime + usage.ru_stime, out


def _whole_process(runs: int) -> float:
    """Whole-process sweep CPU (best of ``runs``), with its phases; returns the CPU seconds."""
    py = sys.executable
    code = _SWEEP_CHILD % (FAST, SLOW, SL_PIPS, TP_PIPS)
    best: tuple[float, str] = (float("inf"), "")
    for _ in range(runs):
        cpu, out = _child_cpu([py, "-c", code, str(DATA)])
        best = min(best, (cpu, out))
    bare = min(_child_cpu([py, "-c", "pass"])[0] for _ in range(runs))
    with_numpy = min(_child_cpu([py, "-c", "import numpy"])[0] for _ in range(runs))
    numpy_s, imports, load, first, sweep, hits, misses = best[1].split()
    print(
        f"whole-process sweep (python, import, load {DATA.name}, {len(FAST) * len(SLOW)} sets), "
        f"child CPU, best of {runs}: {best[0]:.2f} s\n"
        f"  phases: numpy import {float(numpy_s):.3f}, autolearn.backtest + numba import "
        f"{float(imports):.3f}, load_candles {float(load):.3f}, first call {float(first):.3f} "
        f"(numba disk cache: {hits} hits, {misses} misses), sweep {float(sweep):.3f} s\n"
        f"  baselines: python -c pass {bare:.2f} s, python -c 'import numpy' {with_numpy:.2f} s "
        f"(sweep = {best[0] / with_numpy:.1f}x the numpy import)"
    )
    return best[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer backtesting.py runs (< 30 s)")
    parser.add_argument(
        "--vectorbt-python",
        default="",
        help="interpreter that can import vectorbt (e.g. a throwaway venv)",
    )
    parser.add_argument("--vectorbt-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not DATA.is_file():
        print(f"bench_backtest: data file missing ({DATA}); nothing measured")
        return 0
    if args.vectorbt_only:  # child mode of --vectorbt-python: one JSON line
        from autolearn.backtest import expand_grid, load_candles

        grid = expand_grid({"fast": FAST, "slow": SLOW})
        print(json.dumps(_vectorbt(load_candles(DATA), grid)))
        return 0
    t0 = time.perf_counter()
    from autolearn.backtest import expand_grid, load_candles

    candles = load_candles(DATA)
    print(f"loaded {len(candles)} {candles.instrument} M1 bars in {time.perf_counter() - t0:.2f} s")
    print(f"load: {os.getloadavg()[0]:.1f} (1-min average, {os.cpu_count()} CPUs)")
    _load_figures(runs=3 if args.quick else 7)
    sweep_cpu = _whole_process(runs=3 if args.quick else 5)
    grid = expand_grid({"fast": FAST, "slow": SLOW, "sl_pips": [SL_PIPS], "tp_pips": [TP_PIPS]})

    first, warm, result = _ours(candles, grid)
    ours_rate = len(grid) / warm
    n_trades = result.metric("n_trades")  # type: ignore[attr-defined]
    print(
        f"autolearn   : {len(grid)} sets in {warm:.3f} s warm = {ours_rate:,.0f} evals/s "
        f"({ours_rate * len(candles) / 1e6:,.0f} M bar-evals/s); first call {first:.2f} s "
        f"(JIT or disk cache); trades/set {n_trades.min():.0f}-{n_trades.max():.0f}"
    )

    subset = grid[:: len(grid) // (2 if args.quick else 8)][: 2 if args.quick else 8]
    per_eval, counts = _backtesting_py(candles, subset)
    bt_rate = 1.0 / per_eval
    print(
        f"backtesting : {len(subset)} of the {len(grid)} sets, {per_eval:.2f} s each = "
        f"{bt_rate:.2f} evals/s (extrapolated per evaluation: {len(grid) * per_eval:.0f} s "
        "for the grid, 1 core)"
    )
    ours_counts = [int(n_trades[grid.index(p)]) for p in subset]
    print(f"  trade counts, backtesting.py vs autolearn on that subset: {counts} vs {ours_counts}")

    if args.vectorbt_python:
        vbt = _vectorbt_elsewhere(args.vectorbt_python)
    else:
        vbt = _vectorbt(candles, grid)
    if isinstance(vbt, str):
        print(f"vectorbt    : {vbt} (try --vectorbt-python /path/to/venv/bin/python)")
    else:
        v_first, v_warm = vbt
        print(
            f"vectorbt    : {len(grid)} sets broadcast in {v_warm:.2f} s warm = "
            f"{len(grid) / v_warm:,.1f} evals/s (first call {v_first:.1f} s)"
        )

    print("ratios vs backtesting.py measured in this run (evals/s):")
    print(f"  autolearn / backtesting.py = {ours_rate / bt_rate:,.0f}x")
    if not isinstance(vbt, str):
        print(f"  vectorbt  / backtesting.py = {len(grid) / vbt[1] / bt_rate:,.0f}x")
    print("goals (issue 16):")
    if isinstance(vbt, str):
        print(f"  >= {GOAL_VS_VECTORBT:.0f}x vectorbt warm: not measured here (vectorbt {vbt})")
    else:
        ratio = vbt[1] / warm
        verdict = (
            "met" if ratio >= GOAL_VS_VECTORBT else f"missed by {GOAL_VS_VECTORBT / ratio:.1f}x"
        )
        print(f"  >= {GOAL_VS_VECTORBT:.0f}x vectorbt warm: {ratio:.1f}x, {verdict}")
    verdict = (
        "met"
        if sweep_cpu <= GOAL_SWEEP_CPU_S
        else f"missed by {sweep_cpu - GOAL_SWEEP_CPU_S:.2f} s (see the phases: imports dominate)"
    )
    print(f"  whole-process sweep <= {GOAL_SWEEP_CPU_S} s CPU: {sweep_cpu:.2f} s, {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
