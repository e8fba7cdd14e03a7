"""Landmarks: the few records of a history segment that `status` needs from outside its window.

``status`` looks at the last 24 hours in full, and beyond them only at "the last record such
that ...": the last run of each mechanism, its last apply, its last record reporting an in-flight
change or verdicts, the last record of each decision (an operator's enable or disable, a
reconcile's clean or mismatch), the last applied change that set a knob to ``false`` (a block).
Each such question is a *landmark key*; a rotated segment's summary keeps, per key, where its
last matching record is. "Last" is by time, ties by position, exactly as ``status`` sorts (a
stable sort by ``at``): :func:`newer_or_same` is that order. The landmarks of every segment plus
the records of the window are then enough for ``status`` to give the answer it gives on the
whole history.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from datetime import datetime

from autolearn.core.run_record import RunRecord

__all__ = ["is_run", "landmark_keys", "newer_or_same"]


def is_run(record: RunRecord) -> bool:
    """A mechanism's own run, not an operator action recorded under its name (freeze, enable)."""
    return not record.decision.startswith(("operator_", "systemd_"))


def landmark_keys(record: RunRecord) -> list[str]:
    """Every landmark key ``record`` matches (none without a readable ``at``)."""
    if record.at is None:
        return []  # status orders by time: a record without one is never "the last"
    m = record.mechanism
    keys = [f"any/{m}", f"decision/{m}/{record.decision}"]
    if is_run(record):
        keys.append(f"run/{m}")
        if record.applied:
            keys.append(f"apply/{m}")
        if record.has("in_flight") or record.has("verdicts"):
            keys.append(f"progress/{m}")
    if record.applied:
        keys += sorted({f"block/{d.knob}" for d in record.diff if d.after is False})
    return keys


def newer_or_same(at: datetime, best_at: datetime) -> bool:
    """Whether a later-positioned record at ``at`` replaces the best so far at ``best_at``."""
    return at >= best_at
