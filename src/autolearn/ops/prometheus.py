"""Prometheus text exposition of the control plane, for node_exporter's textfile collector.

Pure: a :class:`StatusReport` and the history records in, the text of ``autolearn.prom`` out
(the shell writes it atomically so the collector never reads half a file). Counters are counts
over the append-only history, so they only grow. Records are typed
(:class:`~autolearn.core.run_record.RunRecord`) or JSON objects parsed here; one that does not
parse is not counted (``build_status`` reports it, and ``autolearn_status_code`` shows it).
A value that is not finite is written as the format's ``NaN`` / ``+Inf`` / ``-Inf``, never a crash.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from autolearn.core.run_record import RunRecord, VerdictRecord, parse_runs
from autolearn.ops.status import Health, StatusReport, is_run

__all__ = ["format_value", "render_metrics"]


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value in the text format: integers plainly, NaN and infinities by their names."""
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)


def _sample(name: str, labels: Mapping[str, str], value: float) -> str:
    body = ",".join(f'{k}="{_label_value(v)}"' for k, v in sorted(labels.items()))
    number = format_value(value)
    return f"{name}{{{body}}} {number}" if body else f"{name} {number}"


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str, samples: Sequence[tuple[dict[str, str], float]]
    ) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        self.lines += [_sample(name, labels, value) for labels, value in samples]


def _verdict_outcomes(record: RunRecord) -> list[str]:
    if isinstance(record.verdicts, VerdictRecord):
        return [str(record.verdicts.outcome)]
    return [str(v.outcome) for v in record.verdicts.values() if v.has("outcome")]


def render_metrics(report: StatusReport, records: Sequence[RunRecord | Mapping[str, Any]]) -> str:
    """The whole ``autolearn.prom`` text (every metric named ``autolearn_*``)."""
    runs, _ = parse_runs(records)
    out = _Exposition()
    mechs = report.mechanisms
    out.family(
        "autolearn_last_run_timestamp_seconds",
        "gauge",
        "Unix time of the mechanism's last recorded run.",
        [({"mechanism": m.mechanism}, m.last_run.at.timestamp()) for m in mechs if m.last_run],
    )
    out.family(
        "autolearn_last_apply_timestamp_seconds",
        "gauge",
        "Unix time of the mechanism's last run that changed a knob.",
        [({"mechanism": m.mechanism}, m.last_apply.at.timestamp()) for m in mechs if m.last_apply],
    )
    out.family(
        "autolearn_mechanism_enabled",
        "gauge",
        "1 when the operator enabled the mechanism (autolearn systemd enable).",
        [({"mechanism": m.mechanism}, float(m.enabled)) for m in mechs],
    )
    out.family(
        "autolearn_mechanism_health",
        "gauge",
        "1 for the mechanism's current health (ok, pending, late, stopped, disabled).",
        [
            ({"mechanism": m.mechanism, "health": h.value}, float(m.health is h))
            for m in mechs
            for h in Health
        ],
    )
    out.family(
        "autolearn_mechanism_mode",
        "gauge",
        "1 for the mechanism's current mode (live, shadow, frozen).",
        [({"mechanism": m.mechanism, "mode": m.mode.value}, 1.0) for m in mechs],
    )
    decisions = Counter((r.mechanism, r.decision) for r in runs)
    out.family(
        "autolearn_decisions_total",
        "counter",
        "Run records in the history by mechanism and decision.",
        [({"mechanism": m, "decision": d}, n) for (m, d), n in sorted(decisions.items())],
    )
    rollbacks = Counter(r.mechanism for r in runs if r.decision == "rollback")
    out.family(
        "autolearn_rollbacks_total",
        "counter",
        "Rollbacks in the history (automatic and by the operator).",
        [({"mechanism": m}, n) for m, n in sorted(rollbacks.items())],
    )
    verdicts = Counter(
        (r.mechanism, outcome) for r in runs if is_run(r) for outcome in _verdict_outcomes(r)
    )
    out.family(
        "autolearn_verdicts_total",
        "counter",
        "Judge verdicts recorded in the history by outcome (pass, fail, inconclusive).",
        [({"mechanism": m, "outcome": o}, n) for (m, o), n in sorted(verdicts.items())],
    )
    out.family(
        "autolearn_blocked_pockets",
        "gauge",
        "Pockets and strategies whose new entries are blocked now.",
        [({}, float(len(report.blocked)))],
    )
    out.family(
        "autolearn_pocket_blocked",
        "gauge",
        "1 per blocked pocket (strategy empty for a whole pocket).",
        [({"pocket": b.pocket, "strategy": b.strategy or ""}, 1.0) for b in report.blocked],
    )
    out.family(
        "autolearn_knobs_changed",
        "gauge",
        "Knobs whose runtime value differs from the preset.",
        [({}, float(len(report.diff)))],
    )
    ledger = report.ledger
    out.family(
        "autolearn_ledger_up",
        "gauge",
        "1 when the trade ledger could be read.",
        [({}, float(ledger.error is None))],
    )
    if ledger.age is not None:
        out.family(
            "autolearn_ledger_last_close_age_seconds",
            "gauge",
            "Seconds since the newest closed trade in the ledger.",
            [({}, ledger.age.total_seconds())],
        )
    _ledger_and_reconcile(out, report)
    out.family(
        "autolearn_status_code",
        "gauge",
        "Exit code of autolearn status: 0 healthy, 1 degraded, 2 stopped.",
        [({}, float(report.exit_code))],
    )
    out.family(
        "autolearn_metrics_generated_timestamp_seconds",
        "gauge",
        "Unix time these metrics were computed (alert when it stops moving).",
        [({}, report.now.timestamp())],
    )
    return "\n".join(out.lines) + "\n"


def _ledger_and_reconcile(out: _Exposition, report: StatusReport) -> None:
    """Ledger size and staleness; when reconcile last ran clean and what it last found."""
    ledger = report.ledger
    if ledger.trades is not None:
        out.family(
            "autolearn_ledger_trades",
            "gauge",
            "Closed-trade rows in the ledger.",
            [({}, float(ledger.trades))],
        )
    stale = ledger.error is None and (ledger.age is None or ledger.age > ledger.stale_after)
    out.family(
        "autolearn_ledger_stale",
        "gauge",
        "1 when the newest closed trade is older than the stale limit (or there is none).",
        [({}, float(stale))],
    )
    out.family(
        "autolearn_ledger_stale_after_seconds",
        "gauge",
        "The ledger staleness limit status uses (--ledger-stale-after).",
        [({}, ledger.stale_after.total_seconds())],
    )
    rec = report.reconcile
    if rec is None:
        return
    out.family(
        "autolearn_reconcile_configured",
        "gauge",
        "1 once reconcile (broker vs ledger) has run or has state.",
        [({}, float(rec.configured))],
    )
    out.family(
        "autolearn_reconcile_state",
        "gauge",
        "1 for reconcile's current state (clean, stale, mismatch, never_clean, not_configured).",
        [({"state": rec.state.value}, 1.0)],
    )
    if rec.last_clean_at is not None:
        out.family(
            "autolearn_reconcile_last_clean_timestamp_seconds",
            "gauge",
            "Unix time of the last reconcile run that found the ledger equal to the broker.",
            [({}, rec.last_clean_at.timestamp())],
        )
    if rec.last_run is not None:
        out.family(
            "autolearn_reconcile_last_run_timestamp_seconds",
            "gauge",
            "Unix time of the last reconcile verdict (clean or mismatch).",
            [({}, rec.last_run.at.timestamp())],
        )
    if rec.findings is not None:
        out.family(
            "autolearn_reconcile_findings",
            "gauge",
            "Findings (missing, extra, differing, unreadable) of the last reconcile verdict.",
            [({}, float(rec.findings))],
        )
