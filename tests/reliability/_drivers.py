"""Drivers of the reliability suite (shared by ``tests/reliability`` and the reliability bench).

What it is: builders for a throw-away bot checkout (git, tracked registry, ignored ``logs/``,
a SQLite ledger seeded so that ``tune`` and ``policy`` really apply), a *zygote* that forks real
``autolearn`` CLI processes, kills them with SIGKILL on a seeded schedule and reports how they
died, and the invariant checker every family runs after each fault. What it must not do: decide
pass/fail thresholds (the tests assert), touch anything outside the directories it is given, or
use any private hook of the product (there is none; kills land by timing alone).

The zygote: interpreter start and the CLI's imports take ~1.5-2.5 s on the CI box, which would
put 200 kills far outside the time budget and leave the apply window (~10-50 ms) a tiny target.
So one helper process imports ``autolearn.cli`` once and ``fork()``s a child per run; the child
sets its environment and calls the real ``autolearn.cli.main(argv)``, exactly what the console
script runs after its imports. A SIGKILL of the child is a real process death at an arbitrary
instruction (file descriptors, flocks and half-written temp files die with it). A few runs per
family also start a fresh interpreter with ``python -c "... main(sys.argv[1:])"`` so the import
phase is killed too.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from autolearn.adapters.state import StateStore, version_of
from autolearn.core.model import Side, Trade
from autolearn.core.registry import Registry
from autolearn.ledger.sql import SqlLedger
from autolearn.runtime import Tuning
from autolearn.settings import load_registry, packaged_registry_text

__all__ = [
    "CLI_SOURCE",
    "Bot",
    "InvariantError",
    "Job",
    "JobResult",
    "StateCheck",
    "Zygote",
    "check_state",
    "make_bot",
    "porcelain",
    "seed_losing_trades",
    "state_fingerprint",
]

# The exact command the brief names for a fresh ``autolearn`` process.
CLI_SOURCE = "import sys; from autolearn.cli import main; sys.exit(main(sys.argv[1:]))"
TUNER_KNOB = "strategies.MomentumPulse.min_confidence"

_ZYGOTE_SOURCE = r"""
import json, os, signal, sys, time
from autolearn.cli import main
# Import what the commands import lazily, so a child starts where a run starts its work.
import autolearn.tuner, autolearn.policy.cycle, autolearn.ledger.sql  # noqa: F401
import autolearn.importers.quantrabbit, autolearn.oanda.transactions  # noqa: F401
import autolearn.cli._oanda  # noqa: F401

def child(job):
    rc = 70
    try:
        if job.get("fsize") is not None:
            import resource
            resource.setrlimit(resource.RLIMIT_FSIZE, (job["fsize"], job["fsize"]))
        if job.get("umask") is not None:
            os.umask(job["umask"])
        os.environ.update(job["env"])
        for name in job.get("unset", []):
            os.environ.pop(name, None)
        os.chdir(job["cwd"])
        if job.get("pipe_fd") is not None:
            fd = job["pipe_fd"]  # a pipe: not bound by RLIMIT_FSIZE, like journald's stdout
        else:
            fd = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        for argv in job["argvs"]:
            rc = main(argv)
            sys.stdout.flush()
            sys.stderr.flush()
            if rc != 0 and job.get("stop_on_error", True):
                break
    finally:
        os._exit(rc)

def run(jobs):
    t0 = time.monotonic()
    live = {}
    pipes = {}
    for index, job in enumerate(jobs):
        if job.get("fsize") is not None:
            r, w = os.pipe()
            job["pipe_fd"] = w
        pid = os.fork()
        if pid == 0:
            child(job)
        if job.get("fsize") is not None:
            os.close(w)
            pipes[pid] = (r, job["log"])
        live[pid] = (index, job.get("kill_after"))
    results = [None] * len(jobs)
    while live:
        now = time.monotonic() - t0
        for pid, (index, kill_after) in list(live.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if not done and kill_after is not None and now >= kill_after:
                os.kill(pid, signal.SIGKILL)
                done, status = os.waitpid(pid, 0)
            if done:
                killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
                rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
                results[index] = {"pid": pid, "killed": killed, "rc": rc,
                                  "elapsed": time.monotonic() - t0}
                del live[pid]
                if pid in pipes:
                    r, log = pipes.pop(pid)
                    with open(log, "ab") as out:
                        while chunk := os.read(r, 65536):
                            out.write(chunk)
                    os.close(r)
        if live:
            time.sleep(0.0005)
    return results

sys.stdout.write("ready\n")
sys.stdout.flush()
for line in sys.stdin:
    sys.stdout.write(json.dumps(run(json.loads(line))) + "\n")
    sys.stdout.flush()
"""


class InvariantError(AssertionError):
    """A reliability invariant does not hold (the message says which and where)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One ``autolearn`` child: run ``argvs`` in order (one process), maybe SIGKILL it."""

    argvs: Sequence[Sequence[str]]
    env: dict[str, str]
    cwd: Path
    log: Path
    kill_after: float | None = None
    unset: Sequence[str] = ()
    stop_on_error: bool = True
    fsize: int | None = None  # RLIMIT_FSIZE of the child (bytes): a real EFBIG mid-write
    umask: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "argvs": [list(a) for a in self.argvs],
            "env": self.env,
            "cwd": str(self.cwd),
            "log": str(self.log),
            "kill_after": self.kill_after,
            "unset": list(self.unset),
            "stop_on_error": self.stop_on_error,
            "fsize": self.fsize,
            "umask": self.umask,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class JobResult:
    pid: int
    killed: bool
    rc: int
    elapsed: float


class Zygote:
    """A pre-imported interpreter that forks real CLI runs on request (see the module doc)."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE_SOURCE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self._proc.stdout is not None
        ready = self._proc.stdout.readline()
        if ready.strip() != "ready":
            raise RuntimeError(f"zygote failed to start: {ready!r}")
        self._lock = threading.Lock()

    def run(self, jobs: Sequence[Job]) -> list[JobResult]:
        """Fork every job at once, kill those with ``kill_after`` on time, reap all."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        with self._lock:
            self._proc.stdin.write(json.dumps([j.to_json() for j in jobs]) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("zygote died")
        return [JobResult(**r) for r in json.loads(line)]

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fresh_process(
    argv: Sequence[str], env: dict[str, str], cwd: Path, *, kill_after: float | None
) -> JobResult:
    """A fresh interpreter running the CLI (import phase included), maybe SIGKILLed."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI_SOURCE, *argv],
        env={**os.environ, **env},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = proc.returncode == -signal.SIGKILL
    return JobResult(pid=proc.pid, killed=killed, rc=proc.returncode, elapsed=time.monotonic() - t0)


# -- a bot checkout -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Bot:
    """A throw-away bot checkout: git repo, tracked registry, ignored ``logs/``."""

    root: Path
    state_dir: Path
    ledger_url: str
    registry: Registry

    def env(
        self, *, state_dir: Path | None = None, ledger_url: str | None = None
    ) -> dict[str, str]:
        return {
            "AUTOLEARN_BOT_ROOT": str(self.root),
            "AUTOLEARN_STATE_DIR": str(state_dir or self.state_dir),
            "AUTOLEARN_LEDGER_URL": ledger_url or self.ledger_url,
        }

    def store(self, state_dir: Path | None = None) -> StateStore:
        return StateStore(state_dir or self.state_dir, self.registry)


def _git(root: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(root), *args], check=True, capture_output=True, text=True
    )
    return out.stdout


def porcelain(root: Path) -> str:
    """``git status --porcelain`` of the checkout (empty = clean)."""
    return _git(root, "status", "--porcelain", "--untracked-files=all")


def make_bot(root: Path, *, n_trades: int = 240, now: datetime | None = None) -> Bot:
    """Create a bot checkout at ``root`` with a ledger that makes ``tune``/``policy`` apply."""
    (root / "config").mkdir(parents=True)
    (root / "config" / "knobs.yaml").write_text(packaged_registry_text())
    (root / ".gitignore").write_text("logs/\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "bot")
    url = f"sqlite:///{root / 'logs' / 'autolearn' / 'ledger.db'}"
    (root / "logs" / "autolearn").mkdir(parents=True)
    with SqlLedger.open(url) as ledger:
        ledger.upsert_trades(seed_losing_trades(n_trades, now or datetime.now(UTC)))
    return Bot(
        root=root,
        state_dir=root / "logs" / "tuning",
        ledger_url=url,
        registry=load_registry(None),
    )


def seed_losing_trades(n: int, now: datetime, *, seed: int = 11) -> list[Trade]:
    """``n`` micro MomentumPulse trades over the last 4 h, confidently losing (about -3 pips).

    Independent reason the mechanisms act: the policy blocks a pocket whose expectancy interval
    lies below zero, and the tuner tightens the entry threshold of a strategy whose expectancy
    interval lies below zero (PRODUCT.md); -3 +- 2 pips over 240 trades is far below zero.
    """
    rng = random.Random(seed)
    trades = []
    for i in range(n):
        close_at = now - timedelta(seconds=60 + (4 * 3600 - 120) * i / max(n, 1))
        pips = round(rng.gauss(-3.0, 2.0), 1)
        trades.append(
            Trade(
                broker_trade_id=f"R{i:06d}",
                close_tx_id=f"RC{i:06d}",
                instrument="USD_JPY",
                pocket="micro",
                strategy="MomentumPulse",
                side=Side.LONG,
                units=1000,
                entry_price=150.0,
                close_price=round(150.0 + pips * 0.01, 3),
                entry_at=close_at - timedelta(seconds=90),
                close_at=close_at,
                pl_pips=pips,
                pl_account=pips * 10.0,
                exit_reason="tp_hit",
            )
        )
    return trades


# -- invariants ----------------------------------------------------------------------------------


@dataclass(slots=True)
class StateCheck:
    """What ``check_state`` saw; ``torn_lines`` accumulates sealed torn history lines."""

    version: str = ""
    records: int = 0
    torn_last: bool = False
    unrecorded: bool = False
    temp_files: int = 0
    snapshots: int = 0
    torn_lines: set[int] = field(default_factory=set)


def _line_count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n") + 1
    except FileNotFoundError:
        return 0


def check_state(
    state_dir: Path, registry: Registry, known_torn: set[int] | None = None
) -> StateCheck:
    """Assert the crash-consistency invariants of a state dir; return what was seen.

    - ``effective.json`` reads (strict: content address verified) and its version has a
      snapshot holding exactly its values; every snapshot file matches its content address;
    - the worker loader reads the same version without degrading;
    - the history has no bad line except a torn *last* line (or one that was torn earlier
      and has since been sealed by the next append: ``known_torn``);
    - every mechanism/control file parses.
    """
    store = StateStore(state_dir, registry)
    seen = StateCheck(torn_lines=set(known_torn or ()))
    effective = store.read_effective()
    seen.version = effective.version
    snapshot = store.read_snapshot(effective.version)
    if dict(snapshot.get("values", {})) != effective.values:
        raise InvariantError(f"{state_dir}: snapshot {effective.version} differs from effective")
    for path in sorted(store.snapshots_dir.glob("v*.json")) if store.snapshots_dir.exists() else []:
        store.read_snapshot(path.stem)
        seen.snapshots += 1
    tuning = Tuning(state_dir, registry, refresh_s=0)
    if tuning.config_version != effective.version or tuning.degraded is not None:
        raise InvariantError(
            f"{state_dir}: loader at {tuning.config_version} degraded={tuning.degraded!r}, "
            f"state at {effective.version}"
        )
    for knob, value in effective.values.items():
        if tuning.get(knob) != value:
            raise InvariantError(f"{state_dir}: loader reads {knob}={tuning.get(knob)!r}")
    history = store.history.read()
    bad = set(history.corrupt_lines) - seen.torn_lines
    if bad:
        raise InvariantError(f"{state_dir}: corrupt history lines {sorted(bad)}")
    if history.torn_last_line:
        seen.torn_last = True
        seen.torn_lines.add(_line_count(store.history.path))
    seen.records = len(history.records)
    last = effective.last_record or {}
    run_ids = {r.get("run_id") for r in history.records}
    seen.unrecorded = bool(last.get("run_id")) and last.get("run_id") not in run_ids
    if store.mechanisms_dir.exists():
        for path in store.mechanisms_dir.glob("*.json"):
            store.read_mechanism(path.stem)
    store.read_control()
    seen.temp_files = sum(1 for _ in _temp_files(state_dir))
    return seen


def _temp_files(state_dir: Path) -> Iterator[Path]:
    return (p for p in state_dir.rglob(".*.tmp") if p.is_file())


def state_fingerprint(state_dir: Path) -> tuple[str, int, int]:
    """(effective version, history bytes, snapshot count): did a run write anything?"""
    try:
        doc = json.loads((state_dir / "effective.json").read_text())
        version = str(doc.get("version"))
    except (OSError, ValueError):
        version = version_of({})
    try:
        size = (state_dir / "history.jsonl").stat().st_size
    except OSError:
        size = 0
    snaps = state_dir / "snapshots"
    count = len(list(snaps.glob("v*.json"))) if snaps.exists() else 0
    return version, size, count


def copy_state(src: Path, dst: Path) -> None:
    """Copy a template state dir (locks included; flocks are per open file, never copied)."""
    if dst.exists():
        shutil.rmtree(dst)
    if src.exists():
        shutil.copytree(src, dst)


# -- crash consistency: the kill campaign ----------------------------------------------------------

KILL_SCENARIOS = ("set_loop", "rollback_loop", "freeze_loop", "tune", "policy", "ingest")
_INT_KNOB = "exit.lowvol.hazard_cost_latency_base_ms"
_SET_VALUES = ("0.6", "0.61", "0.62", "0.63", "0.64", "0.66", "0.68", "0.7")


@dataclass(slots=True)
class KillFigures:
    """What a kill campaign did and saw (the bench prints it, the tests assert on it)."""

    runs: int = 0
    kills: int = 0
    finished_before_kill: int = 0
    landed_after_first_write: int = 0
    partial_states_seen: int = 0  # temp file left, snapshot without effective, or unrecorded
    unrecorded_applies: int = 0
    unrecorded_recovered: int = 0
    torn_history_lines: int = 0
    next_runs_ok: int = 0
    fresh_process_kills: int = 0
    by_scenario: dict[str, int] = field(default_factory=dict)
    data_lost: int = 0

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]


@dataclass(slots=True)
class _Lane:
    root: Path
    torn: dict[str, set[int]] = field(default_factory=dict)

    def state(self, scenario: str) -> Path:
        return self.root / scenario


class KillCampaign:
    """SIGKILL real CLI runs at seeded random moments and check the invariants after each.

    Scenarios (rotated): ``set_loop`` (one process applying operator sets back to back, so a
    kill lands inside an apply most of the time), ``rollback_loop``, ``freeze_loop`` (control
    file + history), ``tune`` and ``policy`` (a fresh copy of a template state each time, so
    every run really applies), ``ingest`` (CSV into a fresh SQLite ledger).
    """

    def __init__(self, zygote: Zygote, bot: Bot, workdir: Path, csv_path: Path, seed: int) -> None:
        self.zygote = zygote
        self.bot = bot
        self.work = workdir
        self.csv = csv_path
        self.rng = random.Random(seed)
        self.figures = KillFigures()
        self.template = workdir / "template"
        self.lanes = [_Lane(workdir / f"lane{i}") for i in range(2)]
        self.durations: dict[str, float] = {}
        self.versions: list[str] = []
        self.reference_keys: set[tuple[str, str]] = set()
        self._serial = 0
        self._errors: list[Exception] = []

    # -- setup -----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Template state with three versions; reference ingest; a normal run's duration each."""
        store = self.bot.store(self.template)
        now = datetime.now(UTC)
        for value in (False, True, False):
            store.apply("operator", {"gates.stage.enabled": value}, now, kind=_operator_kind())
            self.versions.append(store.read_effective().version)
        for lane in self.lanes:
            lane.root.mkdir(parents=True)
            for scenario in KILL_SCENARIOS:
                copy_state(self.template, lane.state(scenario))
        ref = self.work / "reference.db"
        self._run_one(self.lanes[0], "ingest", None, ledger=ref)
        with SqlLedger.open(f"sqlite:///{ref}") as ledger:
            self.reference_keys = {(t.broker_trade_id, t.close_tx_id) for t in ledger.trades()}
        for scenario in KILL_SCENARIOS:
            lane = self.lanes[0]
            scratch = self.work / f"timing-{scenario}"
            copy_state(lane.state(scenario), scratch)
            runs = []
            for _ in range(2):  # the longer of two: the box is shared and load varies
                result = self._run_jobs([self._job(lane, scenario, None, state=scratch)])[0]
                if result.rc != 0:
                    raise InvariantError(f"normal {scenario} run exited {result.rc} ({self._log})")
                runs.append(result.elapsed)
                if scenario in ("tune", "policy"):
                    copy_state(lane.state(scenario), scratch)
            self.durations[scenario] = max(runs)
            shutil.rmtree(scratch)

    # -- the campaign ------------------------------------------------------------------------
    def run(self, kills: int, fresh_kills: int = 0) -> KillFigures:
        # the loops put most kills inside an apply; tune/policy/ingest are heavier per kill
        scenarios = [*KILL_SCENARIOS[:3], *KILL_SCENARIOS]
        while self.figures.kills < kills:
            picks = [self.rng.choice(scenarios) for _ in self.lanes]
            delays = [self._delay(s) for s in picks]
            self._batch(picks, delays)
        if fresh_kills:
            lane = self.lanes[0]
            probe = fresh_process(
                ["set", TUNER_KNOB, "0.65", "--reason", "timing"],
                self.bot.env(state_dir=lane.state("set_loop")),
                self.bot.root,
                kill_after=None,
            )
            self.durations["fresh"] = probe.elapsed
        for i in range(0, fresh_kills, 2):
            threads = [
                threading.Thread(target=self._fresh_kill, args=(lane, i + k))
                for k, lane in enumerate(self.lanes[: fresh_kills - i])
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        if self._errors:
            raise self._errors[0]
        return self.figures

    def _delay(self, scenario: str) -> float:
        """Some kills anywhere in a normal run, most after its start-up (where it writes).

        A looping child spends its first ~30% parsing and reading before the first write; a
        tune/policy/ingest run writes in its second half.
        """
        duration = self.durations[scenario]
        late = 0.3 if scenario.endswith("_loop") else 0.5
        low = 0.0 if self.rng.random() < 0.3 else late * duration
        return self.rng.uniform(low, duration * 0.95)

    def _batch(self, picks: list[str], delays: list[float]) -> None:
        before = []
        jobs = []
        for lane, scenario, delay in zip(self.lanes, picks, delays, strict=True):
            self._reset(lane, scenario)
            before.append(state_fingerprint(lane.state(scenario)))
            jobs.append(self._job(lane, scenario, delay))
        results = self._run_jobs(jobs)
        for lane, scenario, result, fp in zip(self.lanes, picks, results, before, strict=True):
            self.figures.runs += 1
            self._after_kill(lane, scenario, result, fp)
        # the next run of each lane, without a kill, must complete normally
        nexts = self._run_jobs(
            [
                self._job(lane, s, None, next_run=True)
                for lane, s in zip(self.lanes, picks, strict=True)
            ]
        )
        for lane, scenario, result in zip(self.lanes, picks, nexts, strict=True):
            self.figures.runs += 1
            self._after_next(lane, scenario, result)

    def _after_kill(
        self, lane: _Lane, scenario: str, result: JobResult, before: tuple[str, int, int]
    ) -> None:
        if not result.killed:
            if result.rc != 0:
                raise InvariantError(f"{scenario} exited {result.rc} without a kill ({self._log})")
            self.figures.finished_before_kill += 1
            return
        self.figures.kills += 1
        self.figures.by_scenario[scenario] = self.figures.by_scenario.get(scenario, 0) + 1
        if scenario == "ingest":
            self._check_ledger(lane, complete=False)
            return
        state = lane.state(scenario)
        seen = check_state(state, self.bot.registry, lane.torn.get(scenario))
        lane.torn[scenario] = seen.torn_lines
        self.figures.torn_history_lines += int(seen.torn_last)
        if state_fingerprint(state) != before or seen.temp_files:
            self.figures.landed_after_first_write += 1
            key = f"{scenario}_after_write"
            self.figures.by_scenario[key] = self.figures.by_scenario.get(key, 0) + 1
        if seen.temp_files or seen.unrecorded or _snapshot_newer_than_effective(state):
            self.figures.partial_states_seen += 1
        if seen.unrecorded:
            self.figures.unrecorded_applies += 1
        self._cleanup_temp(state)

    def _after_next(self, lane: _Lane, scenario: str, result: JobResult) -> None:
        if result.rc != 0 or result.killed:
            raise InvariantError(
                f"next {scenario} run after a kill exited {result.rc} ({self._log})"
            )
        self.figures.next_runs_ok += 1
        if scenario == "ingest":
            self._check_ledger(lane, complete=True)
            return
        state = lane.state(scenario)
        seen = check_state(state, self.bot.registry, lane.torn.get(scenario))
        lane.torn[scenario] = seen.torn_lines
        if seen.unrecorded:
            raise InvariantError(f"{state}: an apply is still unrecorded after the next run")
        records = self.bot.store(state).history.read().records
        self.figures.unrecorded_recovered += sum(1 for r in records[-3:] if r.get("recovered"))

    def _check_ledger(self, lane: _Lane, *, complete: bool) -> None:
        with SqlLedger.open(f"sqlite:///{lane.root / 'ledger.db'}") as ledger:
            keys = [(t.broker_trade_id, t.close_tx_id) for t in ledger.trades()]
        if len(keys) != len(set(keys)) or not set(keys) <= self.reference_keys:
            raise InvariantError(f"{lane.root}/ledger.db: duplicate or foreign rows after a kill")
        if complete and set(keys) != self.reference_keys:
            lost = len(self.reference_keys - set(keys))
            self.figures.data_lost += lost
            raise InvariantError(f"{lane.root}/ledger.db: {lost} rows missing after the next run")

    def _fresh_kill(self, lane: _Lane, index: int) -> None:
        try:
            self._fresh_kill_checked(lane, index)
        except Exception as exc:  # surfaced by run() in the main thread
            self._errors.append(exc)

    def _fresh_kill_checked(self, lane: _Lane, index: int) -> None:
        scenario = "set_loop"
        state = lane.state(scenario)
        env = self.bot.env(state_dir=state)
        # interpreter start + imports dominate a fresh run; kill anywhere in them or the apply
        delay = self.rng.uniform(0.05, 0.95 * self.durations["fresh"])
        argv = ["set", TUNER_KNOB, _SET_VALUES[index % len(_SET_VALUES)], "--reason", "kill"]
        result = fresh_process(argv, env, self.bot.root, kill_after=delay)
        self.figures.runs += 1
        if result.killed:
            self.figures.kills += 1
            self.figures.fresh_process_kills += 1
        elif result.rc != 0:
            raise InvariantError(f"fresh set exited {result.rc}")
        seen = check_state(state, self.bot.registry, lane.torn.get(scenario))
        lane.torn[scenario] = seen.torn_lines
        again = self._run_jobs([self._job(lane, scenario, None, next_run=True)])[0]
        self.figures.runs += 1
        if again.rc != 0:
            raise InvariantError(f"next fresh set after a kill exited {again.rc}")
        self.figures.next_runs_ok += 1
        check_state(state, self.bot.registry, lane.torn.get(scenario))

    # -- jobs --------------------------------------------------------------------------------
    @property
    def _log(self) -> Path:
        return self.work / "runs.log"

    def _reset(self, lane: _Lane, scenario: str) -> None:
        if scenario in ("tune", "policy"):
            copy_state(self.template, lane.state(scenario))
            lane.torn[scenario] = set()
        elif scenario == "ingest":
            (lane.root / "ledger.db").unlink(missing_ok=True)

    def _job(
        self,
        lane: _Lane,
        scenario: str,
        kill_after: float | None,
        *,
        next_run: bool = False,
        state: Path | None = None,
        ledger: Path | None = None,
    ) -> Job:
        self._serial += 1
        state = state or lane.state(scenario)
        url = f"sqlite:///{ledger or (lane.root / 'ledger.db')}"
        env = self.bot.env(state_dir=state, ledger_url=url if scenario == "ingest" else None)
        return Job(
            argvs=self._argvs(scenario, next_run, state),
            env=env,
            cwd=self.bot.root,
            log=self._log,
            kill_after=kill_after,
        )

    def _argvs(self, scenario: str, next_run: bool, state: Path) -> list[list[str]]:
        n = 1 if next_run else 5
        start = self._serial
        if scenario == "set_loop":
            # two knobs on their grids: ~480 distinct layers, so most applies write a new snapshot
            return [
                ["set", TUNER_KNOB, f"{self.rng.randint(55, 75) / 100:.2f}", "--reason", "kill"]
                if (start + i) % 2
                else ["set", _INT_KNOB, str(self.rng.randint(18, 40) * 10), "--reason", "kill"]
                for i in range(n)
            ]
        if scenario == "rollback_loop":
            # Each target differs from the version before it: a rollback to the current
            # version is refused (exit 65: it would change nothing), so start from a version
            # other than the lane's current one (a killed run may have left any of them).
            distinct = list(dict.fromkeys(self.versions))
            current = self.bot.store(state).read_effective().version
            targets: list[str] = []
            previous = current
            for i in range(n):
                choices = [v for v in distinct if v != previous]
                previous = choices[(start + i) % len(choices)]
                targets.append(previous)
            return [["rollback", "--to", target, "--reason", "kill"] for target in targets]
        if scenario == "freeze_loop":
            verbs = ("freeze", "unfreeze")
            return [[verbs[(start + i) % 2], "policy", "--reason", "kill"] for i in range(n)]
        if scenario == "ingest":
            return [["ingest", str(self.csv)]]
        return [[scenario]]

    def _run_jobs(self, jobs: list[Job]) -> list[JobResult]:
        return self.zygote.run(jobs)

    def _run_one(
        self, lane: _Lane, scenario: str, kill_after: float | None, *, ledger: Path
    ) -> None:
        result = self._run_jobs([self._job(lane, scenario, kill_after, ledger=ledger)])[0]
        if result.rc != 0:
            raise InvariantError(f"reference {scenario} run exited {result.rc} ({self._log})")

    @staticmethod
    def _cleanup_temp(state: Path) -> None:
        """Temp files a kill left behind are inert (dot-named, never read); count then drop."""
        for path in list(_temp_files(state)):
            path.unlink()


def _snapshot_newer_than_effective(state: Path) -> bool:
    """A kill between the snapshot write and the effective write leaves this behind."""
    try:
        effective = (state / "effective.json").stat().st_mtime_ns
    except FileNotFoundError:
        effective = 0
    snapshots = state / "snapshots"
    return snapshots.exists() and any(
        p.stat().st_mtime_ns > effective for p in snapshots.glob("v*.json")
    )


def _operator_kind() -> Any:
    from autolearn.core.apply_guard import ApplyKind

    return ApplyKind.OPERATOR


# -- concurrency: the storm ----------------------------------------------------------------------

# Operator knobs no mechanism touches: each concurrent ``set`` writes its own, so a lost update
# shows as a missing value at the end of the round.
STORM_SET_KNOBS = (
    ("gates.perf_guard.enabled", "false"),
    ("gates.reentry.enabled", "false"),
    ("M1Scalper.timeout_sec", "1020"),
    ("M1Scalper.nwave.min_leg_pips", "2.3"),
)


@dataclass(slots=True)
class StormFigures:
    rounds: int = 0
    runs: int = 0
    applies: int = 0
    lock_busy: int = 0
    reader_reads: int = 0
    versions_seen: int = 0

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]


class _Reader(threading.Thread):
    """A worker polling the loader (refresh 0) and keeping every (version, knob, value) it saw."""

    def __init__(self, state_dir: Path, registry: Registry, knobs: Sequence[str]) -> None:
        super().__init__(daemon=True)
        self.tuning = Tuning(state_dir, registry, refresh_s=0)
        self.knobs = list(knobs)
        self.seen: set[tuple[str, str, Any]] = set()
        self.reads = 0
        self.problems: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for knob in self.knobs:
                info = self.tuning.explain(knob)
                if info.degraded:
                    self.problems.append(f"degraded: {info.degraded}")
                self.seen.add((info.version, knob, json.dumps(info.value)))
                self.reads += 1
            time.sleep(0.0005)  # a worker polls; a hot loop would only starve the writers


def storm_round(
    zygote: Zygote, bot: Bot, template: Path, work: Path, figures: StormFigures, n_each: int = 2
) -> None:
    """Start tune, policy, set and freeze runs at once and check the round's history.

    Each round starts from a copy of ``template`` (no policy or tuner state), so exactly one
    ``tune`` and one ``policy`` run must apply and every other one must hold or be lock_busy.
    """
    state = work / "state"
    copy_state(template, state)
    store = bot.store(state)
    start = store.read_effective()
    template_records = len(store.history.read().records)
    knobs = [TUNER_KNOB, "pockets.micro.allow_new", *(k for k, _ in STORM_SET_KNOBS)]
    reader = _Reader(state, bot.registry, knobs)
    reader.start()
    env = bot.env(state_dir=state)
    log = work / "storm.log"
    argvs: list[list[str]] = []
    for _ in range(n_each):
        argvs += [["tune"], ["policy"], ["freeze", "scalp_trainer", "--reason", "storm"]]
    argvs += [["set", k, v, "--reason", "storm"] for k, v in STORM_SET_KNOBS]
    results = zygote.run([Job(argvs=[a], env=env, cwd=bot.root, log=log) for a in argvs])
    time.sleep(0.05)
    reader.stop.set()
    reader.join()
    figures.rounds += 1
    figures.runs += len(argvs)
    figures.reader_reads += reader.reads
    for argv, result in zip(argvs, results, strict=True):
        if result.rc != 0:
            raise InvariantError(f"storm run {argv} exited {result.rc} ({log})")
    if reader.problems:
        raise InvariantError(f"reader: {reader.problems[:3]}")
    _check_storm_history(store, start.version, argvs, figures, skip=template_records)
    check_state(state, bot.registry)
    defaults = bot.registry.defaults()
    for version, knob, value in reader.seen:
        on_disk = store.read_snapshot(version)["values"].get(knob, defaults.get(knob))
        if json.dumps(on_disk) != value:
            raise InvariantError(f"reader saw {knob}={value} at {version}, snapshot has {on_disk}")
    figures.versions_seen += len({v for v, _, _ in reader.seen})


def _check_storm_history(
    store: StateStore, start: str, argvs: list[list[str]], figures: StormFigures, skip: int
) -> None:
    new = store.history.read().records[skip:]
    if len(new) != len(argvs):
        raise InvariantError(f"{len(argvs)} runs left {len(new)} records (one each expected)")
    by_mech: dict[str, list[dict[str, Any]]] = {}
    for record in new:
        by_mech.setdefault(str(record.get("mechanism")), []).append(record)
    n_tune = sum(1 for a in argvs if a == ["tune"])
    n_policy = sum(1 for a in argvs if a == ["policy"])
    if len(by_mech.get("tuner", [])) != n_tune or len(by_mech.get("policy", [])) != n_policy:
        raise InvariantError(
            f"every run leaves one record: tuner {len(by_mech.get('tuner', []))}/{n_tune}, "
            f"policy {len(by_mech.get('policy', []))}/{n_policy}"
        )
    for mech in ("tuner", "policy"):
        applied = [r for r in by_mech[mech] if r.get("applied")]
        if len(applied) != 1:
            raise InvariantError(f"{mech}: {len(applied)} applies in one round (expected 1)")
    figures.lock_busy += sum(1 for r in new if r.get("decision") == "lock_busy")
    chain = [r for r in new if r.get("applied")]
    figures.applies += len(chain)
    previous = start
    for record in chain:
        if record.get("version_before") != previous:
            raise InvariantError(
                f"lost update: {record.get('mechanism')} applied on {record.get('version_before')}"
                f" while the merged view was at {previous}"
            )
        before = dict(store.read_snapshot(previous)["values"])
        for change in record["diff"]:
            before[change["knob"]] = change["after"]
        after = store.read_snapshot(record["version_after"])["values"]
        defaults = store.registry.defaults()
        merged = {k: v for k, v in before.items() if not (k in defaults and defaults[k] == v)}
        if merged != after:
            raise InvariantError(f"snapshot {record['version_after']} is not before + diff")
        previous = record["version_after"]
    final = store.read_effective()
    if final.version != previous:
        raise InvariantError(f"effective at {final.version}, last applied {previous}")


# -- broker faults: the randomized storm ---------------------------------------------------


@dataclass(slots=True)
class BrokerFigures:
    scenarios: int = 0
    runs: int = 0
    faults_injected: int = 0
    unavailable_runs: int = 0
    retries: int = 0
    transactions: int = 0
    duplicates_served: int = 0
    data_lost: int = 0
    duplicated_rows: int = 0

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]


def broker_storm(
    transactions: Sequence[dict[str, Any]],
    work: Path,
    seed: int,
    figures: BrokerFigures,
    *,
    token: str = "tok-reliability-5f1c2e9a7b-SECRET",
    account: str = "001-009-0000000-002",
) -> None:
    """One seeded scenario: the same log served with random faults until caught up.

    The final ledger must equal the fault-free ledger (same rows, same values): nothing
    skipped, nothing duplicated. Backoff sleeps are recorded, not slept.
    """
    from autolearn.errors import BrokerUnavailable
    from autolearn.oanda.client import RetryPolicy, V20Client
    from autolearn.oanda.transactions import ingest_transactions
    from autolearn.testing.oanda_v20 import FakeV20Server

    rng = random.Random(seed)
    reference = _oanda_rows(transactions, work / f"ref{seed}.db", token, account)
    served = {"dupes": 0}

    def messy(page: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = list(page)
        if out and rng.random() < 0.5:
            extra = [dict(rng.choice(out)) for _ in range(rng.randint(1, 3))]
            served["dupes"] += len(extra)
            out += extra
        rng.shuffle(out)
        return out

    server = FakeV20Server(
        account_id=account,
        token=token,
        transactions=transactions,
        page_size=rng.randint(3, 25),
        overlap=rng.randint(0, 4),
        page_transform=messy,
    )
    url = f"sqlite:///{work / f'storm{seed}.db'}"
    sleeps: list[float] = []
    retries = 0
    with server, SqlLedger.open(url) as ledger:
        for run in range(60):
            if run < 20:  # then let the storm pass: the ingest must catch up by itself
                server.script(*_random_faults(rng))
            client = V20Client(
                token=token,
                base_url=server.base_url,
                timeout_s=0.25,
                retry=RetryPolicy(max_attempts=3, base_delay_s=0.2, max_retry_after_s=5.0),
                sleep=sleeps.append,
                rng=random.Random(seed),
            )
            figures.runs += 1
            try:
                report = ingest_transactions(
                    client, account, ledger, max_pages=rng.choice([None, 1, 2, 3])
                )
            except BrokerUnavailable:
                figures.unavailable_runs += 1
                continue
            finally:
                retries += client.retries
                client.close()
            if report.is_caught_up:
                break
        else:
            raise InvariantError(f"scenario {seed}: never caught up in 60 runs")
        rows = ledger.trades()
        figures.faults_injected += sum(1 for r in server.requests if r.fault)
        if server.errors:
            raise InvariantError(f"fake server errors: {server.errors}")
    figures.scenarios += 1
    figures.retries += retries
    figures.transactions += len(transactions)
    figures.duplicates_served += served["dupes"]
    keys = [(t.broker_trade_id, t.close_tx_id) for t in rows]
    figures.duplicated_rows += len(keys) - len(set(keys))
    figures.data_lost += len(set(reference) - set(rows))
    if sorted(rows, key=_key) != sorted(reference, key=_key):
        raise InvariantError(f"scenario {seed}: ledger differs from the fault-free ledger")
    if len(sleeps) != retries or any(d < 0 for d in sleeps):
        raise InvariantError(f"scenario {seed}: retries without backoff ({sleeps})")


def _key(trade: Trade) -> tuple[str, str]:
    return (trade.broker_trade_id, trade.close_tx_id)


def _random_faults(rng: random.Random) -> list[Any]:
    from autolearn.testing.oanda_v20 import Fault

    kinds = [
        lambda: Fault.http(429, headers={"Retry-After": str(rng.choice([0, 1, 2]))}),
        lambda: Fault.http(rng.choice([500, 502, 503, 504])),
        lambda: Fault.truncated(path_contains="sinceid"),
        lambda: Fault.not_json(),
        lambda: Fault.http(503, path_contains="trades/"),
    ]
    faults = [rng.choice(kinds)() for _ in range(rng.randint(0, 4))]
    if rng.random() < 0.08:
        faults.append(Fault.delay(0.4, path_contains="sinceid"))  # > the client's timeout
    return faults


def _oanda_rows(
    transactions: Sequence[dict[str, Any]], path: Path, token: str, account: str
) -> list[Trade]:
    from autolearn.oanda.client import V20Client
    from autolearn.oanda.transactions import ingest_transactions
    from autolearn.testing.oanda_v20 import FakeV20Server

    with (
        FakeV20Server(account_id=account, token=token, transactions=transactions) as server,
        SqlLedger.open(f"sqlite:///{path}") as ledger,
        V20Client(token=token, base_url=server.base_url) as client,
    ):
        report = ingest_transactions(client, account, ledger)
        if report.rejected or not report.is_caught_up:
            raise InvariantError(f"fault-free reference import is not clean: {report.format()}")
        return ledger.trades()
