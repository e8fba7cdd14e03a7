"""Run every benchmark in quick mode and print its figures (``make bench``).

Benchmarks print ratios against a baseline measured in the same run (machines here are noisy);
they never assert on time. Pass ``--full`` for the full-size runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    full = "--full" in sys.argv[1:]
    failures = 0
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"\n=== {script.name} {'(full)' if full else '(quick)'} ===", flush=True)
        args = [sys.executable, str(script)] + ([] if full else ["--quick"])
        failures += subprocess.run(args, check=False).returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
