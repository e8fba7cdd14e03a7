"""One line of text per run record, for `history` tables and the report.

Every mechanism writes the same record shape (``decision``, ``intended``, ``diff`` or
``proposed_diff``, ``verdicts``, ``reasons``, ``target_version``). This module turns one record into
short columns a person reads at a glance. Pure: a :class:`RunRecord` (or its JSON) in, strings out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from autolearn.core.run_record import KnobDiff, RunRecord, VerdictRecord
from autolearn.core.timestamps import format_utc

__all__ = ["FoldedRow", "RecordRow", "fold_rows", "record_row"]

_MAX_REASONS = 4


@dataclass(frozen=True, slots=True)
class RecordRow:
    at: str
    mechanism: str
    decision: str
    changes: str
    verdicts: str
    reasons: str


def _listed(diff: Sequence[KnobDiff]) -> str:
    return ", ".join(f"{d.knob}: {d.before}->{d.after}" for d in diff)


def _changes(record: RunRecord) -> str:
    text = _listed(record.diff)
    if not text and record.proposed_diff:
        text = "would: " + _listed(record.proposed_diff)
    target = record.target_version
    if target:
        mark = " (restored)" if record.restored_snapshot else ""
        text = f"{text} -> {target}{mark}" if text else f"-> {target}{mark}"
    return text or "-"


def _verdicts(record: RunRecord) -> str:
    verdicts: Mapping[str, VerdictRecord] = (
        {"": record.verdicts} if isinstance(record.verdicts, VerdictRecord) else record.verdicts
    )
    parts = []
    for family, verdict in sorted(verdicts.items()):
        n_candidate = verdict.n_candidate if verdict.has("n_candidate") else "?"
        n_baseline = verdict.n_baseline if verdict.has("n_baseline") else "?"
        text = f"{verdict.outcome} {n_candidate}/{n_baseline}"
        needed = verdict.trades_needed
        if verdict.outcome == "inconclusive" and needed:
            text += f" ~{needed} more"
        parts.append(f"{family}: {text}" if family else text)
    return "; ".join(parts) or "-"


def record_row(record: RunRecord | Mapping[str, Any]) -> RecordRow:
    """The columns of one record: when, who, decision (with intent), changes, verdicts, why.

    Raises:
        StateError: ``record`` is JSON that is not a valid run record (see ``RunRecord``).
    """
    run = record if isinstance(record, RunRecord) else RunRecord.from_json(record)
    decision = run.decision
    if run.intended and run.intended != decision:
        decision = f"{decision} (intended {run.intended})"
    reasons = run.reasons
    shown = ", ".join(reasons[:_MAX_REASONS])
    if len(reasons) > _MAX_REASONS:
        shown += f" (+{len(reasons) - _MAX_REASONS} more)"
    return RecordRow(
        at=format_utc(run.at)[:19] if run.at is not None else "",
        mechanism=run.mechanism,
        decision=decision,
        changes=_changes(run),
        verdicts=_verdicts(run),
        reasons=shown or "-",
    )


@dataclass(frozen=True, slots=True)
class FoldedRow:
    """Consecutive runs of one mechanism that read the same (a freeze repeated 300 times).

    Nothing is hidden: ``count`` runs, the first and last time and run id; ``history
    --expand`` (or ``--json``) shows each one.
    """

    row: RecordRow  # the first run's columns (``at`` its time)
    count: int
    first_at: str
    last_at: str
    first_run_id: str
    last_run_id: str

    @property
    def runs(self) -> str:
        if self.count == 1:
            return self.first_run_id
        return (
            f"{self.count} runs {self.first_at} .. {self.last_at} "
            f"({self.first_run_id} .. {self.last_run_id})"
        )


def fold_rows(runs: Sequence[RunRecord]) -> list[FoldedRow]:
    """``runs`` (in time order) folded: a run whose columns, time aside, equal those of its
    mechanism's previous run joins that run's row; rows keep the order of their first run."""
    out: list[FoldedRow] = []
    open_row: dict[str, int] = {}  # mechanism -> index in ``out`` of its latest row
    for run in runs:
        row = record_row(run)
        run_id = run.run_id or "-"
        index = open_row.get(run.mechanism)
        if index is not None and replace(out[index].row, at="") == replace(row, at=""):
            group = out[index]
            out[index] = replace(group, count=group.count + 1, last_at=row.at, last_run_id=run_id)
            continue
        open_row[run.mechanism] = len(out)
        out.append(FoldedRow(row, 1, row.at, row.at, run_id, run_id))
    return out
