"""The shell every learning mechanism shares: run frame, lock, kill switch, record fields, versions.

The tuner, the policy, the scalp trainer and autotune run the same way: one run under the
mechanism's own lock (a second run records ``lock_busy`` and exits 0, never an error), the
operator's freeze lets a mechanism decide but apply nothing, and every run leaves one record of
the same shape so ``status`` and ``history`` read them all. The pieces of that shape live here
once; what a mechanism decides and its own record fields stay in its ``cycle.py``.

``version_context`` reads what attributing trades to versions needs: the version timeline from
the history (only when a trade has no pinned version) and the runtime layer of each version.

Must not: decide anything, read the clock (``now`` is a parameter), or write knob values (only
``StateStore.apply`` does, called by each mechanism).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from autolearn.adapters.state import ApplyResult, StateStore
from autolearn.core.judge import VersionTimeline
from autolearn.core.knobs import KnobValue
from autolearn.core.model import Trade
from autolearn.core.timestamps import TimestampError, format_utc, parse_utc
from autolearn.errors import LockBusy, StateError

__all__ = [
    "ENDS_FLIGHT",
    "applied_fields",
    "base_record",
    "lock_busy_record",
    "outcome_fields",
    "proposed_diff",
    "run_locked",
    "unchanged_fields",
    "version_context",
]


# decisions after which a family's arms end: every entry sees the values the decision left
ENDS_FLIGHT = frozenset({"promote", "rollback", "revert"})


def base_record(
    mechanism: str, now: datetime, *, shadow: bool, run_id: str | None
) -> dict[str, Any]:
    """The keys every run record starts with; ``run_id`` defaults to the time and process id."""
    return {
        "at": format_utc(now),
        "run_id": run_id or f"{format_utc(now)}-{os.getpid()}",
        "mechanism": mechanism,
        "mode": "shadow" if shadow else "live",
    }


def lock_busy_record(base: Mapping[str, Any]) -> dict[str, Any]:
    """The record of a run that found its mechanism's lock held (nothing decided)."""
    return dict(base) | {
        "decision": "lock_busy",
        "intended": "lock_busy",
        "reasons": ["lock_busy"],
        "knobs": [],
        "diff": [],
        "metrics": {},
        "verdicts": {},
        "version_before": None,
        "version_after": None,
        "in_flight": None,
        "applied": False,
    }


def run_locked(
    store: StateStore,
    base: Mapping[str, Any],
    body: Callable[[], dict[str, Any]],
    *,
    busy: Callable[[Mapping[str, Any]], dict[str, Any]] = lock_busy_record,
) -> dict[str, Any]:
    """``body()`` under the lock of ``base["mechanism"]``; if held, record ``busy(base)`` instead.

    The lock is taken without waiting: the next timer run comes soon, and two runs of one
    mechanism deciding on the same state at once is what the lock exists to prevent.
    """
    try:
        with store.lock(str(base["mechanism"]), timeout_s=0):
            return body()
    except LockBusy:
        record = busy(base)
        store.record(record)
        return record


def outcome_fields(
    intended: str, reasons: Iterable[str], *, live: bool, frozen: tuple[bool, str]
) -> dict[str, Any]:
    """``mode``, ``decision`` (what happened), ``intended`` (what the logic decided), ``reasons``.

    ``frozen`` is ``StateStore.is_frozen(mechanism)``: a frozen run decides like a live one and
    is recorded as ``frozen`` (decision and mode) with the operator's reason first; any other
    run that may not act
    (``--shadow``, a mechanism's own shadow mode) is recorded as ``shadow``.
    """
    is_frozen, why = frozen
    return {
        # "frozen" as status shows it (control.json), not "shadow": a frozen run is no shadow run
        "mode": "live" if live else ("frozen" if is_frozen else "shadow"),
        "decision": intended if live else ("frozen" if is_frozen else "shadow"),
        "intended": intended,
        "reasons": ([f"operator_frozen: {why}"] if is_frozen else []) + list(reasons),
    }


def applied_fields(result: ApplyResult) -> dict[str, Any]:
    """The record's fields from ``StateStore.apply``: per-knob codes, versions, the diff."""
    return {
        "applied": result.applied,
        "version_before": result.version_before,
        "version_after": result.version_after,
        "knobs": [d.to_record() for d in result.decisions],
        "diff": result.diff,
    }


def unchanged_fields(version: str, knobs: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The record's fields of a run that asked for no change (``knobs``: what it considered)."""
    return {
        "applied": False,
        "knobs": list(knobs),
        "diff": [],
        "version_before": version,
        "version_after": version,
    }


def proposed_diff(result: ApplyResult) -> list[dict[str, Any]]:
    """What the guard would have adopted, for a run that applied nothing (shadow, frozen)."""
    return [
        {"knob": d.knob, "before": d.before, "after": d.requested}
        for d in result.decisions
        if d.adopted
    ]


def version_context(
    store: StateStore, trades: Sequence[Trade], current_version: str, also: Iterable[str] = ()
) -> tuple[VersionTimeline, dict[str, Mapping[str, KnobValue]]]:
    """The version timeline and the runtime layer of every version the trades may be under.

    ``also`` names further versions the caller judges by (an LKG, a baseline). The history is
    read only when a trade has no pinned ``config_version`` (legacy rows).
    """
    timeline = _timeline(store, current_version, any(not t.config_version for t in trades))
    wanted = {t.config_version for t in trades if t.config_version} | set(also)
    wanted |= {v for _, v in timeline.points} | {timeline.initial, current_version}
    return timeline, _layers(store, wanted)


def _timeline(store: StateStore, current_version: str, needed: bool) -> VersionTimeline:
    if not needed:
        return VersionTimeline((), current_version)
    changes = []
    for record in store.history.read().records:
        if not record.get("applied") or not record.get("version_after"):
            continue
        try:
            at = parse_utc(str(record.get("at", "")))
        except TimestampError:
            continue  # a record without a readable time places no version on the timeline
        changes.append((at, str(record.get("version_before", "")), str(record["version_after"])))
    timeline = VersionTimeline.from_changes(changes)
    return timeline if timeline.points else VersionTimeline((), current_version)


def _layers(store: StateStore, versions: set[str]) -> dict[str, Mapping[str, KnobValue]]:
    found: dict[str, Mapping[str, KnobValue]] = {}
    for version in sorted(v for v in versions if v):
        try:
            found[version] = dict(store.read_snapshot(version).get("values", {}))
        except StateError:
            continue  # an unknown version attributes no trade (counted as unattributed)
    return found
