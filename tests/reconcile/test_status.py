"""Reconcile in ``status`` and ``doctor``: last clean age, mismatches, "not configured"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from autolearn.core.timestamps import format_utc
from autolearn.ops.doctor import check_reconcile
from autolearn.ops.findings import Severity
from autolearn.ops.status import LedgerProbe, ReconcileState, StatusInputs, build_status

NOW = datetime(2025, 10, 23, 3, 0, tzinfo=UTC)
FRESH = LedgerProbe(source="sqlite:///l.db", last_close_at=NOW - timedelta(minutes=5), trades=9)


def _run(ago: timedelta, decision: str, **extra: Any) -> dict[str, Any]:
    at = NOW - ago
    return {
        "at": format_utc(at),
        "run_id": f"reconcile-{format_utc(at)}",
        "mechanism": "reconcile",
        "decision": decision,
        "reasons": [decision],
        **extra,
    }


def _report(records: list[dict[str, Any]], **kw: Any) -> Any:
    return build_status(
        StatusInputs(records=records, history_path="history.jsonl", ledger=FRESH, **kw), NOW
    )


def test_never_configured_is_said_and_never_degrades() -> None:
    """No reconcile record and no state: 'not configured', exit stays 0, doctor only informs."""
    report = _report([])
    assert report.exit_code == 0
    assert report.reconcile is not None
    assert report.reconcile.state is ReconcileState.NOT_CONFIGURED
    assert "not configured" in report.reconcile.text
    assert "no reconcile record" in report.reconcile.source
    assert check_reconcile(report.reconcile).severity is Severity.INFO


def test_clean_within_the_window_is_healthy_and_cites_its_run() -> None:
    """A clean run 2 days ago: ok, with its age and its history run id."""
    record = _run(timedelta(days=2), "clean", findings_total=0)
    report = _report([record])
    assert report.exit_code == 0
    assert report.reconcile.state is ReconcileState.CLEAN
    assert report.reconcile.text == "last clean 2.0d ago"
    assert report.reconcile.source == f"history.jsonl run_id={record['run_id']}"
    assert check_reconcile(report.reconcile).severity is Severity.OK


def test_no_clean_run_within_the_window_degrades() -> None:
    """The last clean run 8 days ago is past the 7-day default: exit 1; a 10-day window: ok."""
    records = [_run(timedelta(days=8), "clean")]
    stale = _report(records)
    assert stale.exit_code == 1
    assert stale.reconcile.state is ReconcileState.STALE
    assert any("no clean run within 7.0d" in p for p in stale.problems)
    assert check_reconcile(stale.reconcile).severity is Severity.WARNING
    assert _report(records, reconcile_clean_within=timedelta(days=10)).exit_code == 0


def test_mismatch_degrades_until_a_later_clean_run() -> None:
    """A mismatch is shown with its count and time; the next clean run clears it."""
    mismatch = _run(timedelta(hours=3), "mismatch", findings_total=3)
    report = _report([_run(timedelta(days=1), "clean"), mismatch])
    assert report.exit_code == 1
    assert report.reconcile.state is ReconcileState.MISMATCH
    assert report.reconcile.text == f"mismatch: 3 findings at {mismatch['at']}"
    assert report.reconcile.findings == 3
    cleared = _report([mismatch, _run(timedelta(hours=1), "clean")])
    assert cleared.exit_code == 0 and cleared.reconcile.state is ReconcileState.CLEAN


def test_attempts_that_never_reached_the_broker_are_not_clean() -> None:
    """Configured but only broker_unavailable attempts: degraded, the attempt is named."""
    report = _report([_run(timedelta(hours=2), "broker_unavailable")])
    assert report.exit_code == 1
    assert report.reconcile.state is ReconcileState.NEVER_CLEAN
    assert "broker_unavailable" in report.reconcile.text


def test_state_file_alone_counts() -> None:
    """With no record but mechanisms/reconcile.json's last_clean_at, its age is used."""
    state = {"reconcile": {"last_clean_at": format_utc(NOW - timedelta(hours=5))}}
    report = _report([], mechanism_states=state)
    assert report.reconcile.state is ReconcileState.CLEAN
    assert report.reconcile.text == "last clean 5.0h ago"
    assert report.to_json()["reconcile"]["last_clean_at"] == state["reconcile"]["last_clean_at"]
