"""Prometheus metrics of the control plane, for node_exporter's textfile collector.

Two layers. :func:`metric_families` is the pure mapping: a :class:`StatusReport` and the history
records in, ``prometheus_client`` metric families (plain values) out. :func:`render_metrics` is
their text exposition by ``prometheus_client``'s own registry and writer (``generate_latest``),
so escaping, number formatting (``NaN``, ``+Inf``) and the line grammar are the library's, not
ours. Counters are counts over the append-only history, so they only grow. Records are typed
(:class:`~autolearn.core.run_record.RunRecord`) or JSON objects parsed here; one that does not
parse is not counted (``build_status`` reports it, and ``autolearn_status_code`` shows it).

Writing the file stays with the shell (``autolearn metrics``: ``atomic_write_bytes`` with mode
0644): ``prometheus_client.write_to_textfile`` renames atomically too, but opens its temp file
with the process umask (node_exporter, another user, could find the new file unreadable) and
never fsyncs it or the directory. Nothing here touches the disk or the clock, and nothing uses
the library's global default registry: each rendering gets a fresh one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from autolearn.core.run_record import RunRecord, VerdictRecord, parse_runs
from autolearn.ops.status import Health, StatusReport, is_run

__all__ = ["metric_families", "render_metrics"]

_Samples = Iterable[tuple[Mapping[str, str], float]]


class _Families:
    """A collector over families computed beforehand (``collect`` is what the registry calls)."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


class _Builder:
    """Collects families in exposition order; every family names its labels up front, so a
    family with no sample yet still has its HELP and TYPE lines (an alert can find it)."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def family(
        self,
        name: str,
        kind: Literal["gauge", "counter"],
        help_text: str,
        labels: Sequence[str],
        samples: _Samples,
    ) -> None:
        metric_class = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
        family = metric_class(name, help_text, labels=list(labels))
        for sample_labels, value in samples:
            if set(sample_labels) != set(labels):
                raise ValueError(
                    f"metric {name}: sample labels {sorted(sample_labels)} are not {sorted(labels)}"
                )
            family.add_metric([sample_labels[k] for k in labels], float(value))
        self.families.append(family)

    def gauge(self, name: str, help_text: str, value: float) -> None:
        """A gauge with no labels and one sample."""
        self.family(name, "gauge", help_text, (), [({}, value)])


def _verdict_outcomes(record: RunRecord) -> list[str]:
    if isinstance(record.verdicts, VerdictRecord):
        return [str(record.verdicts.outcome)]
    return [str(v.outcome) for v in record.verdicts.values() if v.has("outcome")]


def render_metrics(report: StatusReport, records: Sequence[RunRecord | Mapping[str, Any]]) -> str:
    """The whole ``autolearn.prom`` text (every metric named ``autolearn_*``), in the Prometheus
    text format as ``prometheus_client`` writes it."""
    registry = CollectorRegistry(auto_describe=False)  # fresh: never the process-global one
    collector: Collector = _Families(metric_families(report, records))
    registry.register(collector)
    return generate_latest(registry).decode("utf-8")


def metric_families(
    report: StatusReport, records: Sequence[RunRecord | Mapping[str, Any]]
) -> list[Metric]:
    """The metric families of ``report`` and the history ``records``; pure, in a fixed order."""
    runs, _ = parse_runs(records)
    out = _Builder()
    mechs = report.mechanisms
    out.family(
        "autolearn_last_run_timestamp_seconds",
        "gauge",
        "Unix time of the mechanism's last recorded run.",
        ("mechanism",),
        [({"mechanism": m.mechanism}, m.last_run.at.timestamp()) for m in mechs if m.last_run],
    )
    out.family(
        "autolearn_last_apply_timestamp_seconds",
        "gauge",
        "Unix time of the mechanism's last run that changed a knob.",
        ("mechanism",),
        [({"mechanism": m.mechanism}, m.last_apply.at.timestamp()) for m in mechs if m.last_apply],
    )
    out.family(
        "autolearn_mechanism_enabled",
        "gauge",
        "1 when the operator enabled the mechanism (autolearn systemd enable).",
        ("mechanism",),
        [({"mechanism": m.mechanism}, float(m.enabled)) for m in mechs],
    )
    out.family(
        "autolearn_mechanism_health",
        "gauge",
        "1 for the mechanism's current health (ok, pending, late, stopped, disabled).",
        ("mechanism", "health"),
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
        ("mechanism", "mode"),
        [({"mechanism": m.mechanism, "mode": m.mode.value}, 1.0) for m in mechs],
    )
    _history_counters(out, runs)
    out.gauge(
        "autolearn_blocked_pockets",
        "Pockets and strategies whose new entries are blocked now.",
        len(report.blocked),
    )
    out.family(
        "autolearn_pocket_blocked",
        "gauge",
        "1 per blocked pocket (strategy empty for a whole pocket).",
        ("pocket", "strategy"),
        [({"pocket": b.pocket, "strategy": b.strategy or ""}, 1.0) for b in report.blocked],
    )
    out.gauge(
        "autolearn_knobs_changed",
        "Knobs whose runtime value differs from the preset.",
        len(report.diff),
    )
    _ledger_and_reconcile(out, report)
    out.gauge(
        "autolearn_status_code",
        "Exit code of autolearn status: 0 healthy, 1 degraded, 2 stopped.",
        report.exit_code,
    )
    out.gauge(
        "autolearn_metrics_generated_timestamp_seconds",
        "Unix time these metrics were computed (alert when it stops moving).",
        report.now.timestamp(),
    )
    return out.families


def _history_counters(out: _Builder, runs: Sequence[RunRecord]) -> None:
    """Decisions, rollbacks and judge verdicts counted over the whole history."""
    decisions = Counter((r.mechanism, r.decision) for r in runs)
    out.family(
        "autolearn_decisions_total",
        "counter",
        "Run records in the history by mechanism and decision.",
        ("mechanism", "decision"),
        [({"mechanism": m, "decision": d}, n) for (m, d), n in sorted(decisions.items())],
    )
    rollbacks = Counter(r.mechanism for r in runs if r.decision == "rollback")
    out.family(
        "autolearn_rollbacks_total",
        "counter",
        "Rollbacks in the history (automatic and by the operator).",
        ("mechanism",),
        [({"mechanism": m}, n) for m, n in sorted(rollbacks.items())],
    )
    verdicts = Counter(
        (r.mechanism, outcome) for r in runs if is_run(r) for outcome in _verdict_outcomes(r)
    )
    out.family(
        "autolearn_verdicts_total",
        "counter",
        "Judge verdicts recorded in the history by outcome (pass, fail, inconclusive).",
        ("mechanism", "outcome"),
        [({"mechanism": m, "outcome": o}, n) for (m, o), n in sorted(verdicts.items())],
    )


def _ledger_and_reconcile(out: _Builder, report: StatusReport) -> None:
    """Ledger health, size and staleness; when reconcile last ran clean and what it found."""
    ledger = report.ledger
    out.gauge("autolearn_ledger_up", "1 when the trade ledger could be read.", ledger.error is None)
    if ledger.age is not None:
        out.gauge(
            "autolearn_ledger_last_close_age_seconds",
            "Seconds since the newest closed trade in the ledger.",
            ledger.age.total_seconds(),
        )
    if ledger.trades is not None:
        out.gauge("autolearn_ledger_trades", "Closed-trade rows in the ledger.", ledger.trades)
    stale = ledger.error is None and (ledger.age is None or ledger.age > ledger.stale_after)
    out.gauge(
        "autolearn_ledger_stale",
        "1 when the newest closed trade is older than the stale limit (or there is none).",
        stale,
    )
    out.gauge(
        "autolearn_ledger_stale_after_seconds",
        "The ledger staleness limit status uses (--ledger-stale-after).",
        ledger.stale_after.total_seconds(),
    )
    rec = report.reconcile
    if rec is None:
        return
    out.gauge(
        "autolearn_reconcile_configured",
        "1 once reconcile (broker vs ledger) has run or has state.",
        rec.configured,
    )
    out.family(
        "autolearn_reconcile_state",
        "gauge",
        "1 for reconcile's current state (clean, stale, mismatch, never_clean, not_configured).",
        ("state",),
        [({"state": rec.state.value}, 1.0)],
    )
    if rec.last_clean_at is not None:
        out.gauge(
            "autolearn_reconcile_last_clean_timestamp_seconds",
            "Unix time of the last reconcile run that found the ledger equal to the broker.",
            rec.last_clean_at.timestamp(),
        )
    if rec.last_run is not None:
        out.gauge(
            "autolearn_reconcile_last_run_timestamp_seconds",
            "Unix time of the last reconcile verdict (clean or mismatch).",
            rec.last_run.at.timestamp(),
        )
    if rec.findings is not None:
        out.gauge(
            "autolearn_reconcile_findings",
            "Findings (missing, extra, differing, unreadable) of the last reconcile verdict.",
            rec.findings,
        )
