"""``autolearn demo``: the main job on the bundled real data sample (what ``make demo`` runs)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from autolearn.cli._common import app, console
from autolearn.cli._ingest import ingest_files
from autolearn.errors import InputError

__all__: list[str] = []

_QUANTRABBIT_FILES = ("quantrabbit/trades_home.db", "quantrabbit/trades_latest.csv")


@app.command()
def demo(
    data: Annotated[Path, typer.Option(help="Bundled sample data dir")] = Path("examples/data"),
    out: Annotated[Path, typer.Option(help="Where the demo writes (git-ignored)")] = Path(
        "demo-output"
    ),
) -> None:
    """Ingest the bundled real QuantRabbit trades and summarise the ledger."""
    from autolearn.ledger.sql import SqlLedger

    files = [data / name for name in _QUANTRABBIT_FILES]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise InputError(f"demo data missing: {', '.join(missing)} (run from the repo root)")
    if out.exists():
        shutil.rmtree(out)  # a fresh ledger each run: the demo is deterministic
    out.mkdir(parents=True)
    ledger_url = f"sqlite:///{(out / 'ledger.db').resolve()}"
    console.rule("[bold]1. ingest the real QuantRabbit trades (OANDA USD/JPY, Oct 2025)")
    ingest_files(files, ledger_url, show_rejected=10)
    console.rule("[bold]2. the ledger")
    ledger = SqlLedger.open(ledger_url)
    try:
        console.print(ledger.summary().format())
    finally:
        ledger.close()
    console.print(f"\nledger: {ledger_url}")
