"""Commands over the knob registry and the runtime state: see, explain, stop and undo."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from autolearn.adapters.logs import emit_json
from autolearn.cli._common import app, console, settings, store, utcnow
from autolearn.core.apply_guard import ApplyKind
from autolearn.core.knobs import KnobType, Owner
from autolearn.core.ownership_doc import ownership_problems, render_ownership_doc
from autolearn.core.record_view import record_row
from autolearn.core.registry import parse_duration
from autolearn.core.timestamps import format_utc
from autolearn.errors import ConfigError, InputError
from autolearn.runtime import Tuning

__all__: list[str] = []

_MECHANISMS = [o.value for o in Owner if o is not Owner.OPERATOR]


@app.command()
def knobs(
    check: Annotated[bool, typer.Option(help="Fail (78) on an inconsistent registry")] = False,
    doc: Annotated[bool, typer.Option(help="Print the knob-ownership Markdown")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Print the knob registry: owner, type, default, bounds, step, pace.

    Wildcard knobs (``pockets.micro.strategies.*.allow_new``: ``*`` is one strategy) are listed
    as their pattern, as the policy writes them for any strategy (``"pattern": true`` in JSON).
    """
    registry = settings().registry()  # parsing already refuses two owners / bad defaults
    listed = [*registry, *(template for _, template in registry.patterns)]
    if check:
        problems = ownership_problems(registry)
        if problems:
            raise ConfigError(f"registry {registry.source} is inconsistent:", problems)
        console.print(f"registry OK: {len(registry)} knobs, one owner each ({registry.source})")
        return
    if doc:
        typer.echo(render_ownership_doc(registry), nl=False)
        return
    if as_json:
        rows = [
            {
                "name": s.name,
                "owner": s.owner.value,
                "type": s.type.value,
                "default": s.default,
                "bounds": [s.lower, s.upper],
                "step": s.step,
                "max_step": s.max_step,
                "min_interval_s": s.min_interval.total_seconds(),
                "max_drift_per_day": s.max_drift_per_day,
                "family": s.family,
                "pattern": "*" in s.name,
            }
            for s in listed
        ]
        typer.echo(json.dumps(rows, indent=1))
        return
    table = Table(title=f"knobs ({registry.source})")
    for column in ("knob", "owner", "type", "default", "bounds", "step/max", "family"):
        table.add_column(column)
    for s in sorted(listed, key=lambda s: (s.owner.value, s.name)):
        bounds = "-" if s.type is KnobType.BOOL else f"[{s.lower:g}, {s.upper:g}]"
        steps = "-" if s.type is KnobType.BOOL else f"{s.step:g}/{s.max_step:g}"
        table.add_row(s.name, s.owner.value, s.type.value, str(s.default), bounds, steps, s.family)
    console.print(table)


@app.command()
def explain(key: Annotated[str, typer.Argument(help="Dotted knob name")]) -> None:
    """Say which layer a value comes from, at which version, written when and by whom."""
    current = settings()
    tuning = Tuning(current.state_dir, current.registry(), bot_root=current.bot_root)
    info = tuning.explain(key)
    typer.echo(
        json.dumps(
            {
                "key": info.key,
                "value": info.value,
                "layer": info.layer,
                "version": info.version,
                "changed_at": info.changed_at,
                "writer": info.writer,
                "degraded": info.degraded,
            },
            indent=1,
        )
    )
    if info.layer == "missing":
        raise typer.Exit(1)


@app.command()
def diff() -> None:
    """The runtime values that differ from the presets (the registry defaults)."""
    state = store()
    effective = state.read_effective()
    rows = [
        {
            "knob": k,
            "preset": state.registry.spec(k).default,
            "runtime": v,
            "writer": effective.sources.get(k, {}).get("writer"),
        }
        for k, v in sorted(effective.values.items())
    ]
    typer.echo(json.dumps({"version": effective.version, "diff": rows}, indent=1))


@app.command()
def history(
    since: Annotated[str, typer.Option(help="Window, e.g. 24h, 90m, 7d")] = "24h",
    mechanism: Annotated[str | None, typer.Option(help="Only this mechanism")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
) -> None:
    """Rebuild the recent changes and their reasons from the history alone."""
    try:
        window = parse_duration(since)
    except ValueError as exc:
        raise InputError(f"--since: {exc}") from exc
    state = store()
    read = state.history.read_runs()
    cutoff = utcnow() - window
    records = [
        r
        for r in read.runs
        if r.at is not None and r.at >= cutoff and (mechanism is None or r.mechanism == mechanism)
    ]
    if as_json:
        for record in records:
            emit_json(record.to_json())
        for line, why in read.malformed:  # stdout stays JSON lines; the note goes to stderr
            typer.echo(f"skipped malformed history line {line}: {why}", err=True)
        return
    table = Table(title=f"history since {format_utc(cutoff)} ({len(records)} records)")
    for column in ("at", "mechanism", "decision", "changes", "verdicts", "reasons"):
        table.add_column(column, overflow="fold")
    for r in records:
        row = record_row(r)
        table.add_row(row.at, row.mechanism, row.decision, row.changes, row.verdicts, row.reasons)
    console.print(table)
    if read.torn_last_line:
        console.print(
            "[yellow]note: the last history line is torn (a crash mid-append); "
            "it was skipped[/yellow]"
        )
    if read.corrupt_lines:
        console.print(f"[red]corrupt history lines: {read.corrupt_lines}[/red]")
    for line, why in read.malformed:
        console.print(f"[red]malformed history line {line} (skipped): {escape(why)}[/red]")


@app.command()
def rollback(
    to: Annotated[str, typer.Option("--to", help="Version id (see `autolearn snapshots`)")],
    reason: Annotated[str, typer.Option(help="Why (recorded)")],
) -> None:
    """Restore any earlier snapshot (an operator action, recorded with its diff)."""
    state = store()
    now = utcnow()
    record = {
        "mechanism": "operator",
        "decision": "rollback",
        "run_id": _run_id(now),
        "reasons": [f"operator: {reason}"],
        "target_version": to,
        "restored_snapshot": True,
    }
    result = state.restore(to, Owner.OPERATOR, now, kind=ApplyKind.OPERATOR, record=record)
    emit_json(
        {
            "decision": "rollback",
            "from": result.version_before,
            "to": result.version_after,
            "diff": result.diff,
            "reason": reason,
        }
    )


@app.command(name="set")
def set_knob(
    knob: Annotated[str, typer.Argument(help="Dotted knob name")],
    value: Annotated[str, typer.Argument(help="New value (JSON: 0.3, 12, true)")],
    reason: Annotated[str, typer.Option(help="Why (recorded)")],
) -> None:
    """Set one knob by hand (an operator action: bounds and grid still apply)."""
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise InputError(f"value {value!r} is not JSON (e.g. 0.3, 12, true)") from exc
    state = store()
    now = utcnow()
    record = {
        "mechanism": "operator",
        "decision": "set",
        "run_id": _run_id(now),
        "reasons": [f"operator: {reason}"],
    }
    result = state.apply(
        Owner.OPERATOR, {knob: parsed}, now, kind=ApplyKind.OPERATOR, record=record
    )
    decision = result.decisions[0]
    emit_json(decision.to_record() | {"version": result.version_after})
    if not decision.adopted and decision.code.value != "no_change":
        raise typer.Exit(65)


@app.command()
def snapshots() -> None:
    """List the recorded versions (immutable snapshots) newest last."""
    for doc in store().list_snapshots():
        typer.echo(
            f"{doc['version']}  {doc.get('created_at')}  {doc.get('writer')}/"
            f"{doc.get('kind')}  {len(doc.get('values', {}))} overrides"
        )


@app.command()
def freeze(
    mechanism: Annotated[str, typer.Argument(help=", ".join(_MECHANISMS))],
    reason: Annotated[str, typer.Option(help="Why (recorded)")],
) -> None:
    """Operator kill switch: the mechanism keeps running but changes nothing."""
    _set_frozen(mechanism, True, reason)


@app.command()
def unfreeze(
    mechanism: Annotated[str, typer.Argument(help=", ".join(_MECHANISMS))],
    reason: Annotated[str, typer.Option(help="Why (recorded)")],
) -> None:
    """Lift the operator kill switch."""
    _set_frozen(mechanism, False, reason)


def _set_frozen(mechanism: str, frozen: bool, reason: str) -> None:
    if mechanism not in _MECHANISMS:
        raise InputError(f"unknown mechanism {mechanism!r} (known: {', '.join(_MECHANISMS)})")
    state = store()
    now = utcnow()
    state.set_control(mechanism, {"frozen": frozen, "reason": reason, "at": format_utc(now)})
    decision = "operator_freeze" if frozen else "operator_unfreeze"
    state.record(
        {
            "at": format_utc(now),
            "mechanism": mechanism,
            "decision": decision,
            "reasons": [f"operator: {reason}"],
            "run_id": _run_id(now),
        }
    )
    emit_json({"mechanism": mechanism, "frozen": frozen, "reason": reason})


def _run_id(now: Any) -> str:
    import os

    return f"{format_utc(now)}-{os.getpid()}"
