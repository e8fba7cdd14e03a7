"""The operator's one-screen answer: is each mechanism working, stopped or degraded, and why.

Pure: history records (typed :class:`~autolearn.core.run_record.RunRecord` values, or JSON
objects parsed here), operator switches, mechanism states, the effective layer, a ledger probe
and ``now`` in; a :class:`StatusReport` out. No clock, no file, no git. Every claim carries its
source (a history ``run_id``, ``control.json``, ``effective.json``, ``mechanisms/<m>.json`` or
the ledger), because truth in production must be traceable (PRODUCT.md).

Health of an enabled mechanism, from the age of its last run (or of its enabling, before the
first run) against its cadence: ``ok`` up to 1.5 cadences, ``late`` up to 2, ``stopped`` beyond.
Exit code: 2 when an enabled mechanism is stopped, 1 when degraded (late, unreadable effective
layer, stale or unreadable ledger, torn, corrupt or malformed history, reconcile found a mismatch
or has not run clean within its window), else 0.

Reconcile (broker vs ledger, ``autolearn reconcile``) counts only once it has been configured,
i.e. once any reconcile record is in the history or ``mechanisms/reconcile.json`` exists: a bot
without OANDA access is never degraded for not reconciling, and the report says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from autolearn.compat.quantrabbit.health import compat_problems
from autolearn.core.history_landmarks import is_run
from autolearn.core.knob_names import strategy_from_key
from autolearn.core.run_record import RunRecord, VerdictRecord, parse_runs
from autolearn.core.timestamps import TimestampError, format_utc, parse_utc
from autolearn.ops.hosts import HostStatus, ServedVersion, compare_hosts
from autolearn.ops.schedules import SCHEDULES, Schedule

__all__ = [
    "STATUS_WINDOW",
    "BlockedPocket",
    "Health",
    "KnobDiff",
    "LedgerProbe",
    "LedgerStatus",
    "MechanismStatus",
    "Mode",
    "ReconcileState",
    "ReconcileStatus",
    "RunRef",
    "StatusInputs",
    "StatusReport",
    "build_status",
    "enabled_state",
    "is_run",
    "reconcile_status",
    "record_time",
]

_LATE_AFTER = 1.5  # cadences
_STOPPED_AFTER = 2.0
# the only records status looks at in full; beyond it, only "the last record such that ..."
# (the landmarks of autolearn.core.history_landmarks), which lets it skip old segments
STATUS_WINDOW = timedelta(hours=24)
_ROLLBACK_WINDOW = STATUS_WINDOW
_MALFORMED_SHOWN = 3
_BLOCK_KNOB = re.compile(
    r"^pockets\.(?P<pocket>[^.]+)(?:\.strategies\.(?P<strategy>[^.]+))?\.allow_new$"
)


class Health(StrEnum):
    OK = "ok"
    PENDING = "pending"  # enabled recently, first run not due yet
    LATE = "late"
    STOPPED = "stopped"
    DISABLED = "disabled"


class Mode(StrEnum):
    LIVE = "live"
    SHADOW = "shadow"
    FROZEN = "frozen"


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerProbe:
    """What the shell learned from the ledger (``error`` when it could not be read)."""

    source: str  # the ledger URL, password redacted
    last_close_at: datetime | None = None
    trades: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusInputs:
    """Everything ``status`` reads, gathered by the shell.

    ``records`` are typed (``HistoryFile.read_runs``) or JSON objects, parsed here; one that
    does not parse is skipped and reported like ``history_malformed`` (``(line, why)``).
    """

    records: Sequence[RunRecord | Mapping[str, Any]]
    history_path: str
    # the whole history's run count when ``records`` is its window plus landmarks
    # (``HistoryFile.read_status``: same report, old segments unread); None: len(records)
    history_records: int | None = None
    history_problems: Sequence[str] = ()  # unreadable lines of rotated segments
    history_torn: bool = False
    history_corrupt_lines: Sequence[int] = ()
    history_malformed: Sequence[tuple[int, str]] = ()
    control: Mapping[str, Any] = field(default_factory=dict)
    control_path: str = "control.json"
    mechanism_states: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    effective_path: str = "effective.json"
    effective_version: str | None = None
    effective_values: Mapping[str, Any] = field(default_factory=dict)
    effective_sources: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    effective_error: str | None = None
    presets: Mapping[str, Any] = field(default_factory=dict)  # default of each overridden knob
    owners: Mapping[str, str] = field(default_factory=dict)  # owner of each overridden knob
    ledger: LedgerProbe
    ledger_stale_after: timedelta = timedelta(hours=6)
    reconcile_clean_within: timedelta = timedelta(days=7)
    schedules: Mapping[str, Schedule] = field(default_factory=lambda: SCHEDULES)
    # the shared state (AUTOLEARN_STATE_URL): where it is, what each host's workers serve, and
    # when the current version became current; None: this host's state dir alone
    shared_source: str | None = None
    shared_error: str | None = None  # the shared state's server did not answer: the replica's
    served: Sequence[ServedVersion] = ()
    effective_updated_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRef:
    """One history record, by its run id."""

    at: datetime
    run_id: str
    mechanism: str
    decision: str
    reasons: tuple[str, ...] = ()
    applied: bool = False

    @property
    def source(self) -> str:
        return f"history.jsonl run_id={self.run_id}"

    def to_json(self) -> dict[str, Any]:
        return {
            "at": format_utc(self.at),
            "run_id": self.run_id,
            "mechanism": self.mechanism,
            "decision": self.decision,
            "reasons": list(self.reasons),
            "applied": self.applied,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class KnobDiff:
    knob: str
    owner: str
    preset: Any
    runtime: Any
    source: str

    def to_json(self) -> dict[str, Any]:
        return {
            "knob": self.knob,
            "owner": self.owner,
            "preset": self.preset,
            "runtime": self.runtime,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockedPocket:
    pocket: str
    strategy: str | None
    reason: str
    until: str | None
    expired: bool
    source: str

    def to_json(self) -> dict[str, Any]:
        return {
            "pocket": self.pocket,
            "strategy": self.strategy,
            "reason": self.reason,
            "until": self.until,
            "expired": self.expired,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerStatus:
    source: str
    last_close_at: datetime | None
    age: timedelta | None
    stale_after: timedelta
    trades: int | None
    error: str | None

    @property
    def problem(self) -> str | None:
        if self.error:
            return f"ledger unreadable ({self.source}): {self.error}"
        if self.last_close_at is None or self.age is None:
            return f"ledger has no closed trade ({self.source})"
        if self.age > self.stale_after:
            return (
                f"ledger stale: last close {format_utc(self.last_close_at)} is "
                f"{_human(self.age)} old > {_human(self.stale_after)} ({self.source}); "
                "is the bot's trade writer / `autolearn ingest` running? (weekends: market closed)"
            )
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "last_close_at": format_utc(self.last_close_at) if self.last_close_at else None,
            "age_s": self.age.total_seconds() if self.age is not None else None,
            "stale_after_s": self.stale_after.total_seconds(),
            "trades": self.trades,
            "error": self.error,
            "problem": self.problem,
        }


class ReconcileState(StrEnum):
    NOT_CONFIGURED = "not_configured"  # never run: not checked, never degraded
    NEVER_CLEAN = "never_clean"
    CLEAN = "clean"
    STALE = "stale"  # the last clean run is older than the window
    MISMATCH = "mismatch"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileStatus:
    """The broker-vs-ledger check: when it last ran clean, or what it last found."""

    state: ReconcileState
    text: str
    source: str
    clean_within: timedelta
    last_run: RunRef | None = None
    last_clean_at: datetime | None = None
    findings: int | None = None
    problem: str | None = None

    @property
    def configured(self) -> bool:
        return self.state is not ReconcileState.NOT_CONFIGURED

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "configured": self.configured,
            "text": self.text,
            "source": self.source,
            "clean_within_s": self.clean_within.total_seconds(),
            "last_run": self.last_run.to_json() if self.last_run else None,
            "last_clean_at": format_utc(self.last_clean_at) if self.last_clean_at else None,
            "findings": self.findings,
            "problem": self.problem,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class MechanismStatus:
    mechanism: str
    cadence: timedelta
    enabled: bool
    enabled_source: str
    mode: Mode
    mode_source: str
    health: Health
    health_detail: str
    last_run: RunRef | None
    last_apply: RunRef | None
    in_flight: str | None
    verdicts: tuple[str, ...]
    progress_source: str | None
    lkg: str | None
    lkg_source: str | None
    rollbacks_24h: tuple[RunRef, ...]
    changed_knobs: tuple[KnobDiff, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "mechanism": self.mechanism,
            "cadence_s": self.cadence.total_seconds(),
            "enabled": self.enabled,
            "enabled_source": self.enabled_source,
            "mode": self.mode.value,
            "mode_source": self.mode_source,
            "health": self.health.value,
            "health_detail": self.health_detail,
            "last_run": self.last_run.to_json() if self.last_run else None,
            "last_apply": self.last_apply.to_json() if self.last_apply else None,
            "in_flight": self.in_flight,
            "verdicts": list(self.verdicts),
            "progress_source": self.progress_source,
            "lkg": self.lkg,
            "lkg_source": self.lkg_source,
            "rollbacks_24h": [r.to_json() for r in self.rollbacks_24h],
            "changed_knobs": [d.to_json() for d in self.changed_knobs],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusReport:
    now: datetime
    mechanisms: tuple[MechanismStatus, ...]
    operator_rollbacks_24h: tuple[RunRef, ...]
    diff: tuple[KnobDiff, ...]
    blocked: tuple[BlockedPocket, ...]
    ledger: LedgerStatus
    effective_version: str | None
    effective_source: str
    history_source: str
    history_records: int
    problems: tuple[str, ...]
    exit_code: int
    reconcile: ReconcileStatus | None = None
    shared_source: str | None = None
    hosts: tuple[HostStatus, ...] = ()

    @property
    def overall(self) -> str:
        return {0: "healthy", 1: "degraded", 2: "stopped"}[self.exit_code]

    def mechanism(self, name: str) -> MechanismStatus:
        return next(m for m in self.mechanisms if m.mechanism == name)

    @property
    def switches(self) -> tuple[str, ...]:
        """What an operator must see first: every FROZEN or DISABLED mechanism and every
        BLOCKED scope, with its reason and expiry (a mechanism never enabled is not listed)."""
        out = [
            f"FROZEN {m.mechanism}: {m.mode_source}"
            for m in self.mechanisms
            if m.mode is Mode.FROZEN
        ]
        out += [
            f"DISABLED {m.mechanism}: {m.enabled_source}"
            for m in self.mechanisms
            if not m.enabled and "never enabled" not in m.enabled_source
        ]
        out += [
            f"BLOCKED {b.pocket if b.strategy is None else f'{b.pocket}/{b.strategy}'} "
            f"until {b.until or '-'}: {b.reason}"
            for b in self.blocked
            if not b.expired
        ]
        return tuple(out)

    def to_json(self) -> dict[str, Any]:
        return {
            "now": format_utc(self.now),
            "overall": self.overall,
            "exit_code": self.exit_code,
            "problems": list(self.problems),
            "switches": list(self.switches),
            "mechanisms": [m.to_json() for m in self.mechanisms],
            "operator_rollbacks_24h": [r.to_json() for r in self.operator_rollbacks_24h],
            "diff": [d.to_json() for d in self.diff],
            "blocked": [b.to_json() for b in self.blocked],
            "ledger": self.ledger.to_json(),
            "effective": {"version": self.effective_version, "source": self.effective_source},
            "history": {"source": self.history_source, "records": self.history_records},
            "reconcile": self.reconcile.to_json() if self.reconcile else None,
            "shared_state": (
                {"source": self.shared_source, "hosts": [h.to_json() for h in self.hosts]}
                if self.shared_source is not None
                else None
            ),
        }


# -- helpers used by status and metrics ---------------------------------------------------------
def record_time(record: Mapping[str, Any]) -> datetime | None:
    """The ``at`` of a JSON object (UTC-aware), or ``None`` when missing or malformed."""
    try:
        return parse_utc(str(record.get("at", "")))
    except TimestampError:
        return None


def _ref(record: RunRecord, at: datetime) -> RunRef:
    return RunRef(
        at=at,
        run_id=record.run_id or f"<no run_id at {format_utc(at)}>",
        mechanism=record.mechanism,
        decision=record.decision,
        reasons=record.reasons,
        applied=record.applied,
    )


def _human(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if abs(seconds) < 120:
        return f"{seconds}s"
    if abs(seconds) < 7200:
        return f"{seconds // 60}m"
    if abs(seconds) < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


# -- per mechanism ------------------------------------------------------------------------------
def _timed(records: Iterable[RunRecord]) -> list[tuple[datetime, RunRecord]]:
    out = [(r.at, r) for r in records if r.at is not None]
    out.sort(key=lambda pair: pair[0])
    return out


def _health(
    enabled: bool,
    enabled_at: datetime | None,
    last_run: RunRef | None,
    cadence: timedelta,
    now: datetime,
) -> tuple[Health, str]:
    if not enabled:
        ran = f"; last run {_human(now - last_run.at)} ago" if last_run else ""
        return Health.DISABLED, f"not enabled{ran}"
    anchors = [t for t in (enabled_at, last_run.at if last_run else None) if t is not None]
    if not anchors:
        return Health.STOPPED, "enabled but never run (and no enabling time recorded)"
    age = now - max(anchors)
    what = f"last run {_human(age)} ago" if last_run else f"enabled {_human(age)} ago, no run yet"
    detail = f"{what} (cadence {_human(cadence)})"
    if age > cadence * _STOPPED_AFTER:
        return Health.STOPPED, f"{detail}: more than {_STOPPED_AFTER:g} cadences without a run"
    if age > cadence * _LATE_AFTER:
        return Health.LATE, f"{detail}: more than {_LATE_AFTER:g} cadences"
    return (Health.OK if last_run else Health.PENDING), detail


def _mode(
    name: str,
    control: Mapping[str, Any],
    last_run: RunRecord | None,
    state: Mapping[str, Any],
    control_path: str,
) -> tuple[Mode, str]:
    if control.get("frozen"):
        reason = control.get("reason", "")
        return Mode.FROZEN, f"{control_path}: frozen at {control.get('at')}: {reason}"
    if last_run is not None and last_run.mode == Mode.SHADOW.value:
        return Mode.SHADOW, f"history.jsonl run_id={last_run.run_id}"
    if state.get("mode") == Mode.SHADOW.value:
        return Mode.SHADOW, f"mechanisms/{name}.json mode"
    if last_run is not None:
        return Mode.LIVE, f"history.jsonl run_id={last_run.run_id}"
    return Mode.LIVE, "default (no run recorded yet)"


def _verdict_text(name: str, verdict: VerdictRecord | object) -> str:
    if not isinstance(verdict, VerdictRecord):
        return f"{name}: {verdict}"
    extra = verdict.extra
    outcome = verdict.outcome or extra.get("verdict") or extra.get("status") or "?"
    text = f"{name}: {outcome}"
    needed = verdict.trades_needed
    if outcome == "inconclusive" and needed is not None and needed > 0:
        text += f": ~{needed} more trades"
    if verdict.n_candidate is not None:
        mode = extra.get("baseline_mode")
        share = extra.get("share")
        how = ""
        if mode == "concurrent" and isinstance(share, int | float):
            how = f", concurrent arms {share:.0%}"
        elif mode:
            how = f", {mode}"
        text += f" (n={verdict.n_candidate} vs LKG {verdict.n_baseline}{how})"
    if verdict.reason:
        text += f" - {verdict.reason}"
    return text


def _progress(
    runs: Sequence[tuple[datetime, RunRecord]],
) -> tuple[str | None, tuple[str, ...], str | None]:
    """In-flight change and verdicts from the latest record that reports them."""
    for _, record in reversed(runs):
        if not record.has("in_flight") and not record.has("verdicts"):
            continue
        flight = record.in_flight
        text = None
        if flight:
            text = ", ".join(f"{k}={v}" for k, v in sorted(flight.items()))
        lines: tuple[str, ...]
        if isinstance(record.verdicts, VerdictRecord):
            lines = (_verdict_text("verdict", record.verdicts),)
        else:
            entries: dict[str, object] = {**record.verdicts, **record.other_verdicts}
            lines = tuple(_verdict_text(k, entries[k]) for k in sorted(entries))
        return text, lines, f"history.jsonl run_id={record.run_id}"
    return None, (), None


def _lkg(name: str, state: Mapping[str, Any]) -> tuple[str | None, str | None]:
    lkg = state.get("lkg")
    if lkg is None:
        return None, None
    if isinstance(lkg, Mapping):
        lkg = lkg.get("version", lkg)
    return str(lkg), f"mechanisms/{name}.json lkg"


def enabled_state(
    name: str,
    control: Mapping[str, Any],
    records: Sequence[RunRecord | Mapping[str, Any]],
    control_path: str = "control.json",
) -> tuple[bool, datetime | None, str]:
    """Whether the operator enabled ``name``: the control flag, else the last enable record.

    The history fallback matters: a writer that replaces the control entry (a freeze written
    without merging) must not silently turn an enabled mechanism into a disabled one. A
    record that does not parse is skipped (``build_status`` reports it).
    """
    if "enabled" in control:
        enabled = bool(control.get("enabled"))
        verb = "enabled" if enabled else "disabled"
        return (
            enabled,
            record_time({"at": control.get("enabled_at", "")}),
            f"{control_path}: {verb} at {control.get('enabled_at')}: "
            f"{control.get('enabled_reason', '')}",
        )
    runs, _ = parse_runs(records)
    switches = [
        (at, r)
        for at, r in _timed(r for r in runs if r.mechanism == name)
        if r.decision in ("operator_enable", "operator_disable")
    ]
    if switches:
        at, record = switches[-1]
        enabled = record.decision == "operator_enable"
        reasons = ", ".join(record.reasons)
        return enabled, at, f"history.jsonl run_id={record.run_id}: {reasons}"
    return False, None, f"{control_path}: never enabled (`autolearn systemd enable {name}`)"


def _mechanism(
    name: str,
    inputs: StatusInputs,
    records: Sequence[RunRecord],
    diff: Sequence[KnobDiff],
    now: datetime,
) -> MechanismStatus:
    schedule = inputs.schedules[name]
    control = inputs.control.get("mechanisms", {}).get(name, {}) or {}
    state = inputs.mechanism_states.get(name, {}) or {}
    mine = _timed(r for r in records if r.mechanism == name)
    runs = [(at, r) for at, r in mine if is_run(r)]
    last_run = _ref(runs[-1][1], runs[-1][0]) if runs else None
    applies = [(at, r) for at, r in runs if r.applied]
    last_apply = _ref(applies[-1][1], applies[-1][0]) if applies else None
    enabled, enabled_at, enabled_source = enabled_state(name, control, records, inputs.control_path)
    health, detail = _health(enabled, enabled_at, last_run, schedule.cadence, now)
    mode, mode_source = _mode(
        name, control, runs[-1][1] if runs else None, state, inputs.control_path
    )
    in_flight, verdicts, progress_source = _progress(runs)
    lkg, lkg_source = _lkg(name, state)
    rollbacks = tuple(
        _ref(r, at) for at, r in runs if r.decision == "rollback" and now - at <= _ROLLBACK_WINDOW
    )
    return MechanismStatus(
        mechanism=name,
        cadence=schedule.cadence,
        enabled=enabled,
        enabled_source=enabled_source,
        mode=mode,
        mode_source=mode_source,
        health=health,
        health_detail=detail,
        last_run=last_run,
        last_apply=last_apply,
        in_flight=in_flight,
        verdicts=verdicts,
        progress_source=progress_source,
        lkg=lkg,
        lkg_source=lkg_source,
        rollbacks_24h=rollbacks,
        changed_knobs=tuple(d for d in diff if d.owner == name),
    )


# -- reconcile ----------------------------------------------------------------------------------
_RECONCILE = "reconcile"
_VERDICTS = ("clean", "mismatch")


def reconcile_status(
    records: Sequence[RunRecord | Mapping[str, Any]],
    state: Mapping[str, Any],
    now: datetime,
    clean_within: timedelta = timedelta(days=7),
) -> ReconcileStatus:
    """When reconcile last ran clean, or its last mismatch; a problem only once configured."""
    runs, _ = parse_runs(records)  # one that does not parse is skipped (build_status reports it)
    mine = _timed(r for r in runs if r.mechanism == _RECONCILE)
    verdicts = [(at, r) for at, r in mine if r.decision in _VERDICTS]
    state_path = f"mechanisms/{_RECONCILE}.json"
    if not mine and not state:
        return ReconcileStatus(
            state=ReconcileState.NOT_CONFIGURED,
            text="never run (not configured: `autolearn reconcile --account ID`); not checked",
            source=f"history.jsonl (no reconcile record); {state_path} absent",
            clean_within=clean_within,
        )
    cleans = [at for at, r in verdicts if r.decision == "clean"]
    from_state = record_time({"at": state.get("last_clean_at", "")})
    last_clean = max([*cleans, *([from_state] if from_state else [])], default=None)
    last = _ref(verdicts[-1][1], verdicts[-1][0]) if verdicts else None
    attempt = ""
    if mine and (last is None or mine[-1][0] > last.at):
        at, record = mine[-1]
        attempt = f"; last attempt {_human(now - at)} ago: {record.decision}"
    source = last.source if last else f"{state_path} last_clean_at"
    window = _human(clean_within)
    if last is not None and last.decision == "mismatch":
        findings = verdicts[-1][1].extra.get("findings_total")
        count = findings if isinstance(findings, int) else None
        text = f"mismatch: {count if count is not None else '?'} findings at {format_utc(last.at)}"
        return ReconcileStatus(
            state=ReconcileState.MISMATCH,
            text=text + attempt,
            source=source,
            clean_within=clean_within,
            last_run=last,
            last_clean_at=last_clean,
            findings=count,
            problem=f"reconcile {text} ({source}): the ledger disagrees with the broker; "
            "`autolearn reconcile` lists them, `autolearn reconcile --repair` fetches the "
            "missing and differing trades by id and checks again",
        )
    if last_clean is None:
        return ReconcileStatus(
            state=ReconcileState.NEVER_CLEAN,
            text=f"never ran clean{attempt}",
            source=f"history.jsonl; {state_path}",
            clean_within=clean_within,
            last_run=last,
            problem=f"reconcile configured but never ran clean{attempt} (history.jsonl)",
        )
    age = now - last_clean
    text = f"last clean {_human(age)} ago{attempt}"
    stale = age > clean_within
    return ReconcileStatus(
        state=ReconcileState.STALE if stale else ReconcileState.CLEAN,
        text=text,
        source=source,
        clean_within=clean_within,
        last_run=last,
        last_clean_at=last_clean,
        findings=0 if last is not None else None,
        problem=(f"reconcile: no clean run within {window} ({text}; {source})" if stale else None),
    )


# -- whole report -------------------------------------------------------------------------------
def _diff(inputs: StatusInputs) -> tuple[KnobDiff, ...]:
    out = []
    for knob, value in sorted(inputs.effective_values.items()):
        preset = inputs.presets.get(knob)
        if value == preset and type(value) is type(preset):
            continue
        src = inputs.effective_sources.get(knob, {})
        out.append(
            KnobDiff(
                knob=knob,
                owner=inputs.owners.get(knob, "?"),
                preset=preset,
                runtime=value,
                source=(
                    f"{inputs.effective_path} version {inputs.effective_version}: "
                    f"{src.get('writer', '?')}/{src.get('kind', '?')} at {src.get('at', '?')}"
                ),
            )
        )
    return tuple(out)


def _block_details(
    pocket: str, strategy: str | None, policy_state: Mapping[str, Any]
) -> Mapping[str, Any]:
    """The policy state's entry for a blocked pocket/strategy, whatever nesting it uses."""
    scopes = policy_state.get("scopes")
    if isinstance(scopes, Mapping):  # what the policy cycle writes: "<pocket>[/<strategy>]"
        entry = scopes.get(pocket if strategy is None else f"{pocket}/{strategy}")
        if isinstance(entry, Mapping):
            return entry
    pockets = policy_state.get("pockets")
    if not isinstance(pockets, Mapping):
        return {}
    candidates: list[object] = []
    entry = pockets.get(pocket)
    if strategy is None:
        candidates.append(entry)
    else:
        if isinstance(entry, Mapping) and isinstance(entry.get("strategies"), Mapping):
            candidates.append(entry["strategies"].get(strategy))
        candidates += [pockets.get(f"{pocket}.{strategy}"), pockets.get(f"{pocket}/{strategy}")]
    return next((c for c in candidates if isinstance(c, Mapping)), {})


def _strategy_name(key: str | None) -> str | None:
    """The strategy a knob's key stands for (``Micro%2DVWAP`` -> ``Micro-VWAP``)."""
    if key is None:
        return None
    try:
        return strategy_from_key(key)
    except ValueError:
        return key  # not written by the policy (hand-edited): shown as it stands


def _blocked(
    inputs: StatusInputs, records: Sequence[RunRecord], now: datetime
) -> tuple[BlockedPocket, ...]:
    policy_state = inputs.mechanism_states.get("policy", {}) or {}
    timed = _timed(records)
    out = []
    for knob, value in sorted(inputs.effective_values.items()):
        match = _BLOCK_KNOB.match(knob)
        if match is None or value is not False:
            continue
        pocket, strategy = match.group("pocket"), _strategy_name(match.group("strategy"))
        details = _block_details(pocket, strategy, policy_state)
        blocking = next(
            (
                (at, r)
                for at, r in reversed(timed)
                if r.applied and any(d.knob == knob and d.after is False for d in r.diff)
            ),
            None,
        )
        sources = [f"{inputs.effective_path} {knob}=false"]
        reason = str(details.get("reason") or "")
        if blocking is not None:
            ref = _ref(blocking[1], blocking[0])
            sources.append(ref.source)
            reason = reason or "; ".join(ref.reasons)
        if details:
            sources.append("mechanisms/policy.json")
        until_raw = details.get("until") or details.get("blocked_until")
        until_at = record_time({"at": until_raw}) if until_raw else None
        out.append(
            BlockedPocket(
                pocket=pocket,
                strategy=strategy,
                reason=reason or "unknown (no policy state, no recorded reason)",
                until=format_utc(until_at) if until_at else (str(until_raw) if until_raw else None),
                expired=until_at is not None and until_at <= now,
                source="; ".join(sources),
            )
        )
    return tuple(out)


def _malformed_problem(inputs: StatusInputs, unparsed: Sequence[tuple[int, str]]) -> str | None:
    found = [f"line {line}: {why}" for line, why in inputs.history_malformed]
    found += [f"record #{index + 1}: {why}" for index, why in unparsed]
    if not found:
        return None
    shown = "; ".join(found[:_MALFORMED_SHOWN])
    more = f"; +{len(found) - _MALFORMED_SHOWN} more" if len(found) > _MALFORMED_SHOWN else ""
    return f"{inputs.history_path}: {len(found)} malformed records skipped ({shown}{more})"


def build_status(inputs: StatusInputs, now: datetime) -> StatusReport:
    """The status of every scheduled mechanism, the blocks, the ledger and the exit code."""
    records, unparsed = parse_runs(inputs.records)
    diff = _diff(inputs)
    mechanisms = tuple(_mechanism(m, inputs, records, diff, now) for m in inputs.schedules)
    age = now - inputs.ledger.last_close_at if inputs.ledger.last_close_at else None
    ledger = LedgerStatus(
        source=inputs.ledger.source,
        last_close_at=inputs.ledger.last_close_at,
        age=age,
        stale_after=inputs.ledger_stale_after,
        trades=inputs.ledger.trades,
        error=inputs.ledger.error,
    )
    problems: list[str] = []
    stopped = False
    for m in mechanisms:
        if m.health is Health.STOPPED:
            stopped = True
            problems.append(f"{m.mechanism} STOPPED: {m.health_detail}")
        elif m.health is Health.LATE:
            problems.append(f"{m.mechanism} LATE: {m.health_detail}")
    if inputs.effective_error:
        problems.append(
            f"runtime state unreadable ({inputs.effective_path}): {inputs.effective_error}; "
            "workers run degraded on their last good version"
        )
    if ledger.problem:
        problems.append(ledger.problem)
    if inputs.history_torn:
        problems.append(f"{inputs.history_path}: torn last line (a crash mid-append), skipped")
    if inputs.history_corrupt_lines:
        lines = ", ".join(map(str, inputs.history_corrupt_lines))
        problems.append(f"{inputs.history_path}: corrupt lines {lines}")
    malformed = _malformed_problem(inputs, unparsed)
    if malformed:
        problems.append(malformed)
    problems += inputs.history_problems
    reconcile = reconcile_status(
        records,
        inputs.mechanism_states.get(_RECONCILE, {}) or {},
        now,
        inputs.reconcile_clean_within,
    )
    if reconcile.problem:
        problems.append(reconcile.problem)
    # the QuantRabbit compat exports: a failed or stale export file degrades the run
    problems += compat_problems(
        inputs.mechanism_states.get("compat", {}) or {}, inputs.effective_version
    )
    hosts: tuple[HostStatus, ...] = ()
    if inputs.shared_error is not None:
        problems.append(
            f"shared state unreachable ({inputs.shared_error}); this report is this host's "
            "replica, and workers serve their last good version"
        )
    elif inputs.shared_source is not None:
        hosts = compare_hosts(
            inputs.served, inputs.effective_version, inputs.effective_updated_at, now
        )
        problems += [h.problem for h in hosts if h.problem]
    operator_rollbacks = tuple(
        _ref(r, at)
        for at, r in _timed(records)
        if r.mechanism == "operator" and r.decision == "rollback" and now - at <= _ROLLBACK_WINDOW
    )
    return StatusReport(
        now=now,
        mechanisms=mechanisms,
        operator_rollbacks_24h=operator_rollbacks,
        diff=diff,
        blocked=_blocked(inputs, records, now),
        ledger=ledger,
        effective_version=inputs.effective_version,
        effective_source=inputs.effective_path,
        history_source=inputs.history_path,
        history_records=len(records) if inputs.history_records is None else inputs.history_records,
        problems=tuple(problems),
        exit_code=2 if stopped else (1 if problems else 0),
        reconcile=reconcile,
        shared_source=inputs.shared_source,
        hosts=hosts,
    )
