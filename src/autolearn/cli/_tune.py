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

from autolearn.cli._common import JsonOpt, app, emit_run, settings, store
from autolearn.cli._mechanism_opts import NowOpt, ShadowOpt, run_time

__all__: list[str] = []


@app.command()
def tune(
    shadow: ShadowOpt = False,
    config: Annotated[
        Path | None,
        typer.Option(help="Tuner thresholds YAML (env AUTOLEARN_TUNER_CONFIG; default: built in)"),
    ] = None,
    now: NowOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the online tuner once (every 10 minutes under systemd)."""
    from autolearn.ledger.sqlite_reader import open_reader
    from autolearn.tuner import load_tuner_config, run_cycle

    at = run_time(now, shadow)
    cfg = load_tuner_config(settings().option_path(config, "AUTOLEARN_TUNER_CONFIG"))
    with open_reader(
        settings().ledger_url, account=settings().account
    ) as ledger:  # sqlite3 on a ready SQLite file
        record = run_cycle(store(), ledger, cfg, at, shadow=shadow)
    emit_run(record, as_json)
