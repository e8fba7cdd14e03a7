"""Operations commands: systemd units, status, doctor, deploy-check, metrics.

Thin shell: each command gathers inputs (state store, history, git, systemctl, ledger, clock),
calls the pure ``autolearn.ops`` functions and prints the result. Exit codes: ``status`` 0
healthy / 1 degraded / 2 stopped; ``doctor`` and ``deploy-check`` the worst finding's severity
(0 ok/info, 1 warning, 2 error).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from autolearn.adapters.atomic import atomic_write_bytes
from autolearn.adapters.gitguard import ensure_untracked
from autolearn.adapters.logs import emit_json, redact
from autolearn.adapters.state import StateStore
from autolearn.cli._common import (
    acted_on,
    actor,
    app,
    console,
    history_policy,
    intend_exit,
    operator_store,
    run_locks,
    settings,
    store,
    utcnow,
)
from autolearn.cli._config import gather_config_facts
from autolearn.core.ownership_doc import ownership_problems
from autolearn.core.registry import parse_duration
from autolearn.core.run_record import RunRecord
from autolearn.core.timestamps import TimestampError, format_utc, parse_utc
from autolearn.errors import InputError, StateError, StateUnavailable, UsageError
from autolearn.ops import install as installer
from autolearn.ops import probes
from autolearn.ops.deploy import evaluate_deploy
from autolearn.ops.doctor import (
    check_configs,
    check_git_clean,
    check_history,
    check_ledger,
    check_reconcile,
    check_registry,
    check_runtime_path,
    check_signals,
    check_timers,
)
from autolearn.ops.findings import Finding, Severity, exit_code
from autolearn.ops.schedules import SCHEDULES, unit_base
from autolearn.ops.status import (
    STATUS_WINDOW,
    Health,
    MechanismStatus,
    StatusInputs,
    StatusReport,
    build_status,
    enabled_state,
    reconcile_status,
)
from autolearn.ops.systemd import UnitOptions, render_units, systemd_span
from autolearn.ops.wrap import wrap_segments
from autolearn.settings import Settings

__all__: list[str] = []

systemd_app = typer.Typer(
    help="Render, install and switch the systemd timers of the mechanisms.",
    no_args_is_help=True,
)
app.add_typer(systemd_app, name="systemd")

_MECHS = ", ".join(SCHEDULES)
_UserOpt = Annotated[bool, typer.Option("--user", help="User units (~/.config/systemd/user)")]
_MechOpt = Annotated[
    list[str] | None,
    typer.Option("--mechanism", "-m", metavar="MECHANISM", help=f"Only these ({_MECHS})"),
]
_ExeOpt = Annotated[
    Path | None, typer.Option(help="autolearn executable in the units (default: this one)")
]
_RunAsOpt = Annotated[
    str | None,
    typer.Option(metavar="USER", help="User= of system units (default: the current user)"),
]
_NowOpt = Annotated[
    str | None,
    typer.Option(
        "--now", metavar="UTC_TIME", help="Evaluate at this UTC time (tests, post-mortems)"
    ),
]
_StaleOpt = Annotated[
    str, typer.Option(metavar="DURATION", help="Ledger older than this is stale (e.g. 6h)")
]
_ReconcileOpt = Annotated[
    str,
    typer.Option(
        metavar="DURATION",
        help="Degraded when reconcile (once run) has no clean run within this (e.g. 7d)",
    ),
]


# -- small shared pieces ------------------------------------------------------------------------
def _run_id(now: datetime) -> str:
    return f"{format_utc(now)}-{os.getpid()}"


def _now(text: str | None) -> datetime:
    if text is None:
        return utcnow()
    try:
        return parse_utc(text)
    except TimestampError as exc:
        raise InputError(f"--now: {exc} (e.g. 2025-10-23T03:00:00Z)") from exc


def _duration(option: str, text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InputError(f"{option}: {exc}") from exc


def _mechanisms(chosen: list[str] | None) -> list[str]:
    wanted = list(chosen or SCHEDULES)
    unknown = [m for m in wanted if m not in SCHEDULES]
    if unknown:
        raise InputError(f"unknown mechanism(s) {', '.join(unknown)} (known: {_MECHS})")
    return wanted


def _control_entry(state: StateStore, mechanism: str) -> dict[str, Any]:
    return dict(state.read_control().get("mechanisms", {}).get(mechanism, {}) or {})


def _is_enabled(state: StateStore, mechanism: str) -> bool:
    records = state.history.read_runs().runs
    return enabled_state(mechanism, _control_entry(state, mechanism), records)[0]


def _executable(explicit: Path | None) -> PurePosixPath:
    if explicit is not None:
        return PurePosixPath(explicit.resolve())
    beside = Path(sys.executable).parent / "autolearn"  # the venv's console script
    return PurePosixPath(beside if beside.exists() else Path(sys.argv[0]).resolve())


def _unit_options(user: bool, executable: Path | None, run_as: str | None) -> UnitOptions:
    current = settings()
    url = current.ledger_url
    if redact(url) != url:
        # a password must not land in a world-readable unit file: it stays in the env file
        console.print(
            "[yellow]note: the ledger URL holds a password; set AUTOLEARN_LEDGER_URL in "
            "/etc/autolearn.env (mode 0600) instead of the unit[/yellow]"
        )
        url_or_none: str | None = None
    else:
        url_or_none = url
    return UnitOptions(
        bot_root=PurePosixPath(current.bot_root),
        state_dir=PurePosixPath(current.state_dir),
        executable=_executable(executable),
        ledger_url=url_or_none,
        user_mode=user,
        run_as=None if user else (run_as or getpass.getuser()),
    )


# -- systemd ------------------------------------------------------------------------------------
@systemd_app.command("render")
def systemd_render(
    user: _UserOpt = False,
    mechanism: _MechOpt = None,
    out: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR", help="Write the units here, outside any git checkout (else print)"
        ),
    ] = None,
    executable: _ExeOpt = None,
    run_as: _RunAsOpt = None,
) -> None:
    """Print (or write to --out) one oneshot service and one timer per mechanism."""
    units = render_units(_unit_options(user, executable, run_as), _mechanisms(mechanism))
    if out is not None:
        installer.ensure_outside_checkout(out)
    if out is None:
        for name, text in units.items():
            typer.echo(f"# ---- {name} ----")
            typer.echo(text)
        return
    for path in installer.write_units(units, out):
        typer.echo(str(path))


@systemd_app.command("install")
def systemd_install(
    user: _UserOpt = False,
    mechanism: _MechOpt = None,
    out: Annotated[Path | None, typer.Option(help="Unit directory (default: systemd's)")] = None,
    executable: _ExeOpt = None,
    run_as: _RunAsOpt = None,
    use_systemctl: Annotated[
        bool, typer.Option("--systemctl/--no-systemctl", help="daemon-reload and start timers")
    ] = True,
) -> None:
    """Write the units, reload systemd and start the timers of the enabled mechanisms."""
    wanted = _mechanisms(mechanism)
    units = render_units(_unit_options(user, executable, run_as), wanted)
    if out is not None:
        installer.ensure_outside_checkout(out)
    directory = out or installer.unit_dir(user)
    written = installer.write_units(units, directory)
    state = store()
    enabled = [m for m in wanted if _is_enabled(state, m)]
    started: list[str] = []
    if use_systemctl:
        installer.systemctl(["daemon-reload"], user_mode=user)
        for m in enabled:
            installer.systemctl(["enable", "--now", f"{unit_base(m)}.timer"], user_mode=user)
            started.append(f"{unit_base(m)}.timer")
    now = utcnow()
    state.record(
        {
            "at": format_utc(now),
            "mechanism": "operator",
            "decision": "systemd_install",
            "run_id": _run_id(now),
            "reasons": [f"operator: installed {len(written)} units in {directory}"],
            "units": [str(p) for p in written],
            "started": started,
        }
    )
    emit_json({"installed": [str(p) for p in written], "started": started})
    if user and use_systemctl:
        console.print(
            "note: user timers stop when you log out unless the user lingers: "
            "`sudo loginctl enable-linger $USER`"
        )
    idle = [m for m in wanted if m not in enabled]
    if idle:
        console.print(
            f"not started (not enabled): {', '.join(idle)}; start one with "
            "`autolearn systemd enable MECHANISM --reason ...`"
        )


@systemd_app.command("uninstall")
def systemd_uninstall(
    user: _UserOpt = False,
    mechanism: _MechOpt = None,
    out: Annotated[Path | None, typer.Option(help="Unit directory (default: systemd's)")] = None,
    use_systemctl: Annotated[
        bool, typer.Option("--systemctl/--no-systemctl", help="stop timers and daemon-reload")
    ] = True,
) -> None:
    """Stop the timers and remove the units autolearn generated (never a foreign file)."""
    wanted = _mechanisms(mechanism)
    directory = out or installer.unit_dir(user)
    if use_systemctl:
        for m in wanted:
            if (directory / f"{unit_base(m)}.timer").exists():
                installer.systemctl(["disable", "--now", f"{unit_base(m)}.timer"], user_mode=user)
    names = [f"{unit_base(m)}.{kind}" for m in wanted for kind in ("timer", "service")]
    removed = installer.remove_units(names, directory)
    if use_systemctl:
        installer.systemctl(["daemon-reload"], user_mode=user)
    now = utcnow()
    store().record(
        {
            "at": format_utc(now),
            "mechanism": "operator",
            "decision": "systemd_uninstall",
            "run_id": _run_id(now),
            "reasons": [f"operator: removed {len(removed)} units from {directory}"],
        }
    )
    emit_json({"removed": [str(p) for p in removed]})


def _switch(mechanism: str, enabled: bool, reason: str, user: bool, use_systemctl: bool) -> None:
    _mechanisms([mechanism])
    state = operator_store()
    now = utcnow()
    timer = f"{unit_base(mechanism)}.timer"
    installed = (installer.unit_dir(user) / timer).exists()
    if use_systemctl and installed:
        verb = "enable" if enabled else "disable"
        installer.systemctl([verb, "--now", timer], user_mode=user)
    # set_control replaces the mechanism's entry: keep its freeze switch
    entry = _control_entry(state, mechanism)
    entry.update({"enabled": enabled, "enabled_at": format_utc(now), "enabled_reason": reason})
    state.set_control(mechanism, entry)
    state.record(
        {
            "at": format_utc(now),
            "mechanism": mechanism,
            "decision": "operator_enable" if enabled else "operator_disable",
            "reasons": [f"operator: {reason}"],
            "run_id": _run_id(now),
            "timer": timer if installed and use_systemctl else None,
            "actor": actor(),
        }
    )
    acted_on(state.root)
    emit_json(
        {
            "mechanism": mechanism,
            "enabled": enabled,
            "reason": reason,
            "timer_switched": (installed and use_systemctl),
        }
    )
    if not installed:
        console.print(
            f"note: {timer} is not installed in {installer.unit_dir(user)}; "
            "`autolearn systemd install` starts it"
        )


@systemd_app.command("enable")
def systemd_enable(
    mechanism: Annotated[str, typer.Argument(help=_MECHS)],
    reason: Annotated[str, typer.Option(help="Why (recorded)")],
    user: _UserOpt = False,
    use_systemctl: Annotated[
        bool, typer.Option("--systemctl/--no-systemctl", help="also start the installed timer")
    ] = True,
) -> None:
    """Enable a mechanism: recorded, shown in status, and its installed timer started."""
    _switch(mechanism, True, reason, user, use_systemctl)


@systemd_app.command("disable")
def systemd_disable(
    mechanism: Annotated[str, typer.Argument(help=_MECHS)],
    reason: Annotated[str, typer.Option(help="Why (recorded)")],
    user: _UserOpt = False,
    use_systemctl: Annotated[
        bool, typer.Option("--systemctl/--no-systemctl", help="also stop the installed timer")
    ] = True,
) -> None:
    """Disable a mechanism: recorded, its timer stopped; status no longer expects runs."""
    _switch(mechanism, False, reason, user, use_systemctl)


# -- status -------------------------------------------------------------------------------------
def _status_store(current: Settings) -> tuple[StateStore, str | None]:
    """The state ``status`` reads: the shared state, synced; when its server does not answer,
    this host's replica (a state dir like any other) and why, for the report to say so."""
    state = store(sync=False)
    if state.shared is None:
        return state, None
    try:
        state.sync()
        return state, None
    except StateUnavailable as exc:
        return StateStore(current.state_dir, state.registry, history_policy(current)), str(exc)


def _gather_status(
    now: datetime,
    stale_after: timedelta,
    reconcile_within: timedelta = timedelta(days=7),
    *,
    whole_history: bool = False,
) -> tuple[StatusReport, list[RunRecord]]:
    """``whole_history``: every record (metrics count them all); else the window and the
    landmarks only, which give the same report without opening old history segments."""
    current = settings()
    state, shared_error = _status_store(current)
    if whole_history:
        read, total = state.history.read_runs(), None
    else:
        fast = state.history.read_status(now - STATUS_WINDOW)
        read, total = fast.read, fast.total_runs
    effective_error = None
    version: str | None = None
    values: dict[str, Any] = {}
    sources: dict[str, Any] = {}
    updated_at = None
    try:
        effective = state.read_effective()
        version, values, sources = effective.version, effective.values, effective.sources
        updated_at = effective.updated_at
    except StateError as exc:
        effective_error = str(exc)
    served = []
    if state.shared is not None:
        try:
            served = state.shared.hosts()
        except StateUnavailable as exc:
            shared_error = str(exc)
    presets, owners = {}, {}
    for knob in values:
        spec = state.registry.find(knob)
        if spec is not None:
            presets[knob], owners[knob] = spec.default, spec.owner.value
    inputs = StatusInputs(
        records=read.runs,
        history_path=state.history.path.name,  # relative to the state dir (printed once)
        history_records=total,
        history_problems=read.segment_problems,
        history_torn=read.torn_last_line,
        history_corrupt_lines=read.corrupt_lines,
        history_malformed=read.malformed,
        control=state.read_control(),
        control_path=state.control_path.name,
        mechanism_states={m: state.read_mechanism(m) for m in (*SCHEDULES, "reconcile", "compat")},
        effective_path=state.effective_path.name,
        effective_version=version,
        effective_values=values,
        effective_sources=sources,
        effective_error=effective_error,
        presets=presets,
        owners=owners,
        ledger=probes.probe_ledger(current.ledger_url, current.account),
        ledger_stale_after=stale_after,
        reconcile_clean_within=reconcile_within,
        shared_source=shared.describe() if (shared := current.shared_state()) else None,
        shared_error=shared_error,
        served=served,
        effective_updated_at=updated_at,
    )
    return build_status(inputs, now), read.runs


_HEALTH_STYLE = {
    Health.OK: "green",
    Health.PENDING: "cyan",
    Health.LATE: "yellow",
    Health.STOPPED: "bold red",
    Health.DISABLED: "dim",
}


def _cell(text: str, width: int) -> str:
    """Plain text as a table cell wrapped at words and name segments, markup escaped (record
    text may hold ``[...]``); rich then has nothing left to fold mid-token."""
    return escape("\n".join(wrap_segments(text, width)))


_LABEL_WIDTH = 13  # "rollbacks 24h"


def _widths(*shares: float, fixed: int = 0) -> list[int]:
    """Column widths sharing the console: what is left after ``fixed`` columns and the box
    (1 border + 2 padding per column, and the last border)."""
    columns = len(shares) + (1 if fixed else 0)
    free = max(console.width - fixed - 3 * columns - 1, 8 * len(shares))
    return [max(int(free * share), 6) for share in shares]


def _mechanism_table(m: MechanismStatus, now: datetime) -> Table:
    value_w, source_w = _widths(0.58, 0.42, fixed=_LABEL_WIDTH)
    table = Table(
        title=f"{m.mechanism} (every {systemd_span(m.cadence)})",
        show_header=False,
        title_justify="left",
    )
    table.add_column("what", style="bold", no_wrap=True, width=_LABEL_WIDTH)
    table.add_column("value", width=value_w)
    table.add_column("source", style="dim", width=source_w)

    def row(label: str, value: str, source: str) -> None:
        table.add_row(label, _cell(value, value_w), _cell(source, source_w))

    hs = _HEALTH_STYLE[m.health]
    head = m.health.value.upper()
    first, *rest = wrap_segments(f"{head} {m.health_detail}", value_w)
    health = f"[{hs}]{head}[/{hs}]" + escape(first[len(head) :])
    table.add_row("health", "\n".join([health, *(escape(line) for line in rest)]), "")
    row("enabled", "yes" if m.enabled else "no", m.enabled_source)
    row("mode", m.mode.value, m.mode_source)
    for label, ref in (("last run", m.last_run), ("last apply", m.last_apply)):
        if ref is None:
            row(label, "never", "history.jsonl")
        else:
            age = now - ref.at
            row(
                label,
                f"{format_utc(ref.at)[:19]} ({int(age.total_seconds() // 60)} min ago) "
                f"{ref.decision}: {', '.join(ref.reasons) or '-'}",
                ref.source,
            )
    row("in flight", m.in_flight or "none", m.progress_source or "")
    for verdict in m.verdicts:
        row("verdict", verdict, m.progress_source or "")
    row("LKG", m.lkg or "-", m.lkg_source or "")
    row("rollbacks 24h", str(len(m.rollbacks_24h)), "")
    for ref in m.rollbacks_24h:
        row("  rollback", f"{format_utc(ref.at)[:19]} {', '.join(ref.reasons)}", ref.source)
    for d in m.changed_knobs:
        row("  changed", f"{d.knob}: {d.preset} -> {d.runtime}", d.source)
    return table


def _print_shared(report: StatusReport) -> None:
    """The shared state's place and what each host's workers serve (nothing when unshared)."""
    if report.shared_source is None:
        return
    console.print(f"shared state on PostgreSQL {escape(report.shared_source)}")
    for h in report.hosts:
        served = ", ".join(h.versions) or "nothing live"
        line = (
            f"  host {h.host}: {served} ({h.live} live, last seen {format_utc(h.last_seen)[:19]})"
        )
        console.print(f"[bold red]{escape(line)}[/bold red]" if h.problem else escape(line))
    if not report.hosts:
        console.print("  [dim]no worker has reported yet[/dim]")


def _print_status(report: StatusReport) -> None:
    style = {0: "green", 1: "yellow", 2: "bold red"}[report.exit_code]
    console.print(
        f"[{style}]autolearn: {report.overall.upper()}[/{style}]  at {format_utc(report.now)}  "
        f"effective {report.effective_version}  ({report.history_records} history records)"
    )
    for line in report.switches:  # FROZEN / DISABLED / BLOCKED: the headline, not a table row
        console.print(f"[bold yellow]{escape(line)}[/bold yellow]")
    console.print(f"[dim]state dir {settings().state_dir}[/dim]")
    if (locks := run_locks(settings())) is not None:  # one runner per mechanism across hosts
        console.print(f"[dim]run locks on PostgreSQL {escape(locks.describe())}[/dim]")
    _print_shared(report)
    for m in report.mechanisms:
        if m.health is Health.DISABLED and m.last_run is None:
            console.print(f"[dim]{m.mechanism}: disabled, never run ({m.enabled_source})[/dim]")
        else:
            console.print(_mechanism_table(m, report.now))
    for ref in report.operator_rollbacks_24h:
        console.print(
            f"operator rollback {format_utc(ref.at)[:19]}: {', '.join(ref.reasons)} ({ref.source})"
        )
    if report.blocked:
        table = Table(title="blocked (new entries)")
        widths = _widths(0.12, 0.16, 0.30, 0.18, 0.24)
        for column, width in zip(
            ("pocket", "strategy", "reason", "until", "source"), widths, strict=True
        ):
            table.add_column(column, width=width)
        for b in report.blocked:
            until = (b.until or "-") + (" (expired)" if b.expired else "")
            cells = (b.pocket, b.strategy or "*", b.reason, until, b.source)
            table.add_row(*(_cell(c, w) for c, w in zip(cells, widths, strict=True)))
        console.print(table)
    else:
        console.print("blocked: none")
    ledger = report.ledger
    last = format_utc(ledger.last_close_at) if ledger.last_close_at else "never"
    trades = "?" if ledger.trades is None else ledger.trades
    console.print(f"ledger: {trades} trades, last close {last} ({ledger.source})")
    if report.reconcile is not None:
        console.print(f"reconcile: {report.reconcile.text} ({report.reconcile.source})")
    for problem in report.problems:
        console.print(f"[yellow]- {escape(problem)}[/yellow]")  # problems quote record text


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
    now: _NowOpt = None,
    ledger_stale_after: _StaleOpt = "6h",
    reconcile_clean_within: _ReconcileOpt = "7d",
) -> None:
    """Working, stopped or degraded, per mechanism, with the source of every claim.

    Exit code: 0 healthy, 1 degraded, 2 an enabled mechanism stopped.
    """
    report, _ = _gather_status(
        _now(now),
        _duration("--ledger-stale-after", ledger_stale_after),
        _duration("--reconcile-clean-within", reconcile_clean_within),
    )
    intend_exit(report.exit_code)
    if as_json:
        doc = {"state_dir": str(settings().state_dir), **report.to_json()}
        typer.echo(json.dumps(doc, indent=1, default=str))
    else:
        _print_status(report)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


# -- doctor -------------------------------------------------------------------------------------
@app.command()
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
    textfile_dir: Annotated[
        Path | None,
        typer.Option(help="Metrics textfile dir to check (env AUTOLEARN_METRICS_DIR)"),
    ] = None,
    user: _UserOpt = False,
    now: _NowOpt = None,
    ledger_stale_after: _StaleOpt = "6h",
    signals_window: Annotated[
        str, typer.Option(metavar="DURATION", help="Recent trades to check")
    ] = "96h",
    min_signal_share: Annotated[float, typer.Option(help="Least share with the signal")] = 0.7,
    reconcile_clean_within: _ReconcileOpt = "7d",
) -> None:
    """Check the installation and say how to fix each problem (exit 0 ok, 1 warning, 2 error)."""
    current = settings()
    textfile_dir = current.option_path(textfile_dir, "AUTOLEARN_METRICS_DIR")
    at = _now(now)
    findings: list[Finding] = list(check_git_clean(probes.probe_git(current.bot_root)))
    findings.append(
        check_runtime_path(probes.probe_path("state dir", current.state_dir, is_dir=True))
    )
    ledger_file = probes.sqlite_path(current.ledger_url)
    if ledger_file is not None:
        findings.append(
            check_runtime_path(probes.probe_path("ledger file", ledger_file, is_dir=False))
        )
    if textfile_dir is not None:
        findings.append(
            check_runtime_path(probes.probe_path("metrics textfile dir", textfile_dir, is_dir=True))
        )
    state = store()
    timers, why = probes.probe_timers({m: _is_enabled(state, m) for m in SCHEDULES}, user_mode=user)
    findings += check_timers(timers, why)
    probe = probes.probe_ledger(current.ledger_url, current.account)
    findings.append(check_ledger(probe, at, _duration("--ledger-stale-after", ledger_stale_after)))
    if probe.error is None:
        window = _duration("--signals-window", signals_window)
        trades = probes.recent_trades(current.ledger_url, at - window, current.account)
        findings += check_signals(trades, min_share=min_signal_share, window=signals_window)
    findings.append(check_registry(ownership_problems(state.registry), state.registry.source))
    findings.append(check_configs(gather_config_facts()))
    read = state.history.read_runs()
    effective_error = None
    try:
        state.read_effective()
    except StateError as exc:
        effective_error = str(exc)
    # a malformed record is reported beside the corrupt lines: both are skipped by every reader
    findings.append(check_history(read.torn_last_line, read.unreadable_lines, effective_error))
    findings.append(
        check_reconcile(
            reconcile_status(
                read.runs,
                state.read_mechanism("reconcile"),
                at,
                _duration("--reconcile-clean-within", reconcile_clean_within),
            )
        )
    )
    code = exit_code(findings)
    intend_exit(code)
    _print_findings(findings, as_json)
    if code:
        raise typer.Exit(code)


def _print_findings(findings: list[Finding], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([f.to_json() for f in findings], indent=1))
        return
    marks = {
        Severity.OK: "[green]ok[/green]     ",
        Severity.INFO: "[cyan]info[/cyan]   ",
        Severity.WARNING: "[yellow]warning[/yellow]",
        Severity.ERROR: "[bold red]ERROR[/bold red]  ",
    }
    for f in findings:
        # escaped: a finding may quote operator text (a config value such as "[/x]")
        console.print(f"{marks[f.severity]} {f.check}: {escape(f.what)}")
        if f.fix:
            console.print(f"         fix: {escape(f.fix)}")


# -- deploy-check -------------------------------------------------------------------------------
@app.command("deploy-check")
def deploy_check(
    expect: Annotated[str, typer.Option(help="The commit that must be deployed")],
    remote: Annotated[str, typer.Option(help="Remote of the deploy branch")] = "origin",
    branch: Annotated[str, typer.Option(help="Deploy branch")] = "main",
    fetch: Annotated[bool, typer.Option(help="git fetch the remote branch first")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Fail loudly unless HEAD is the expected commit, clean, and fast-forwardable."""
    root = settings().bot_root
    facts = probes.probe_deploy(root, expect, remote=remote, branch=branch, fetch=fetch)
    findings = evaluate_deploy(facts)
    code = exit_code(findings)
    intend_exit(code)
    _print_findings(findings, as_json)
    if code:
        print(f"autolearn: deploy-check FAILED in {root} (see above)", file=sys.stderr)
        raise typer.Exit(code)


# -- metrics ------------------------------------------------------------------------------------
@app.command()
def metrics(
    textfile: Annotated[
        Path | None,
        typer.Option(help="node_exporter textfile dir (env AUTOLEARN_METRICS_DIR; required)"),
    ] = None,
    now: _NowOpt = None,
    ledger_stale_after: _StaleOpt = "6h",
) -> None:
    """Write autolearn.prom (Prometheus text format) atomically into the textfile directory."""
    from autolearn.ops.prometheus import render_metrics  # local: only this command needs it

    textfile = settings().option_path(textfile, "AUTOLEARN_METRICS_DIR")
    if textfile is None:
        raise UsageError("metrics needs --textfile DIR or AUTOLEARN_METRICS_DIR")
    report, records = _gather_status(
        _now(now), _duration("--ledger-stale-after", ledger_stale_after), whole_history=True
    )
    target = textfile / "autolearn.prom"
    ensure_untracked([target])
    # node_exporter runs as its own user and must read it: 0644 is set before the rename, so
    # the collector never finds the file unreadable (a chmod after it left a window).
    atomic_write_bytes(target, render_metrics(report, records).encode(), mode=0o644)
    emit_json({"metrics": str(target), "status": report.overall})
