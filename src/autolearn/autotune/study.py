"""The Optuna study: search the autotune knobs on the train blocks of the walk-forward folds.

One study per (candle window, folds, objective, search space, cost): its name is a content
hash of all of them, so a re-run on the same data *extends* the study up to ``n_trials`` trials
in total, and a change of any input starts a new one (old trial values are not comparable).
Every trial is recorded in the storage (pruned ones too, with the reason) and counts toward the
selection-bias deflation.

Storage: an Optuna RDB URL. Default SQLite under the state dir; ``postgresql://...`` lets
several processes or machines work one study (Optuna's own distributed mode: each worker loads
the study and asks the storage for the next trial). Workers beat a heartbeat; a trial whose
worker died (SIGKILL, OOM, reboot) goes stale after ``grace_period_s``, the next worker fails it
and :class:`optuna.storages.RetryHeartbeatStaleTrialCallback` re-queues its parameters.

``n_trials`` is the study's total, exactly, however many workers and hosts share it. Each trial
first claims one of the ``n_trials`` slots under the study's lock on the storage
(``shared.claim_trial_slot``; who holds a slot: ``shared.slots_taken``); a trial
that finds every slot held is *surplus*: it evaluates nothing, is marked
(``user_attrs["surplus"]``), ends as ``FAIL`` (so no sampler and no count sees it: a pruned trial
without parameters would empty TPE's search space) and stops its worker. A worker whose free
slots are all held by trials running elsewhere waits for them (a dead worker's trial goes stale
and is reclaimed: failed, re-queued, re-run here), so every host's run ends on the complete
study. Stale trials are reclaimed before a worker returns early on a full study too (Optuna
reclaims only when a new trial starts). Seeds, the schema and the one decision per study:
``shared``.

This module is the shell of the search (processes, storage, files); the scoring itself is the
pure ``evaluate``. Must not: touch knob values or the state store.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import math
import multiprocessing
import time
import warnings
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from autolearn.adapters.logs import redact
from autolearn.autotune.objective import ObjectiveParams, make_objective
from autolearn.autotune.selection import sharpe_ratio
from autolearn.autotune.shared import (
    SLOT,
    Lock,
    claim_decision,
    claim_trial_slot,
    claim_worker_seed,
    create_locked,
    storage_lock,
    worker_name,
)
from autolearn.autotune.walkforward import Fold, walk_forward
from autolearn.backtest import Candles, Cost, get_strategy, load_candles, run_one
from autolearn.core.knobs import KnobSpec, KnobType
from autolearn.errors import ConfigError, InputError, StateError

__all__ = [
    "Evaluation",
    "SearchDim",
    "StudyResults",
    "StudySpec",
    "candle_window",
    "decide_once",
    "default_storage_url",
    "ensure_study",
    "evaluate",
    "make_spec",
    "normalize_url",
    "open_storage",
    "run_worker",
    "run_workers",
    "search_space",
    "study_results",
]

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
_SURPLUS = "surplus"
_POLL_S = 0.25  # waiting for trials running elsewhere: a cheap read of the study
_MIN_STALL_S = 60.0  # no trial finished for this long (or 2 grace periods): stop waiting


class _Surplus(Exception):  # control flow, not an error (like structlog's DropEvent)
    """A trial beyond the study's total: ends ``FAIL`` without evaluating anything."""


class _QuietSurplus(logging.Filter):
    """Drop Optuna's "Trial N failed" lines for surplus trials (they are not failures)."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers: set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(message.startswith(f"Trial {n} failed") for n in self.numbers)


_QUIET = _QuietSurplus()
logging.getLogger("optuna.study._optimize").addFilter(_QUIET)


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchDim:
    """One searched knob: its registry name, engine parameter and grid."""

    knob: str
    param: str
    integer: bool
    low: float
    high: float
    step: float


@dataclass(frozen=True, slots=True, kw_only=True)
class StudySpec:
    """Everything a worker needs, picklable (a worker on another machine rebuilds the rest)."""

    storage_url: str
    study_name: str
    candles_path: str
    start_us: int  # first bar of the window (inclusive)
    end_us: int  # last bar of the window (inclusive)
    fingerprint: str  # of the window's bars: every worker must search the same data
    strategy: str
    dims: tuple[SearchDim, ...]
    folds: int
    validate_fraction: float
    embargo_bars: int
    objective: str
    min_trades: int
    drawdown_weight: float
    spread_pips: float
    heartbeat_interval_s: int
    grace_period_s: int
    max_retry: int
    # (ledger URL, instrument, granularity) when the window comes from the ledger's candle
    # store; ``candles_path`` is then only a label for messages (never the URL: it may hold a
    # password).
    candles_ledger: tuple[str, str, str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluation:
    """One parameter set scored on one side (train or validate) of every fold, pooled."""

    score: float
    sharpe: float
    n_trades: int
    net_pips: float
    pips: tuple[float, ...]
    fold_trades: tuple[int, ...]

    def to_record(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return round(x, 6) if math.isfinite(x) else None

        return {
            "score": num(self.score),
            "sharpe": num(self.sharpe),
            "n_trades": self.n_trades,
            "net_pips": num(self.net_pips),
            "fold_trades": list(self.fold_trades),
        }


def default_storage_url(state_dir: Path) -> str:
    """``sqlite:///<state_dir>/autotune/optuna.db`` (untracked, beside the other state)."""
    return f"sqlite:///{Path(state_dir) / 'autotune' / 'optuna.db'}"


def normalize_url(url: str) -> str:
    """Use psycopg 3 for a bare ``postgresql://`` URL when psycopg2 is not installed."""
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg2") is None:
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


class _RetryStarted:
    """Re-queue a dead worker's trial (same parameters) unless it never started anything.

    Optuna's retry callback, with two exceptions: a surplus trial, or one that died before it
    claimed a slot or suggested a parameter, has nothing to re-run (re-queued, it would wait
    forever once the study is full). The re-queued trial does not inherit the claim: it claims
    again when it runs, so a slot freed by the failure is never counted twice.
    """

    def __init__(self, max_retry: int) -> None:
        with warnings.catch_warnings():  # experimental in Optuna 5 (see _build_storage)
            warnings.simplefilter("ignore", ExperimentalWarning)
            self._retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        attrs = trial.user_attrs
        if attrs.get(_SURPLUS) or (SLOT not in attrs and not trial.params):
            return
        trial.user_attrs = {k: v for k, v in attrs.items() if k != SLOT}  # our deep copy
        self._retry(study, trial)


def _build_storage(url: str, spec: StudySpec) -> RDBStorage:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # heartbeat_interval / grace_period / the retry callback are marked experimental
        # in Optuna 5 (ExperimentalWarning); the test suite turns warnings into errors, and
        # the feature is exactly what reclaims a dead worker's trial, so silence it here.
        warnings.simplefilter("ignore", ExperimentalWarning)
        return RDBStorage(
            url,
            heartbeat_interval=spec.heartbeat_interval_s,
            grace_period=spec.grace_period_s,
            heartbeat_stale_trial_callback=_RetryStarted(spec.max_retry),
        )


def open_storage(spec: StudySpec) -> RDBStorage:
    """The RDB storage with heartbeat and stale-trial retry (errors -> ``StateError``).

    The schema is created under the storage's schema lock: hosts starting on a fresh
    PostgreSQL at once raced on ``CREATE TYPE studydirection`` (exit 65).
    """
    url = normalize_url(spec.storage_url)
    try:
        return create_locked(url, lambda: _build_storage(url, spec))
    except (ConfigError, StateError):
        raise
    except Exception as exc:  # SQLAlchemy / driver errors: the boundary of the storage
        raise StateError(f"autotune storage {redact(url)}: cannot open ({exc})") from exc


def search_space(specs: Sequence[KnobSpec], knob_map: Mapping[str, str]) -> tuple[SearchDim, ...]:
    """The registry's bounds and grid of every mapped knob (every problem listed)."""
    by_name = {s.name: s for s in specs}
    problems = [f"{k}: not a registered knob of this family" for k in knob_map if k not in by_name]
    dims = []
    for knob, param in knob_map.items():
        spec = by_name.get(knob)
        if spec is None:
            continue
        if spec.type is KnobType.BOOL or spec.lower is None or spec.upper is None:
            problems.append(f"{knob}: only numeric knobs can be searched")
            continue
        dims.append(
            SearchDim(
                knob=knob,
                param=param,
                integer=spec.type is KnobType.INT,
                low=spec.lower,
                high=spec.upper,
                step=spec.step or 1.0,
            )
        )
    if problems:
        raise ConfigError("cannot build the autotune search space:", problems)
    return tuple(dims)


def candle_window(candles: Candles, end_us: int, span: timedelta) -> Candles:
    """The bars with ``end_us - span < time <= end_us``."""
    t = candles.time_us
    lo = int(np.searchsorted(t, end_us - int(span.total_seconds() * 1e6), side="right"))
    hi = int(np.searchsorted(t, end_us, side="right"))
    return _slice(candles, range(lo, hi))


def _slice(candles: Candles, r: range) -> Candles:
    s = slice(r.start, r.stop)
    return Candles(
        instrument=candles.instrument,
        timeframe_s=candles.timeframe_s,
        time_us=candles.time_us[s],
        open=candles.open[s],
        high=candles.high[s],
        low=candles.low[s],
        close=candles.close[s],
        volume=candles.volume[s],
        source=candles.source,
    )


def _fingerprint(candles: Candles) -> str:
    digest = hashlib.sha256()
    for arr in (candles.time_us, candles.open, candles.high, candles.low, candles.close):
        digest.update(np.ascontiguousarray(arr).tobytes())
    return digest.hexdigest()[:16]


def make_spec(
    *,
    storage_url: str,
    candles_path: Path,
    window: Candles,
    strategy: str,
    dims: tuple[SearchDim, ...],
    folds: int,
    validate_fraction: float,
    embargo_bars: int,
    objective: str,
    min_trades: int,
    drawdown_weight: float,
    spread_pips: float,
    heartbeat_interval_s: int,
    grace_period_s: int,
    max_retry: int,
    family: str,
    candles_ledger: tuple[str, str, str] | None = None,
) -> StudySpec:
    """The spec, with a study name that changes whenever anything it depends on changes."""
    if len(window) == 0:
        raise InputError(f"{candles_path}: no candles in the autotune window")
    walk_forward(  # fail early, in the shell, with the fold problems listed
        len(window), folds=folds, validate_fraction=validate_fraction, embargo_bars=embargo_bars
    )
    fingerprint = _fingerprint(window)
    identity = {
        "fingerprint": fingerprint,
        "strategy": strategy,
        "dims": [asdict(d) for d in dims],
        "folds": [folds, validate_fraction, embargo_bars],
        "objective": [objective, min_trades, drawdown_weight],
        "spread_pips": spread_pips,
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    return StudySpec(
        storage_url=storage_url,
        study_name=f"{family}.{digest}",
        candles_path=str(candles_path),
        start_us=int(window.time_us[0]),
        end_us=int(window.time_us[-1]),
        fingerprint=fingerprint,
        strategy=strategy,
        dims=dims,
        folds=folds,
        validate_fraction=validate_fraction,
        embargo_bars=embargo_bars,
        objective=objective,
        min_trades=min_trades,
        drawdown_weight=drawdown_weight,
        spread_pips=spread_pips,
        heartbeat_interval_s=heartbeat_interval_s,
        grace_period_s=grace_period_s,
        max_retry=max_retry,
        candles_ledger=candles_ledger,
    )


def _read_candles(spec: StudySpec) -> Candles:
    """The candle file, or the window's bars from the ledger's candle store."""
    if spec.candles_ledger is None:
        return load_candles(spec.candles_path)
    from autolearn.core.timestamps import from_epoch_us
    from autolearn.ledger.sql import SqlLedger

    url, instrument, granularity = spec.candles_ledger
    with SqlLedger.open(url) as ledger:
        return ledger.candles(
            instrument,
            granularity=granularity,
            since=from_epoch_us(spec.start_us),
            until=from_epoch_us(spec.end_us + 1),
        )


def load_window(spec: StudySpec) -> Candles:
    """The spec's candle window, checked against its fingerprint."""
    candles = _read_candles(spec)
    t = candles.time_us
    lo = int(np.searchsorted(t, spec.start_us, side="left"))
    hi = int(np.searchsorted(t, spec.end_us, side="right"))
    window = _slice(candles, range(lo, hi))
    if _fingerprint(window) != spec.fingerprint:
        raise InputError(
            f"{spec.candles_path}: the candles of the window differ from the study's "
            f"(fingerprint {spec.fingerprint}); every worker must read the same candles"
        )
    return window


def evaluate(
    window: Candles, spec: StudySpec, params: Mapping[str, float], side: str
) -> Evaluation:
    """Score ``params`` (engine parameters) on the ``side`` ("train"/"validate") of each fold.

    Each block is backtested on its own (positions close at its end), so no trade of one block
    sees the prices of another; P/L is pooled over the folds before scoring.
    """
    folds: tuple[Fold, ...] = walk_forward(
        len(window),
        folds=spec.folds,
        validate_fraction=spec.validate_fraction,
        embargo_bars=spec.embargo_bars,
    )
    objective = make_objective(
        spec.objective,
        ObjectiveParams(min_trades=spec.min_trades, drawdown_weight=spec.drawdown_weight),
    )
    cost = Cost(spread_pips=spec.spread_pips)
    pips: list[float] = []
    per_fold: list[int] = []
    for fold in folds:
        block = fold.train if side == "train" else fold.validate
        result = run_one(_slice(window, block), spec.strategy, dict(params), cost)
        pips.extend(float(p) for p in result.trades.pips)
        per_fold.append(len(result.trades))
    return Evaluation(
        score=objective.score(pips),
        sharpe=sharpe_ratio(pips),
        n_trades=len(pips),
        net_pips=math.fsum(pips),
        pips=tuple(pips),
        fold_trades=tuple(per_fold),
    )


def _suggest(trial: optuna.Trial, dim: SearchDim) -> float:
    if dim.integer:
        return float(trial.suggest_int(dim.param, int(dim.low), int(dim.high), step=int(dim.step)))
    return trial.suggest_float(dim.param, dim.low, dim.high, step=dim.step)


def _objective(window: Candles, spec: StudySpec, n_trials: int, lock: Lock) -> Any:
    strategy = get_strategy(spec.strategy)
    worker = worker_name()

    def objective(trial: optuna.Trial) -> float:
        if not claim_trial_slot(trial, lock, n_trials):
            trial.set_user_attr(_SURPLUS, True)
            _QUIET.numbers.add(trial.number)
            trial.study.stop()
            raise _Surplus(f"trial {trial.number}: the study already has {n_trials} trials")
        trial.set_user_attr("worker", worker)  # who ran it: a shared study spans machines
        params = {dim.param: _suggest(trial, dim) for dim in spec.dims}
        problems = strategy.check({**strategy.defaults, **params})
        if problems:
            trial.set_user_attr("pruned", "invalid_params: " + "; ".join(problems))
            raise optuna.TrialPruned()
        ev = evaluate(window, spec, params, "train")
        trial.set_user_attr("is_sharpe", ev.sharpe if math.isfinite(ev.sharpe) else None)
        trial.set_user_attr("is_trades", ev.n_trades)
        trial.set_user_attr("is_net_pips", round(ev.net_pips, 4))
        if not math.isfinite(ev.score):
            trial.set_user_attr("pruned", f"insufficient: {ev.n_trades} train trades")
            raise optuna.TrialPruned()
        return ev.score

    return objective


@dataclass(frozen=True, slots=True)
class _Opened:
    """The study and its lock on the storage (one per study, shared by every host)."""

    study: optuna.Study
    lock: Lock
    storage: RDBStorage


# per process: one engine per study, not one per call (a run opens its study four times, and
# each open of a fresh storage is a round of DDL checks under the schema lock); a few at most
_OPENED: dict[StudySpec, _Opened] = {}
_KEEP_OPEN = 4


def _open(spec: StudySpec) -> _Opened:
    """Create or load the study (once per process); both are created under the schema lock."""
    if spec in _OPENED:
        return _OPENED[spec]
    url = normalize_url(spec.storage_url)

    def create() -> _Opened:
        storage = _build_storage(url, spec)
        study = optuna.create_study(
            study_name=spec.study_name,
            storage=storage,
            direction="maximize",
            load_if_exists=True,
        )

        def lock() -> AbstractContextManager[None]:
            return storage_lock(url, f"study:{spec.study_name}", engine=storage.engine)

        return _Opened(study=study, lock=lock, storage=storage)

    while len(_OPENED) >= _KEEP_OPEN:  # the oldest study: its window has moved on
        _OPENED.pop(next(iter(_OPENED))).storage.engine.dispose()
    try:
        opened = _OPENED[spec] = create_locked(url, create)
    except (ConfigError, StateError):
        raise
    except Exception as exc:  # storage failures at the boundary
        raise StateError(f"autotune study {spec.study_name}: cannot open ({exc})") from exc
    return opened


def ensure_study(spec: StudySpec) -> None:
    """Create the study (and the storage's tables) once, before workers race to do it."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _open(spec)


def _reclaim(study: optuna.Study) -> None:
    """Fail (and re-queue) the trials of dead workers now, not only when a trial starts."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _progress(study: optuna.Study) -> tuple[int, int]:
    """(finished trials, claimed trials running): what holds the study's slots."""
    trials = study.get_trials(deepcopy=False)
    finished = sum(1 for t in trials if t.state in _FINISHED)
    running = sum(1 for t in trials if t.state is TrialState.RUNNING and SLOT in t.user_attrs)
    return finished, running


def _is_surplus_trial(trial: optuna.trial.FrozenTrial) -> bool:
    return bool(trial.user_attrs.get(_SURPLUS))


def run_worker(spec: StudySpec, n_trials: int, seed: int) -> int:
    """Work the study until it holds ``n_trials`` finished trials; return how many ran here.

    ``seed`` is the base: this worker seeds TPE with ``seed + `` its worker slot in the study
    (``shared.claim_worker_seed``). Returns once the study is complete, or when no trial has
    finished for two grace periods (at least a minute) while others still held the free slots.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    window = load_window(spec)
    opened = _open(spec)
    study = opened.study
    objective = _objective(window, spec, n_trials, opened.lock)
    ran, seeded = 0, False
    stall_s = max(_MIN_STALL_S, 2.0 * spec.grace_period_s)
    last, since = -1, time.monotonic()

    def count(_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal ran
        ran += trial.state in _FINISHED  # a surplus trial ran nothing

    while True:
        _reclaim(study)  # before the early return too: a full study keeps no RUNNING ghost
        finished, running = _progress(study)
        if finished >= n_trials:
            return ran
        if finished != last:
            last, since = finished, time.monotonic()
        if finished + running < n_trials:  # a free slot (or a re-queued trial): work
            if not seeded:
                worker_seed = claim_worker_seed(study, opened.lock, seed, worker_name())
                study.sampler = optuna.samplers.TPESampler(seed=worker_seed, constant_liar=True)
                seeded = True
            study.optimize(
                objective,
                n_trials=n_trials - finished,  # an upper bound: the slots decide
                callbacks=[MaxTrialsCallback(n_trials, states=_FINISHED), count],
                catch=(_Surplus,),
                gc_after_trial=False,
            )
            continue
        # every free slot is held by a trial running elsewhere: wait for it to finish (or go
        # stale and be reclaimed above), so that this host's run ends on the complete study
        if time.monotonic() - since > stall_s:
            return ran
        time.sleep(_POLL_S)


def _worker_main(spec: StudySpec, n_trials: int, seed: int) -> None:
    run_worker(spec, n_trials, seed)


def run_workers(spec: StudySpec, n_trials: int, workers: int, seed: int) -> dict[str, Any]:
    """Run ``workers`` processes on the study (1: in this process); their exit codes.

    Every worker gets the same base ``seed`` and claims its own slot (``seed + slot``).
    """
    ensure_study(spec)
    if workers <= 1:
        return {"workers": 1, "ran_here": run_worker(spec, n_trials, seed), "exit_codes": [0]}
    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding DB connections
    procs = [
        ctx.Process(target=_worker_main, args=(spec, n_trials, seed), daemon=False)
        for _ in range(workers)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    return {"workers": workers, "exit_codes": [p.exitcode for p in procs]}


def decide_once(spec: StudySpec, n_trials: int, marker: dict[str, Any]) -> dict[str, Any] | None:
    """Take the decision on the study at ``n_trials`` (None), or the marker of who took it."""
    opened = _open(spec)
    return claim_decision(opened.study, opened.lock, n_trials, marker)


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyResults:
    """What the storage holds for the study (every trial counted)."""

    counts: dict[str, int]
    best_params: dict[str, float] | None
    best_value: float | None
    best_number: int | None
    trial_sharpes: tuple[float, ...]  # in-sample Sharpes of the scored trials
    n_tried: int  # complete + pruned: every configuration that was looked at
    surplus: int = 0  # trials past the total, stopped before evaluating (not in ``counts``)
    pruned: dict[str, int] | None = None  # why trials were pruned (reason kind -> count)
    duplicates: int = 0  # finished trials whose parameters an earlier finished trial had
    seeds: tuple[int, ...] = ()  # the TPE seed of every worker that joined the study


def study_results(spec: StudySpec) -> StudyResults:
    """Counts by state, the best complete trial and every scored trial's Sharpe."""
    study = _open(spec).study
    every = study.get_trials(deepcopy=False)
    trials = [t for t in every if not _is_surplus_trial(t)]
    counts: dict[str, int] = {}
    pruned: dict[str, int] = {}
    for t in trials:
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
        if t.state is TrialState.PRUNED:
            kind = str(t.user_attrs.get("pruned", "unknown")).split(":", 1)[0]
            pruned[kind] = pruned.get(kind, 0) + 1
    complete = [t for t in trials if t.state is TrialState.COMPLETE and t.value is not None]
    sharpes = tuple(
        float(t.user_attrs["is_sharpe"])
        for t in complete
        if t.user_attrs.get("is_sharpe") is not None
    )
    best = max(complete, key=lambda t: (float(t.value or -math.inf), -t.number), default=None)
    return StudyResults(
        counts=counts,
        best_params={k: float(v) for k, v in best.params.items()} if best else None,
        best_value=float(best.value) if best and best.value is not None else None,
        best_number=best.number if best else None,
        trial_sharpes=sharpes,
        n_tried=sum(1 for t in trials if t.state in _FINISHED),
        surplus=len(every) - len(trials),
        pruned=pruned,
        duplicates=_duplicates(trials),
        seeds=_seeds(study.user_attrs),
    )


def _duplicates(trials: Sequence[optuna.trial.FrozenTrial]) -> int:
    seen = [tuple(sorted(t.params.items())) for t in trials if t.state in _FINISHED and t.params]
    return len(seen) - len(set(seen))


def _seeds(attrs: Mapping[str, Any]) -> tuple[int, ...]:
    joined = {int(k.split(".", 1)[1]): v for k, v in attrs.items() if k.startswith("worker.")}
    return tuple(int(v["seed"]) for _, v in sorted(joined.items()) if isinstance(v, dict))
