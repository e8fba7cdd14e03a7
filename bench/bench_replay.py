"""Benchmark: closed-loop replay speed on the bundled real month of EUR/USD M1.

    .venv/bin/python bench/bench_replay.py            # the whole month (32k bars), all mechanisms
    .venv/bin/python bench/bench_replay.py --quick    # its first week

Prints bars per second with every mechanism on (target: the month in under 60 s) against the
static replay of the same bars measured in the same run (strategies, gates, broker and ledger
only), and the mean cost of one cycle per mechanism. Never asserts on time (noisy machines).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from autolearn.backtest import load_candles
from autolearn.core.timestamps import from_epoch_us
from autolearn.replay import ReplayConfig, run_replay, slice_candles
from autolearn.settings import load_registry

MONTH = Path(__file__).resolve().parents[1] / "examples/data/fx/DAT_ASCII_EURUSD_M1_201807.csv"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="first week only")
    args = parser.parse_args()
    candles = load_candles(MONTH)
    if args.quick:
        start = from_epoch_us(int(candles.time_us[0]))
        candles = slice_candles(candles, start, start + timedelta(days=7))
    registry = load_registry(None)
    with tempfile.TemporaryDirectory() as tmp:
        static = run_replay(candles, Path(tmp) / "static", ReplayConfig(mechanisms=()), registry)
        learning = run_replay(candles, Path(tmp) / "learning", ReplayConfig(), registry)
    print(f"bars: {len(candles):,} ({candles.instrument} M1)")
    print(f"static (no mechanism):  {static.wall_s:6.1f} s  {static.bars_per_s:8,.0f} bars/s")
    print(f"learning (all on):      {learning.wall_s:6.1f} s  {learning.bars_per_s:8,.0f} bars/s")
    for name, ms in sorted(learning.cycle_ms.items()):
        print(f"  {name:14s} {learning.summary['cycles'][name]:5d} cycles, {ms:5.1f} ms each")
    month_s = 32_019 / learning.bars_per_s
    print(f"a month of M1 (32,019 bars) at this speed: {month_s:.0f} s (target < 60 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
