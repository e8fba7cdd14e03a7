"""Commands over the knob registry and the runtime state: see, explain, stop and undo."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from autolearn.adapters.logs import emit_json
from autolearn.adapters.state import StateStore
from autolearn.cli._common import (
    acted_on,
    actor,
    app,
    console,
    history_policy,
    operator_store,
    settings,
    store,
    utcnow,
)
from autolearn.core.apply_guard import ApplyKind
from autolearn.core.knobs import KnobType, Owner
from autolearn.core.ownership_doc import ownership_problems, render_ownership_doc
from autolearn.core.record_view import FoldedRow, fold_rows, record_row
from autolearn.core.registry import Registry, parse_duration
from autolearn.core.run_record import RunRecord
from autolearn.core.timestamps import format_utc
from autolearn.errors import ConfigError, InputError, StateError, UsageError
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
        _check_compat_paths(registry)
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
    headers = ("knob", "owner", "type", "default", "bounds", "step/max", "family")
    cells = []
    for s in sorted(listed, key=lambda s: (s.owner.value, s.name)):
        bounds = "-" if s.type is KnobType.BOOL else f"[{s.lower:g}, {s.upper:g}]"
        steps = "-" if s.type is KnobType.BOOL else f"{s.step:g}/{s.max_step:g}"
        cells.append((s.name, s.owner.value, s.type.value, str(s.default), bounds, steps, s.family))
    table = Table(title=f"knobs ({registry.source})")
    # A knob name is never cut or folded (at 80 columns every name read "strategi..."): when
    # the columns do not fit side by side, the others become one "details" column that wraps.
    wide = sum(max(len(row[i]) for row in (headers, *cells)) + 3 for i in range(7)) + 1
    if wide <= console.width:
        for column in headers:
            table.add_column(column, no_wrap=True)
        lines = [list(row) for row in cells]
    else:
        table.add_column("knob", no_wrap=True, min_width=max(len(row[0]) for row in cells))
        table.add_column("owner, type, default, bounds, step/max, family")
        lines = [[row[0], ", ".join(row[1:4]) + f", {row[4]}, {row[5]}, {row[6]}"] for row in cells]
    for line in lines:
        table.add_row(*(escape(c) for c in line))
    console.print(table)


def _check_compat_paths(registry: Registry) -> None:
    """With QuantRabbit exports on, every knob needs an original path (or a reason it has none)."""
    from autolearn.compat.quantrabbit.config import (
        find_compat_config,
        load_compat_config,
        mapping_report,
    )

    current = settings()
    path = find_compat_config(current.state_dir, bot_root=current.bot_root)
    config = load_compat_config(path) if path is not None else None
    if config is None or not config.is_on:
        return
    problems, notes = mapping_report(registry, config)
    for note in notes:
        console.print(f"  compat: {note}")
    if problems:
        raise ConfigError(f"QuantRabbit exports are on ({config.source}) but:", problems)
    console.print(f"compat OK: every knob has a QuantRabbit path or a reason ({config.source})")


@app.command()
def explain(key: Annotated[str, typer.Argument(help="Dotted knob name")]) -> None:
    """Say which layer a value comes from, at which version, written when and by whom."""
    current = settings()
    tuning = Tuning(
        current.state_dir,
        current.registry(),
        bot_root=current.bot_root,
        shared=current.shared_state(),
    )
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
        raise UsageError(f"unknown knob {key!r}: not in the registry (see `autolearn knobs`)")


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
    expand: Annotated[
        bool, typer.Option(help="One row per run (default: repeats folded into one row)")
    ] = False,
) -> None:
    """Rebuild the recent changes and their reasons from the history alone.

    Repeated runs (a mechanism deciding the same again) are one row with their count, first and
    last time and run ids; ``--expand`` or ``--json`` shows every run.
    """
    try:
        window = parse_duration(since)
    except ValueError as exc:
        raise InputError(f"--since: {exc}") from exc
    state = store()
    cutoff = utcnow() - window
    read = state.history.read_runs_since(cutoff)  # older segments stay unopened
    records = [r for r in read.runs if mechanism is None or r.mechanism == mechanism]
    if as_json:
        for record in records:
            emit_json(record.to_json())
        for line, why in read.malformed:  # stdout stays JSON lines; the note goes to stderr
            typer.echo(f"skipped malformed history line {line}: {why}", err=True)
        return
    table = Table(title=f"history since {format_utc(cutoff)} ({len(records)} records)")
    for column in ("at", "mechanism", "decision", "changes", "verdicts", "reasons", "runs"):
        table.add_column(column, overflow="fold")
    if expand:
        folded = [FoldedRow(record_row(r), 1, "", "", r.run_id or "-", "") for r in records]
    else:
        folded = fold_rows(records)
    for f in folded:
        row = f.row
        cells = (row.at, row.mechanism, row.decision, row.changes, row.verdicts, row.reasons)
        table.add_row(*(escape(c) for c in cells), escape(f.runs))
    console.print(table)
    for problem in read.segment_problems:
        console.print(f"[red]unreadable lines in a rotated segment: {escape(problem)}[/red]")
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
    """Restore any earlier snapshot (an operator action, recorded with its diff).

    A rollback to the current version changes nothing and is refused (exit 65): to undo one
    change whatever ran since, use ``autolearn undo``.
    """
    state = operator_store()
    now = utcnow()
    current = state.read_effective(allow_lost=True)  # a deleted one is restored by a rollback
    if to == current.version:
        raise StateError(
            f"{to} is the current version: a rollback to it changes nothing (was the target "
            "taken from a newer record, e.g. a timer run?). To undo a change use `autolearn "
            "undo RUN_ID`, `undo --last KNOB` or `undo --last-by MECHANISM`"
        )
    target = dict(state.read_snapshot(to).get("values", {}))
    touched = set(target) | set(current.values)
    record = _operator_record(now, "rollback", reason) | {
        "target_version": to,
        "restored_snapshot": True,
    }
    with _policy_sync(state, touched, now) as synced:
        result = state.restore(to, Owner.OPERATOR, now, kind=ApplyKind.OPERATOR, record=record)
    acted_on(state.root)
    emit_json(
        {
            "decision": "rollback",
            "from": result.version_before,
            "to": result.version_after,
            "diff": result.diff,
            "reason": reason,
        }
        | ({"policy_scopes": synced} if synced else {})
    )


@app.command()
def recover(
    reason: Annotated[str, typer.Option(help="Why (recorded)")],
    to: Annotated[
        str | None,
        typer.Option("--to", help="Version id (default: the last applied one in the history)"),
    ] = None,
) -> None:
    """Recover from an unreadable effective.json: restore the last good snapshot, recorded.

    The unreadable file is kept as ``effective.json.corrupt-<time>``. Refused (65) when
    effective.json reads fine: then use ``rollback --to`` or ``undo``.
    """
    state = operator_store()
    now = utcnow()
    record = _operator_record(now, "recover", reason) | {"restored_snapshot": True}
    result, kept = state.recover(to, Owner.OPERATOR, now, record=record)
    acted_on(state.root)
    emit_json(
        {
            "decision": "recover",
            "to": state.read_effective().version,
            "diff": result.diff,
            "kept_as": str(kept) if kept else None,
            "reason": reason,
        }
    )


@app.command()
def undo(
    run_id: Annotated[
        str | None, typer.Argument(help="The change's run_id (see `autolearn history --json`)")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (recorded)")] = "",
    last: Annotated[
        str | None, typer.Option("--last", help="Undo the newest change of this knob")
    ] = None,
    last_by: Annotated[
        str | None, typer.Option("--last-by", help="Undo the newest change by this mechanism")
    ] = None,
) -> None:
    """Undo one recorded change, whatever ran since: its knobs go back to their values before it.

    The change is named, not taken as "the newest record": by its run_id, as the newest change
    of a knob (``--last KNOB``) or by a mechanism (``--last-by tuner``). Under the state lock,
    every knob must still hold the value the change left; a knob changed since is named and
    nothing is undone (exit 65).
    """
    if sum(x is not None for x in (run_id, last, last_by)) != 1:
        raise UsageError("name exactly one change: RUN_ID, --last KNOB or --last-by MECHANISM")
    if not reason.strip():
        raise UsageError("undo needs --reason: say why (it is recorded)")
    state = operator_store()
    change = _find_change(state.history.read_runs().runs, run_id, last, last_by)
    expected = {d.knob: d.after for d in change.diff}
    requested = {d.knob: d.before for d in change.diff}
    now = utcnow()
    record = _operator_record(now, "undo", reason) | {
        "undone_run_id": change.run_id,
        "undone_mechanism": change.mechanism,
        "target_version": change.version_before,
    }
    with _policy_sync(state, set(requested), now) as synced:
        result = state.apply_if(expected, requested, now, record=record)
    acted_on(state.root)
    emit_json(
        {
            "decision": "undo",
            "undone": change.run_id,
            "mechanism": change.mechanism,
            "from": result.version_before,
            "to": result.version_after,
            "diff": result.diff,
            "reason": reason,
        }
        | ({"policy_scopes": synced} if synced else {})
    )


def _find_change(
    runs: Sequence[RunRecord], run_id: str | None, knob: str | None, mechanism: str | None
) -> RunRecord:
    """The applied change a user named (newest first for ``--last``/``--last-by``)."""
    for r in reversed(runs):
        if not (r.applied and r.diff):
            if run_id is not None and r.run_id == run_id:
                raise StateError(f"run {run_id} ({r.decision}) changed nothing: nothing to undo")
            continue
        if (
            (run_id is not None and r.run_id == run_id)
            or (knob is not None and any(d.knob == knob for d in r.diff))
            or (mechanism is not None and r.mechanism == mechanism)
        ):
            return r
    named = (
        f"run {run_id}" if run_id else f"a change of {knob}" if knob else f"a change by {mechanism}"
    )
    raise StateError(f"no applied {named} in the history (see `autolearn history --since 7d`)")


@contextmanager
def _policy_sync(state: StateStore, knobs: set[str], now: datetime) -> Iterator[dict[str, str]]:
    """Hold the policy lock around an operator's write of policy-owned knobs, then make the
    policy's state agree (as ``unblock`` does), so its next run does not undo the write."""
    registry = state.registry
    owned = {
        k
        for k in knobs
        if (s := registry.find(k)) is not None
        and s.owner is Owner.POLICY
        and k.startswith("pockets.")  # a scope's knob, not a gates setting
    }
    synced: dict[str, str] = {}
    if not owned:
        yield synced
        return
    # imported here: the policy pulls in the gates and SQLAlchemy, which `set` need not pay for
    from autolearn.cli._policy import load_policy_config
    from autolearn.policy.cycle import MECHANISM, record_operator_scopes

    config = load_policy_config()
    with state.lock(MECHANISM, timeout_s=10):
        yield synced
        synced.update(record_operator_scopes(store=state, knobs=owned, now=now, config=config))


def _operator_record(now: datetime, decision: str, reason: str) -> dict[str, Any]:
    return {
        "mechanism": "operator",
        "decision": decision,
        "run_id": _run_id(now),
        "reasons": [f"operator: {reason}"],
        "actor": actor(),
    }


@app.command(name="set")
def set_knob(
    knob: Annotated[str, typer.Argument(help="Dotted knob name")],
    value: Annotated[str, typer.Argument(help="New value (JSON: 0.3, 12, true)")],
    reason: Annotated[str, typer.Option(help="Why (recorded)")],
) -> None:
    """Set one knob by hand (an operator action: bounds and grid still apply).

    A policy-owned knob (``pockets.*``) is written through the policy's state, so its next run
    keeps it (``allow_new false`` is a block of ``block_for``; true lifts one).
    """
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise InputError(f"value {value!r} is not JSON (e.g. 0.3, 12, true)") from exc
    state = operator_store()
    now = utcnow()
    record = _operator_record(now, "set", reason)
    with _policy_sync(state, {knob}, now) as synced:
        result = state.apply(
            Owner.OPERATOR, {knob: parsed}, now, kind=ApplyKind.OPERATOR, record=record
        )
    acted_on(state.root)
    decision = result.decisions[0]
    emit_json(
        decision.to_record()
        | {"version": result.version_after}
        | ({"policy_scopes": synced} if synced else {})
    )
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
    state = operator_store()
    now = utcnow()
    who = actor()
    state.set_control(
        mechanism, {"frozen": frozen, "reason": reason, "at": format_utc(now), "by": who}
    )
    decision = "operator_freeze" if frozen else "operator_unfreeze"
    state.record(
        {
            "at": format_utc(now),
            "mechanism": mechanism,
            "decision": decision,
            "reasons": [f"operator: {reason}"],
            "run_id": _run_id(now),
            "actor": who,
        }
    )
    acted_on(state.root)
    emit_json({"mechanism": mechanism, "frozen": frozen, "reason": reason})


def _run_id(now: Any) -> str:
    import os

    return f"{format_utc(now)}-{os.getpid()}"


@app.command()
def share() -> None:
    """Upload this host's state dir into the empty shared state (``AUTOLEARN_STATE_URL``).

    The move from one control host to shared state: run once, on the host whose state the
    account keeps; every host then serves it. Refused when the shared state holds anything.
    """
    current = settings()
    shared = current.shared_state()
    if shared is None:
        raise ConfigError(
            "share: AUTOLEARN_STATE_URL is not set (the PostgreSQL every host reaches)"
        )
    state = StateStore(
        current.state_dir, current.registry(), history_policy(current), shared=shared
    )
    uploaded = state.share(utcnow())
    version = state.read_effective().version
    acted_on(state.root)
    emit_json({"shared": shared.describe(), "records": uploaded, "version": version})
