"""One Optuna study on PostgreSQL: two worker processes share it, and a dead worker's trial is
reclaimed by the heartbeat and re-run (Optuna's distributed engine, not a home-made one)."""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import optuna
import psycopg
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from autolearn.autotune.study import (
    StudySpec,
    ensure_study,
    make_spec,
    open_storage,
    search_space,
)
from autolearn.backtest import load_candles
from autolearn.settings import load_registry

CANDLES = (
    Path(__file__).parents[1]
    / "data/fx/histdata-paskl-fxot/DAT_ASCII_EURUSD_M1_201807.part-0001-1500.csv"
)
KNOBS = {
    "strategies.TrendMA.fast_window": "fast",
    "strategies.TrendMA.slow_window": "slow",
    "strategies.TrendMA.sl_pips": "sl_pips",
    "strategies.TrendMA.tp_pips": "tp_pips",
}

# A worker: load the spec, say "ready", wait for "go" (so both start together), work the study.
WORKER = """
import pickle, sys, time
from pathlib import Path
from autolearn.autotune.study import run_worker
spec = pickle.loads(Path(sys.argv[1]).read_bytes())
Path(sys.argv[2]).write_text("ready")
while not Path(sys.argv[3]).exists():
    time.sleep(0.01)
print(run_worker(spec, int(sys.argv[4]), int(sys.argv[5])))
"""

# A worker whose trial hangs (stands in for a long backtest) until it is killed.
HANGING = """
import pickle, sys, time
from pathlib import Path
import optuna
from autolearn.autotune.study import open_storage
spec = pickle.loads(Path(sys.argv[1]).read_bytes())
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.load_study(study_name=spec.study_name, storage=open_storage(spec))
study.optimize(lambda t: (t.suggest_int("fast", 3, 60), time.sleep(600))[0], n_trials=1)
"""


def _spec(db_url: str, *, heartbeat: int = 5, grace: int = 20) -> StudySpec:
    bars = load_candles(CANDLES)
    specs = load_registry(None).families("autotune")["autotune.TrendMA"]
    return make_spec(
        storage_url=db_url,
        candles_path=CANDLES,
        window=bars,
        strategy="sma_cross",
        dims=search_space(specs, KNOBS),
        folds=2,
        validate_fraction=0.3,
        embargo_bars=10,
        objective="risk_adjusted_expectancy",
        min_trades=5,
        drawdown_weight=0.5,
        spread_pips=0.8,
        heartbeat_interval_s=heartbeat,
        grace_period_s=grace,
        max_retry=2,
        family="autotune.TrendMA",
    )


def _spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _trials(spec: StudySpec) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=spec.study_name, storage=open_storage(spec))
    return study.get_trials(deepcopy=False)


def test_two_workers_share_one_study_and_lose_no_trial(db_url: str, tmp_path: Path) -> None:
    """Two processes on one PostgreSQL study reach the total together; every trial finishes."""
    spec = _spec(db_url)
    ensure_study(spec)
    (tmp_path / "spec.pkl").write_bytes(pickle.dumps(spec))
    go = tmp_path / "go"
    total = 40
    procs = [
        _spawn(
            WORKER,
            str(tmp_path / "spec.pkl"),
            str(tmp_path / f"ready{i}"),
            str(go),
            str(total),
            str(100 + i),
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        assert time.monotonic() < deadline, [p.communicate() for p in procs]
        time.sleep(0.05)
    go.write_text("go")
    ran = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        ran.append(int(out.strip().splitlines()[-1]))
    trials = _trials(spec)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    surplus = [t for t in trials if t.user_attrs.get("surplus")]
    # exactly the total: a trial the other worker started past it is surplus (FAIL, marked,
    # nothing evaluated), never an extra finished trial
    assert len(finished) == total
    assert all(t.state is TrialState.FAIL and not t.params for t in surplus)
    assert len(trials) == len(finished) + len(surplus)  # none lost: no RUNNING / WAITING left
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert sum(ran) == total
    workers = {t.user_attrs.get("worker") for t in finished}
    assert len(workers) == 2 and all(r > 0 for r in ran)  # both contributed


def test_a_killed_workers_trial_is_failed_and_requeued(db_url: str, tmp_path: Path) -> None:
    """SIGKILL mid-trial leaves RUNNING; after the grace period the next worker fails it and the
    retry callback re-queues its parameters, which then complete."""
    spec = replace(_spec(db_url, heartbeat=1, grace=2), study_name="autotune.kill-test")
    ensure_study(spec)
    (tmp_path / "spec.pkl").write_bytes(pickle.dumps(spec))
    victim = _spawn(HANGING, str(tmp_path / "spec.pkl"))
    deadline = time.monotonic() + 60
    while not any(t.state is TrialState.RUNNING for t in _trials(spec)):
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # Optuna only calls a RUNNING trial stale once it has a heartbeat row: kill the worker
    # after its first heartbeat lands, not in the instant between "RUNNING" and that row
    # (a race seen on a loaded machine).
    plain_url = db_url.replace("postgresql+psycopg://", "postgresql://")
    while True:
        with psycopg.connect(plain_url) as conn:
            (beats,) = conn.execute("SELECT count(*) FROM trial_heartbeats").fetchone() or (0,)
        if beats:
            break
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=10)
    time.sleep(3.5)  # past the 2 s grace period: the heartbeat is stale
    [stuck] = _trials(spec)
    assert stuck.state is TrialState.RUNNING  # nobody has looked yet: still "running"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=spec.study_name, storage=open_storage(spec))
    study.optimize(lambda t: float(t.suggest_int("fast", 3, 60)), n_trials=1)
    first, retry = sorted(_trials(spec), key=lambda t: t.number)
    assert first.state is TrialState.FAIL
    assert retry.state is TrialState.COMPLETE and retry.params == first.params
    with warnings.catch_warnings():
        # the helper is marked experimental in Optuna 5; pytest runs with warnings as errors
        warnings.simplefilter("ignore", ExperimentalWarning)
        assert RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == first.number
