"""``autolearn tune [--shadow]``: one online-tuner run; one JSON record on stdout (journald).

The shell of the shell: resolve settings, open the ledger, call ``run_cycle`` with the clock's
``now`` and print the record. ``--now`` (shadow only) decides as of another time, to explain
what the tuner would have done on an old ledger. Lock contention is a record (``lock_busy``) and
exit 0, never an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autolearn.adapters.logs import emit_json
from autolearn.cli._common import app, settings, store, utcnow
from autolearn.core.timestamps import TimestampError, parse_utc
from autolearn.errors import InputError

__all__: list[str] = []


@app.command()
def tune(
    shadow: Annotated[
        bool, typer.Option("--shadow", help="Decide and record, apply nothing")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(envvar="AUTOLEARN_TUNER_CONFIG", help="Tuner thresholds YAML (optional)"),
    ] = None,
    now: Annotated[
        str | None, typer.Option(help="With --shadow: decide as of this UTC time")
    ] = None,
) -> None:
    """Run the online tuner once (every 10 minutes under systemd)."""
    from autolearn.ledger.sql import SqlLedger
    from autolearn.tuner import load_tuner_config, run_cycle

    at = utcnow()
    if now is not None:
        if not shadow:
            raise InputError("--now is for --shadow runs only (a live run uses the clock)")
        try:
            at = parse_utc(now)
        except TimestampError as exc:
            raise InputError(f"--now: {exc}") from exc
    cfg = load_tuner_config(config)
    ledger = SqlLedger.open(settings().ledger_url)
    try:
        record = run_cycle(store(), ledger, cfg, at, shadow=shadow)
    finally:
        ledger.close()
    emit_json(record)
