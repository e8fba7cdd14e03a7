"""``autolearn reconcile`` (the broker's closed trades against the ledger) and ``autolearn init``.

Thin shells. ``reconcile`` reads ``OANDA_TOKEN`` (registered as a secret, never printed), runs
``autolearn.reconcile.run_reconcile`` and prints its one JSON record on stdout and the findings
on stderr; exit 0 clean, 1 mismatch, 75 broker unavailable. ``--repair`` fetches the missing
and differing trades by id, upserts them into the ledger and checks again (the exit code is the
re-check's). ``init`` prepares a new bot
checkout: the state dir (0700), the git-ignore check of the state dir and the ledger (it prints
the ``.gitignore`` line to add; it never edits ``.gitignore`` or any tracked file), and with
``--write-config`` the tracked ``config/knobs.yaml`` and ``config/gates.yaml`` from the
packaged defaults, only where absent.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer

from autolearn.adapters.atomic import ensure_dir
from autolearn.adapters.logs import emit_json, register_secret
from autolearn.cli._common import app, console, settings, store, utcnow
from autolearn.core.registry import parse_duration
from autolearn.errors import ConfigError, InputError

__all__ = ["init", "reconcile"]

_PRACTICE_URL = "https://api-fxpractice.oanda.com"  # = autolearn.oanda.PRACTICE_URL (lazy import)
_CONFIG_FILES = (("knobs.yaml", "data/knobs.yaml"), ("gates.yaml", "data/gates.yaml"))


def _duration(option: str, text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InputError(f"{option}: {exc}") from exc


@app.command()
def reconcile(
    account: Annotated[
        str | None, typer.Option("--account", help="v20 account id (env OANDA_ACCOUNT_ID)")
    ] = None,
    since: Annotated[str, typer.Option("--since", help="Period to compare, e.g. 7d")] = "7d",
    oanda_url: Annotated[
        str | None,
        typer.Option(
            "--oanda-url", help=f"v20 REST base URL (env OANDA_API_URL; default {_PRACTICE_URL})"
        ),
    ] = None,
    instrument: Annotated[
        list[str] | None,
        typer.Option(help="Compare these instruments (default: those traded in the period)"),
    ] = None,
    max_hold: Annotated[
        str, typer.Option(help="Longest a trade stays open (how far back to page openings)")
    ] = "30d",
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Fetch missing/differing trades by id, upsert them, check again (recorded)",
        ),
    ] = False,
) -> None:
    """Compare the broker's closed trades with the ledger: exit 0 clean, 1 mismatch, 75 offline.

    With --repair the trades found missing or different are fetched from the broker by id
    (trades/{id} and their fills), written to the ledger (idempotent) and compared again.
    """
    from autolearn.ledger.sql import SqlLedger
    from autolearn.oanda.client import V20Client
    from autolearn.reconcile.cycle import ReconcileConfig, run_reconcile

    current = settings()
    token = current.option(None, "OANDA_TOKEN") or ""  # no flag: a secret stays off argv
    register_secret(token)
    account = current.option(account, "OANDA_ACCOUNT_ID")
    oanda_url = current.option(oanda_url, "OANDA_API_URL") or _PRACTICE_URL
    if not token or not account:
        raise ConfigError(
            "reconcile needs OANDA_TOKEN and --account / OANDA_ACCOUNT_ID (environment or env file)"
        )
    config = ReconcileConfig(
        period=_duration("--since", since),
        max_hold=_duration("--max-hold", max_hold),
        instruments=frozenset(instrument) if instrument else None,
    )
    with (
        SqlLedger.open(current.ledger_url, account=current.account) as ledger,
        V20Client(token=token, base_url=oanda_url) as client,
    ):
        record = run_reconcile(
            store=store(),
            broker=client,
            ledger=ledger,
            account_id=account,
            config=config,
            now=utcnow(),
            repair=ledger if repair else None,
        )
    emit_json(record)
    if "repair" in record:
        print(_repair_line(record["repair"]), file=sys.stderr)
    for finding in record.get("findings", []):
        print(_finding_line(finding), file=sys.stderr)
    total = int(record.get("findings_total", 0))
    if total > len(record.get("findings", [])):
        print(f"... {total} findings in all (the record keeps the first)", file=sys.stderr)
    if record.get("decision") == "mismatch":
        raise typer.Exit(1)


def _repair_line(repair: dict[str, Any]) -> str:
    rows = repair.get("rows", {})
    failed = "; ".join(f"{f['broker_trade_id']}: {f['why']}" for f in repair.get("failed", []))
    return (
        f"repair: {len(repair.get('repaired', []))} of {len(repair.get('requested', []))} "
        f"trade(s) fetched by id; rows {rows.get('inserted', 0)} inserted, "
        f"{rows.get('updated', 0)} updated, {rows.get('unchanged', 0)} unchanged; "
        f"findings before {repair.get('before', {}).get('findings_total', '?')}"
        + (f"; not repaired: {failed}" if failed else "")
    )


def _finding_line(f: dict[str, object]) -> str:
    where = f"trade {f.get('broker_trade_id')} {f.get('instrument', '')}".rstrip()
    if f.get("kind") == "differs":
        return (
            f"differs: {where}: {f.get('field')}: ledger {f.get('ledger')} != broker "
            f"{f.get('broker')} ({f.get('detail')})"
        )
    return f"{f.get('kind')}: {where}: {f.get('detail')}"


# -- init ---------------------------------------------------------------------------------------
def _gitignore_line(root: Path, path: Path, *, is_dir: bool) -> str:
    """The anchored ``.gitignore`` line covering ``path`` (and a SQLite file's -wal/-shm)."""
    relative = path.resolve().relative_to(root.resolve()).as_posix()
    return f"/{relative}/" if is_dir else f"/{relative}*"


@app.command()
def init(
    write_config: Annotated[
        bool,
        typer.Option(
            "--write-config",
            help="Write config/knobs.yaml and config/gates.yaml from the defaults (if absent)",
        ),
    ] = False,
) -> None:
    """Prepare a bot checkout: state dir, git-ignore check, optional tracked config, next steps.

    Exit 0 ready, 1 when a runtime path would be seen by git (add the printed lines to
    .gitignore yourself and run it again). It never edits .gitignore or a tracked file.
    """
    from autolearn.ops import probes

    current = settings()
    root = current.bot_root
    state = store()
    checks = [("state dir", state.root, True)]
    ledger_file = probes.sqlite_path(current.ledger_url)
    if ledger_file is not None:
        checks.append(("ledger file", ledger_file, False))
    lines: list[str] = []
    problems: list[str] = []
    for label, path, is_dir in checks:
        facts = probes.probe_path(label, path, is_dir=is_dir)
        if facts.tracked:
            problems.append(
                f"the {label} {facts.path} holds git-tracked files "
                f"({', '.join(facts.tracked[:5])}): `git rm -r --cached` them, then ignore it"
            )
        elif facts.inside_checkout and not facts.ignored:
            top = probes.git(root, "rev-parse", "--show-toplevel").stdout.strip()
            line = _gitignore_line(Path(top or root), path, is_dir=is_dir)
            lines.append(line)
            problems.append(f"the {label} {facts.path} is inside the checkout but not ignored")
        else:
            where = "ignored by git" if facts.inside_checkout else "outside the checkout"
            console.print(f"ok      {label} {facts.path}: {where}")
    if problems:
        for problem in problems:
            console.print(f"[yellow]problem[/yellow] {problem}")
        if lines:
            console.print("add to the bot's .gitignore (and commit it), then run init again:")
            for line in lines:
                typer.echo(line)
        raise typer.Exit(1)
    # only now: creating a dir git would see would already dirty `git status`
    ensure_dir(state.root)
    state.root.chmod(0o700)
    console.print(f"ok      state dir {state.root} ready (mode 0700)")
    written = _write_config(root) if write_config else []
    emit_json(
        {
            "event": "init",
            "bot_root": str(root),
            "state_dir": str(state.root),
            "written": [str(p) for p in written],
        }
    )
    _next_steps(written)


def _write_config(root: Path) -> list[Path]:
    from autolearn.adapters.gitguard import tracked_under

    written: list[Path] = []
    directory = root / "config"
    for name, packaged in _CONFIG_FILES:
        target = directory / name
        if target.exists():
            console.print(
                f"kept    {target}: exists, not overwritten (tracked config: edit it, or delete "
                "it to regenerate)"
            )
            continue
        if target.resolve() in tracked_under(target):
            # deleted in the work tree but tracked: writing it would modify a tracked file
            console.print(
                f"kept    {target}: tracked but deleted in the work tree; "
                f"`git checkout -- config/{name}` restores it"
            )
            continue
        text = resources.files("autolearn").joinpath(packaged).read_text(encoding="utf-8")
        directory.mkdir(parents=True, exist_ok=True)
        with target.open("x", encoding="utf-8") as handle:  # "x": never replace a file
            handle.write(text)
        console.print(f"wrote   {target} (from the packaged default; review and commit it)")
        written.append(target)
    return written


def _next_steps(written: list[Path]) -> None:
    steps = []
    if written:
        names = " ".join(str(p.relative_to(p.parents[1])) for p in written)
        steps.append(f'git add {names} && git commit -m "autolearn config"')
    steps += [
        "autolearn ingest --oanda --account $OANDA_ACCOUNT_ID   # or: autolearn ingest trades.db",
        "autolearn systemd render --out ./units-review           # review the units",
        "sudo autolearn systemd install                          # or --user",
        'autolearn systemd enable tuner --reason "go live"       # and policy, ...',
        "autolearn reconcile --account $OANDA_ACCOUNT_ID         # broker vs ledger",
        "autolearn status",
    ]
    console.print("next steps:")
    for step in steps:
        console.print(f"  {step}")
