"""One line of text per run record, for `history` tables and the report.

Every mechanism writes the same record shape (``decision``, ``intended``, ``diff`` or
``proposed_diff``, ``verdicts``, ``reasons``, ``target_version``). This module turns one record into
short columns a person reads at a glance. Pure: dict in, strings out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["RecordRow", "record_row"]

_MAX_REASONS = 4


@dataclass(frozen=True, slots=True)
class RecordRow:
    at: str
    mechanism: str
    decision: str
    changes: str
    verdicts: str
    reasons: str


def _changes(record: Mapping[str, Any]) -> str:
    diff = record.get("diff") or []
    text = ", ".join(f"{d.get('knob')}: {d.get('before')}->{d.get('after')}" for d in diff)
    if not text and record.get("proposed_diff"):
        proposed = record["proposed_diff"]
        text = "would: " + ", ".join(
            f"{d.get('knob')}: {d.get('before')}->{d.get('after')}" for d in proposed
        )
    target = record.get("target_version")
    if target:
        restored = record.get("restored_snapshot")
        mark = " (restored)" if restored else ""
        text = f"{text} -> {target}{mark}" if text else f"-> {target}{mark}"
    return text or "-"


def _verdicts(record: Mapping[str, Any]) -> str:
    verdicts = record.get("verdicts") or {}
    if isinstance(verdicts, Mapping) and "outcome" in verdicts:
        verdicts = {"": verdicts}
    parts = []
    for family, verdict in sorted(verdicts.items()) if isinstance(verdicts, Mapping) else ():
        if not isinstance(verdict, Mapping):
            continue
        text = f"{verdict.get('outcome')} {verdict.get('n_candidate', '?')}/"
        text += f"{verdict.get('n_baseline', '?')}"
        needed = verdict.get("trades_needed")
        if verdict.get("outcome") == "inconclusive" and needed:
            text += f" ~{needed} more"
        parts.append(f"{family}: {text}" if family else text)
    return "; ".join(parts) or "-"


def record_row(record: Mapping[str, Any]) -> RecordRow:
    """The columns of one record: when, who, decision (with intent), changes, verdicts, why."""
    decision = str(record.get("decision", ""))
    intended = record.get("intended")
    if intended and intended != decision:
        decision = f"{decision} (intended {intended})"
    reasons = [str(r) for r in record.get("reasons", [])]
    shown = ", ".join(reasons[:_MAX_REASONS])
    if len(reasons) > _MAX_REASONS:
        shown += f" (+{len(reasons) - _MAX_REASONS} more)"
    return RecordRow(
        at=str(record.get("at", ""))[:19],
        mechanism=str(record.get("mechanism", "")),
        decision=decision,
        changes=_changes(record),
        verdicts=_verdicts(record),
        reasons=shown or "-",
    )
