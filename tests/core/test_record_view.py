"""History rows: a record's intent, changes, verdicts and reasons in a glance."""

from __future__ import annotations

from autolearn.core.record_view import record_row


def test_shadow_record_shows_what_it_would_do() -> None:
    """A shadow run shows its intended decision and the diff it would have applied."""
    row = record_row(
        {
            "at": "2026-11-24T10:00:00.000000Z",
            "mechanism": "tuner",
            "decision": "shadow",
            "intended": "apply",
            "proposed_diff": [{"knob": "k", "before": 1, "after": 2}],
            "reasons": ["a", "b", "c", "d", "e", "f"],
        }
    )
    assert row.decision == "shadow (intended apply)"
    assert row.changes == "would: k: 1->2"
    assert row.reasons == "a, b, c, d (+2 more)"


def test_rollback_record_names_its_target_and_verdict() -> None:
    """A rollback shows the restored snapshot and the verdict with its trade counts."""
    row = record_row(
        {
            "decision": "rollback",
            "intended": "rollback",
            "diff": [{"knob": "k", "before": 2, "after": 1}],
            "target_version": "v123",
            "restored_snapshot": True,
            "verdicts": {"exit.lowvol": {"outcome": "fail", "n_candidate": 40, "n_baseline": 300}},
        }
    )
    assert row.decision == "rollback"
    assert row.changes == "k: 2->1 -> v123 (restored)"
    assert row.verdicts == "exit.lowvol: fail 40/300"


def test_inconclusive_verdict_says_how_many_more_trades() -> None:
    """An inconclusive verdict tells the operator roughly how many trades are still needed."""
    row = record_row(
        {
            "verdicts": {
                "micro.entry": {
                    "outcome": "inconclusive",
                    "n_candidate": 12,
                    "n_baseline": 80,
                    "trades_needed": 35,
                }
            }
        }
    )
    assert row.verdicts == "micro.entry: inconclusive 12/80 ~35 more"
    assert (row.changes, row.reasons) == ("-", "-")
