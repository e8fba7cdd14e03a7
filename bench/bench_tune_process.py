"""Benchmark: what a tune run and a worker cost, whole process, at 10k / 100k / 1M ledger rows.

Usage: ``python bench/bench_tune_process.py [--quick] [--runs N] [--sizes 10000,100000]``.
Default sizes are 10,000, 100,000 and 1,000,000 trades (``--quick``: the first two); ledgers
are built once by ``bench_tune.build_ledger`` into ``bench/results/cache/`` (gitignored).

Printed per size, each a median of ``--runs`` runs in CPU time (user + sys, never wall: the
machines are shared), beside baselines measured in the same run:

- ``autolearn tune`` as systemd runs it (settings in the environment, a fresh state dir each
  run), against ``python -c pass`` and against a plain ``sqlite3`` query of the same rows
  (a Python process that only fetches the window the tuner reads);
- where that process's CPU goes: the interpreter, the imports of the tune path,
  ``scipy.special`` (the t/Beta quantiles), and the cycle itself;
- the cycle in-process (lock, read, decide, record) through ``open_reader`` (what ``tune``
  opens: ``sqlite3``) and through ``SqlLedger`` (SQLAlchemy, the PostgreSQL path), with the
  check that both produce the same decision record;
- a worker (``autolearn.connect``: Tuning + Gates + TradeWriter): import CPU, and CPU and peak
  RSS over a bare interpreter after ``connect``.

Then each issue-16 goal reads "met" or "missed by X: <where the cost is>". The machine load
(``os.getloadavg``) is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import installed_env
from bench_tune import CACHE, START, build_ledger

from autolearn.adapters.state import StateStore
from autolearn.ledger.sql import SqlLedger
from autolearn.ledger.sqlite_reader import open_reader
from autolearn.settings import load_registry
from autolearn.tuner import TunerConfig, run_cycle

GOAL_TUNE_S = 0.2  # whole process on a quiet machine
GOAL_TUNE_X_PASS = 20.0  # ... i.e. within ~20x of `python -c pass`
GOAL_CYCLE_MS = 20.0
GOAL_WORKER_MB = 15.0
GOAL_WORKER_IMPORT_MS = 100.0
_HEAVY = ("sqlalchemy", "structlog", "pydantic", "yaml", "numpy", "scipy")


_HWM = "__bench_hwm_kb__"
# Printed by every child at exit: its own peak RSS. (``ru_maxrss`` of a child forked from this
# process counts the pages it shared with us before ``exec``: ~90 MB for ``pass``.)
_FOOTER = (
    "\nimport atexit as _a, sys as _s\n"
    "def _hwm():\n"
    "    for _l in open('/proc/self/status'):\n"
    "        if _l.startswith('VmHWM:'):\n"
    f"            _s.stderr.write('{_HWM} ' + _l.split()[1] + '\\n')\n"
    "_a.register(_hwm)\n"
)


def _child_cpu(code: str, env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """CPU seconds (user + sys) and peak RSS (MB) of one ``python -c code``, and its stdout."""
    argv = [sys.executable, "-c", _FOOTER + code]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=installed_env(env))
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode()
        if proc.returncode != 0:
            raise RuntimeError(f"python -c {code[:60]!r} exited {proc.returncode}: {text[-2000:]}")
        hwm = [line for line in text.splitlines() if line.startswith(_HWM)]
        out.seek(0)
        rss_mb = int(hwm[-1].split()[1]) / 1024 if hwm else float("nan")
        return usage.ru_utime + usage.ru_stime, rss_mb, out.read().decode()


def _median_cpu(runs: int, one: Callable[[], tuple[float, float, str]]) -> tuple[float, float]:
    samples = [one() for _ in range(runs)]
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


# The console script's own code path (``autolearn._entry.entrypoint``), as systemd runs it.
_TUNE = (
    "import sys\nsys.argv = ['autolearn', 'tune', '--json']\n"
    "from autolearn._entry import entrypoint\nentrypoint()\n"
)


def _window_query(url: str, now_us: int, config: TunerConfig) -> str:
    """A Python process fetching the rows the tuner reads (its pockets, its 45-day window)."""
    path = url.removeprefix("sqlite:///")
    since = now_us - int(config.max_lookback.total_seconds() * 1e6)
    pockets = sorted({*config.exit_pockets, config.micro_pocket})
    return (
        "import sqlite3\n"
        f"c = sqlite3.connect({path!r})\n"
        "rows = c.execute('SELECT * FROM trades WHERE close_at_us >= ? AND close_at_us <= ? "
        "AND +pocket IN (%s) ORDER BY close_at_us, broker_trade_id, close_tx_id' % "
        f"','.join('?' * {len(pockets)}), ({since}, {now_us}, *{pockets!r})).fetchall()\n"
        "print(len(rows))\n"
    )


def _in_process_cycle(
    url: str, n: int, runs: int, registry: Any, opener: Callable[[str], Any]
) -> tuple[float, dict[str, Any]]:
    """Median CPU ms of ``run_cycle`` on a fresh state dir, and the last record."""
    now = START + timedelta(minutes=n, seconds=60)
    times, record = [], {}
    with opener(url) as ledger:
        for run in range(runs + 1):
            state_dir = CACHE / f"proc_state_{run}"
            shutil.rmtree(state_dir, ignore_errors=True)
            store = StateStore(state_dir, registry)
            started = time.process_time()
            record = run_cycle(store, ledger, TunerConfig(), now, run_id="bench")
            elapsed = time.process_time() - started
            shutil.rmtree(state_dir, ignore_errors=True)
            if run:  # the first run warms imports (scipy.special) and the page cache
                times.append(elapsed)
    return statistics.median(times) * 1000, record


class _Previous:
    """The read path before issue 16, for the baseline: ``SqlLedger`` with every row through
    ``Trade``'s validating constructor and the pockets filtered in Python (no
    ``trades_in_pockets``: ``_read_trades`` then takes its generic branch)."""

    def __init__(self, url: str) -> None:
        self._ledger = SqlLedger.open(url)

    def __getattr__(self, name: str) -> Any:
        if name == "trades_in_pockets":
            raise AttributeError(name)
        return getattr(self._ledger, name)

    def __enter__(self) -> _Previous:
        return self

    def __exit__(self, *exc: object) -> None:
        self._ledger.close()

    def trades(self, **filters: Any) -> list[Any]:
        import autolearn.ledger.sql as sql_module
        from autolearn.ledger._rows import _trade_from_row

        decode = sql_module.trade_from_row
        sql_module.trade_from_row = _trade_from_row  # type: ignore[assignment]
        try:
            return self._ledger.trades(**filters)
        finally:
            sql_module.trade_from_row = decode


def _verdict(value: float, goal: float, unit: str, why: str) -> str:
    if value <= goal:
        return f"met ({value:.1f} {unit} <= {goal:g} {unit})"
    return f"missed by {value - goal:.1f} {unit} ({value / goal:.1f}x the goal): {why}"


def bench_size(n: int, runs: int, registry: Any, env_file: Path) -> dict[str, Any]:
    base_version = StateStore(CACHE / "unused", registry).base_version()
    url, build_s = build_ledger(n, base_version)
    print(
        f"\n--- {n:,}-trade ledger ({'reused' if build_s is None else f'built in {build_s:.0f} s'})"
    )
    config = TunerConfig()
    with SqlLedger.open(url) as ledger:  # brings the cached ledger to this schema first
        last = ledger.last_close_at()
    assert last is not None
    now_us = int(last.timestamp() * 1e6) + 1

    state_root = Path(tempfile.mkdtemp(prefix="bench_tune_state_"))  # removed after the heavy check
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AUTOLEARN_")},
        "AUTOLEARN_LEDGER_URL": url,
        "AUTOLEARN_ENV_FILE": str(env_file),
    }
    counter = iter(range(10_000))

    def tune_once() -> tuple[float, float, str]:
        run_env = env | {"AUTOLEARN_STATE_DIR": str(state_root / str(next(counter)))}
        return _child_cpu(_TUNE, run_env)

    _child_cpu(_TUNE, env | {"AUTOLEARN_STATE_DIR": str(state_root / "warm")})
    tune_s, tune_mb = _median_cpu(runs, tune_once)
    pass_s, pass_mb = _median_cpu(runs, lambda: _child_cpu("pass"))
    print(f"python -c pass: {pass_s * 1000:.0f} ms CPU, peak {pass_mb:.1f} MB")
    query = _window_query(url, now_us, config)
    query_s, _ = _median_cpu(runs, lambda: _child_cpu(query))
    rows = int(_child_cpu(query)[2])
    imports = (
        "from autolearn.cli import _register\n_register(['tune'])\n"
        "import autolearn.tuner, autolearn.ledger.sqlite_reader\n"
    )
    imports_s, _ = _median_cpu(runs, lambda: _child_cpu(imports))
    # what the t/Beta quantiles cost before core/distributions.py: scipy.special's import
    scipy_s, _ = _median_cpu(runs, lambda: _child_cpu("import scipy.special"))
    heavy_file = state_root / "heavy.txt"
    _child_cpu(
        f"import atexit, sys\natexit.register(lambda: open({str(heavy_file)!r}, 'w').write("
        f"' '.join(m for m in {_HEAVY!r} if m in sys.modules)))\n" + _TUNE,
        env | {"AUTOLEARN_STATE_DIR": str(state_root / "heavy")},
    )
    heavy = heavy_file.read_text().strip()

    shutil.rmtree(state_root, ignore_errors=True)
    fast_ms, fast_record = _in_process_cycle(url, n, runs, registry, open_reader)
    sql_ms, sql_record = _in_process_cycle(url, n, runs, registry, SqlLedger.open)
    old_ms, old_record = _in_process_cycle(url, n, runs, registry, _Previous)
    texts = {
        json.dumps(r, sort_keys=True, default=str) for r in (fast_record, sql_record, old_record)
    }
    same = len(texts) == 1

    print(
        f"autolearn tune (whole process): {tune_s * 1000:.0f} ms CPU, peak {tune_mb:.0f} MB; "
        f"python -c pass {pass_s * 1000:.0f} ms ({tune_s / pass_s:.0f}x); plain sqlite3 query of "
        f"the same {rows:,} rows {query_s * 1000:.0f} ms ({tune_s / query_s:.1f}x)"
    )
    print(
        f"  where it goes: interpreter {pass_s * 1000:.0f} ms, tune-path imports "
        f"{(imports_s - pass_s) * 1000:.0f} ms, cycle ~{fast_ms:.0f} ms; heavy modules loaded: "
        f"{heavy or '-'} (no scipy: the quantiles are core/distributions.py; importing "
        f"scipy.special for them cost {(scipy_s - pass_s) * 1000:.0f} ms)"
    )
    print(
        f"tune cycle in-process: {fast_ms:.1f} ms CPU via open_reader (sqlite3), {sql_ms:.1f} ms "
        f"via SqlLedger (SQLAlchemy) = {sql_ms / fast_ms:.1f}x; the previous read path "
        f"{old_ms:.1f} ms = {old_ms / fast_ms:.1f}x; {rows:,} trades read; decision "
        f"{fast_record.get('decision')!r}; the three records identical: {same}"
    )
    why_tune = (
        f"the tune-path imports ({(imports_s - pass_s) * 1000:.0f} ms: typer, PyYAML, "
        f"~100 autolearn modules) and the cycle ({fast_ms:.0f} ms for {rows:,} trades)"
    )
    goal_ms = GOAL_TUNE_S * 1000
    print(f"  goal tune <= {goal_ms:.0f} ms: {_verdict(tune_s * 1000, goal_ms, 'ms', why_tune)}")
    print(
        f"  goal tune <= {GOAL_TUNE_X_PASS:g}x python -c pass: "
        f"{_verdict(tune_s / pass_s, GOAL_TUNE_X_PASS, 'x', why_tune)}"
    )
    per_row_us = fast_ms * 1000 / max(rows, 1)
    why_cycle = (
        f"{rows:,} trades in the 45-day window at ~{per_row_us:.1f} us each (fetch + decode into "
        "Trade objects + the rules' passes over them)"
    )
    print(
        f"  goal cycle < {GOAL_CYCLE_MS:g} ms: {_verdict(fast_ms, GOAL_CYCLE_MS, 'ms', why_cycle)}"
    )
    return {"n": n, "tune_ms": tune_s * 1000, "cycle_ms": fast_ms, "rows": rows, "same": same}


def bench_worker(url: str, runs: int, env_file: Path) -> None:
    """``import autolearn.worker`` and ``autolearn.connect`` against the largest ledger."""
    bot = Path(tempfile.mkdtemp(prefix="bench_worker_"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AUTOLEARN_")},
        "AUTOLEARN_LEDGER_URL": url,
        "AUTOLEARN_STATE_DIR": str(bot / "state"),
        "AUTOLEARN_ENV_FILE": str(env_file),
    }
    pass_s, pass_mb = _median_cpu(runs, lambda: _child_cpu("pass", env))
    imp_s, imp_mb = _median_cpu(runs, lambda: _child_cpu("import autolearn.worker", env))
    connect = f"import autolearn\nw = autolearn.connect({str(bot)!r})\nw.close()\n"
    conn_s, conn_mb = _median_cpu(runs, lambda: _child_cpu(connect, env))
    which = "import sys\nprint(' '.join(m for m in _HEAVY if m in sys.modules))\n"
    mods = _child_cpu(f"_HEAVY = {_HEAVY!r}\n{connect}{which}", env)[2].strip()
    shutil.rmtree(bot, ignore_errors=True)
    import_ms = (imp_s - pass_s) * 1000
    print(
        f"\n--- worker (Tuning + Gates + TradeWriter) on {url.rsplit('/', 1)[-1]}\n"
        f"import autolearn.worker: {import_ms:.0f} ms CPU, +{imp_mb - pass_mb:.1f} MB RSS over a "
        f"bare interpreter ({pass_mb:.1f} MB); after connect(): "
        f"+{(conn_s - pass_s) * 1000:.0f} ms, +{conn_mb - pass_mb:.1f} MB; loaded by connect: "
        f"{mods or '-'}"
    )
    print(
        f"  goal import <= {GOAL_WORKER_IMPORT_MS:g} ms: "
        + _verdict(import_ms, GOAL_WORKER_IMPORT_MS, "ms", "autolearn.runtime/settings/registry")
    )
    why_mb = (
        "the TradeWriter writes through SQLAlchemy (~29 MB of it; the gates read through "
        "sqlite3) and the gates config loads pydantic (~8 MB); a sqlite3 write path would "
        "remove the first"
    )
    print(
        f"  goal RSS <= {GOAL_WORKER_MB:g} MB over bare: "
        + _verdict(conn_mb - pass_mb, GOAL_WORKER_MB, "MB", why_mb)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10k and 100k trades only")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (median)")
    parser.add_argument("--sizes", default=None, help="comma-separated ledger sizes")
    args = parser.parse_args(argv)
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else [10_000, 100_000]
        if args.quick
        else [10_000, 100_000, 1_000_000]
    )
    runs = args.runs or (3 if args.quick else 5)
    load = os.getloadavg()
    print(
        f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)"
    )
    registry = load_registry(None)
    env_file = CACHE / "bench_empty.env"  # no settings from /etc/autolearn.env
    CACHE.mkdir(parents=True, exist_ok=True)
    env_file.write_text("")
    results = [bench_size(n, runs, registry, env_file) for n in sizes]
    if len(results) > 1:
        first, last = results[0], results[-1]
        print(
            f"\ngrowth {first['n']:,} -> {last['n']:,} rows: "
            f"tune x{last['tune_ms'] / first['tune_ms']:.2f}, "
            f"cycle x{last['cycle_ms'] / first['cycle_ms']:.2f} (the window is capped at 45 days: "
            f"{first['rows']:,} -> {last['rows']:,} rows read)"
        )
    bench_worker(f"sqlite:///{CACHE / f'ledger_{sizes[-1]}.db'}", runs, env_file)
    load = os.getloadavg()
    print(f"\nload average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0 if all(r["same"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
