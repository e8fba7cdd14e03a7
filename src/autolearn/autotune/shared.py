"""What the workers and hosts of one study agree on, each under a lock on the shared storage.

Optuna's RDB storage numbers trials atomically and beats heartbeats, and nothing else: every
host's worker used to seed TPE with the same ``config.seed + i`` (26 % of evaluations duplicated
with 2 hosts), hosts starting on a fresh PostgreSQL raced to create the schema
(``UniqueViolation ... CREATE TYPE studydirection``, exit 65), and each host decided on its own
view of the study. So, on the storage itself (PostgreSQL: an advisory lock, held on a
connection of its own and gone with it when a process dies; SQLite: a flock beside the file,
the single-host case):

- the schema and the study are created under one lock, with a retry for a host that raced
  without it (an older version, or a DDL error surfacing after the lock);
- each worker claims the next *worker slot* of the study (a counter in the study's user attrs)
  and seeds TPE with ``seed + slot``: unique per worker across hosts, and on one host a fresh
  study's workers get ``seed, seed + 1, ...`` as before, so a single-host run stays
  reproducible from ``config.seed`` (one worker: exactly ``config.seed``);
- each trial claims one of the ``n_trials`` *trial slots* before it suggests anything: the
  count of the slots held (``slots_taken``) is read and the claim written under the study's
  lock, so no interleaving of hosts can exceed the total;
- the decision on a complete study is taken once: the first host writes a ``decided`` marker
  (keyed by the study's total) under the lock, the others read it back.

The counting rules are pure (``slots_taken``); the locks are the shell. Must not: touch knob
values, or any table but through Optuna's API (the lock is the only SQL of our own).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import optuna
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from autolearn.adapters.locks import file_lock
from autolearn.adapters.logs import redact
from autolearn.adapters.pg_lock import advisory_lock
from autolearn.errors import ConfigError, LockBusy, StateError

__all__ = [
    "DECIDED",
    "SLOT",
    "Lock",
    "claim_decision",
    "claim_trial_slot",
    "claim_worker_seed",
    "create_locked",
    "slots_taken",
    "storage_lock",
    "worker_name",
]

SLOT = "slot"  # trial user attr: the trial holds one of the study's n_trials slots
DECIDED = "decided"  # study user attr prefix: the decision taken on the complete study
_WORKERS = "worker_slots"  # study user attr: how many workers have joined the study
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
_HOLDING = (TrialState.RUNNING, TrialState.WAITING, *_FINISHED)  # may hold a slot
_LOCK_TIMEOUT_S = 60.0  # a claim holds the lock for milliseconds; a minute means a stuck peer
_POLL_S = 0.01

T = TypeVar("T")
Lock = Callable[[], AbstractContextManager[None]]


def worker_name() -> str:
    """``host:pid``: who ran a trial, in a study shared by machines."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _lock_name(name: str) -> str:
    """What the advisory lock ``name`` (one per study, one for schema) is keyed on."""
    return f"autolearn.autotune:{name}"


@contextmanager
def _pg_lock(engine: Engine | str, name: str, timeout_s: float) -> Iterator[None]:
    # session-level, on a connection of its own: the Optuna calls made while it is held run
    # on the storage's other connections, and a killed process's lock dies with its session
    try:
        with advisory_lock(
            engine, _lock_name(name), timeout_s=timeout_s, poll_s=_POLL_S, what=f"autotune {name}"
        ):
            yield
    except LockBusy as exc:  # waited for a claim held for milliseconds: a stuck peer, an error
        raise StateError(f"autotune {name}: lock not acquired within {timeout_s:g} s") from exc


@contextmanager
def _sqlite_lock(url: str, what: str, timeout_s: float) -> Iterator[None]:
    path = url.removeprefix("sqlite:///")
    if not path or path == ":memory:":  # one process owns an in-memory database
        yield
        return
    try:
        with file_lock(Path(path + ".lock"), timeout_s=timeout_s):
            yield
    except LockBusy as exc:
        raise StateError(f"autotune {what}: lock not acquired within {timeout_s:g} s") from exc


@contextmanager
def storage_lock(
    url: str,
    name: str,
    *,
    engine: Engine | None = None,
    timeout_s: float = _LOCK_TIMEOUT_S,
) -> Iterator[None]:
    """Hold the storage-wide lock ``name`` (waits up to ``timeout_s``, then ``StateError``).

    ``engine``: a PostgreSQL engine to take it on (the storage's); without one, a connection of
    its own is opened (before the storage exists: the schema lock).
    """
    if url.startswith("sqlite"):
        with _sqlite_lock(url, name, timeout_s):
            yield
        return
    if not url.startswith("postgresql"):
        raise ConfigError(
            f"autotune storage {redact(url)}: only sqlite:/// and postgresql:// are supported "
            "(several hosts need PostgreSQL's advisory locks)"
        )
    with _pg_lock(url if engine is None else engine, name, timeout_s):
        yield


def _is_ddl_race(exc: BaseException) -> bool:
    """A concurrent ``CREATE`` lost (duplicate type, table or version row), worth a retry."""
    return isinstance(exc, sa_exc.IntegrityError | sa_exc.ProgrammingError)


def create_locked(url: str, create: Callable[[], T], *, attempts: int = 3) -> T:
    """``create()`` (storage and study) under the schema lock, retried after a DDL race."""
    for attempt in range(1, attempts + 1):
        try:
            with storage_lock(url, "schema"):
                return create()
        except sa_exc.DBAPIError as exc:
            if not _is_ddl_race(exc) or attempt == attempts:
                raise
            time.sleep(0.05 * attempt)  # a racer without the lock: let it finish its DDL
    raise AssertionError("unreachable")  # pragma: no cover


def claim_worker_seed(study: optuna.Study, lock: Lock, base_seed: int, worker: str) -> int:
    """The next worker slot of ``study``; its TPE seed is ``base_seed + slot``."""
    with lock():
        slot = int(study.user_attrs.get(_WORKERS, 0))  # read from the storage, not a cache
        study.set_user_attr(_WORKERS, slot + 1)
        study.set_user_attr(f"worker.{slot}", {"worker": worker, "seed": base_seed + slot})
    return base_seed + slot


def slots_taken(trials: Iterable[FrozenTrial], own_number: int) -> int:
    """How many *other* trials hold a slot.

    Finished trials hold theirs; a running one holds the slot it claimed; a dead worker's trial
    re-queued by the heartbeat (waiting, ``failed_trial`` set) holds one for its parameters, so
    the host that pops it re-runs them instead of losing the slot to a fresh trial started at
    the same moment on another host. A failed trial (dead, or surplus) frees its slot.
    """
    return sum(
        1
        for t in trials
        if t.number != own_number
        and (
            t.state in _FINISHED
            or (t.state is TrialState.RUNNING and SLOT in t.user_attrs)
            or (t.state is TrialState.WAITING and "failed_trial" in t.system_attrs)
        )
    )


def claim_trial_slot(trial: optuna.Trial, lock: Lock, n_trials: int) -> bool:
    """Claim one of the study's ``n_trials`` slots for ``trial``; False when all are held."""
    with lock():
        taken = slots_taken(trial.study.get_trials(deepcopy=False, states=_HOLDING), trial.number)
        if taken >= n_trials:
            return False
        trial.set_user_attr(SLOT, taken)
    return True


def claim_decision(
    study: optuna.Study, lock: Lock, n_trials: int, marker: dict[str, Any]
) -> dict[str, Any] | None:
    """Record ``marker`` as the decision on the study at ``n_trials``; None when it is ours.

    Returns the marker another run wrote first (the decision was already taken). Keyed by the
    total: a study later extended to more trials is new evidence and may be decided again.
    """
    key = f"{DECIDED}.{n_trials}"
    with lock():
        earlier = study.user_attrs.get(key)
        if earlier is not None:
            return dict(earlier)
        study.set_user_attr(key, marker)
    return None
