"""``autolearn scalp-train`` and ``autolearn autotune``: one run each, one JSON record on stdout.

The shell of the shell: resolve settings, open the ledger (and for autotune load the candles),
call the mechanism's ``run_cycle`` with the clock's ``now`` and print the record. ``--now``
(shadow only) decides as of another time, e.g. on an old candle file. Lock contention is a
record (``lock_busy``) and exit 0, never an error.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from autolearn.adapters.logs import emit_json
from autolearn.cli._common import app, settings, store, utcnow
from autolearn.core.timestamps import TimestampError, parse_utc
from autolearn.errors import InputError

__all__: list[str] = []


def _when(now: str | None, shadow: bool) -> datetime:
    if now is None:
        return utcnow()
    if not shadow:
        raise InputError("--now is for --shadow runs only (a live run uses the clock)")
    try:
        return parse_utc(now)
    except TimestampError as exc:
        raise InputError(f"--now: {exc}") from exc


@app.command("scalp-train")
def scalp_train(
    shadow: Annotated[
        bool, typer.Option("--shadow", help="Decide and record, apply nothing")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(envvar="AUTOLEARN_SCALP_CONFIG", help="Scalp trainer thresholds YAML"),
    ] = None,
    now: Annotated[
        str | None, typer.Option(help="With --shadow: decide as of this UTC time")
    ] = None,
) -> None:
    """Run the M1Scalper self-trainer once (opt-in; every 3 hours under systemd)."""
    from autolearn.ledger.sql import SqlLedger
    from autolearn.scalp_trainer import load_scalp_config, run_cycle

    at = _when(now, shadow)
    cfg = load_scalp_config(config)
    ledger = SqlLedger.open(settings().ledger_url)
    try:
        record = run_cycle(store(), ledger, cfg, at, shadow=shadow)
    finally:
        ledger.close()
    emit_json(record)


@app.command("autotune")
def autotune(
    storage: Annotated[
        str | None,
        typer.Option(
            envvar="AUTOLEARN_AUTOTUNE_STORAGE",
            help="Optuna RDB URL (default sqlite:///<state>/autotune/optuna.db; "
            "postgresql://... shares one study between machines)",
        ),
    ] = None,
    trials: Annotated[
        int | None, typer.Option(min=1, help="Total trials of the study (all workers)")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes on this host")] = 1,
    candles: Annotated[
        Path | None,
        typer.Option(envvar="AUTOLEARN_CANDLES", help="Candle file (else the config's)"),
    ] = None,
    shadow: Annotated[
        bool, typer.Option("--shadow", help="Search, decide and record, apply nothing")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(envvar="AUTOLEARN_AUTOTUNE_CONFIG", help="Autotune settings YAML"),
    ] = None,
    now: Annotated[
        str | None, typer.Option(help="With --shadow: decide as of this UTC time")
    ] = None,
) -> None:
    """Run the continuous autotune once (hourly under systemd, Nice/CPUQuota/MemoryMax)."""
    from autolearn.autotune import load_autotune_config, run_cycle
    from autolearn.backtest import load_candles
    from autolearn.ledger.sql import SqlLedger

    at = _when(now, shadow)
    cfg = load_autotune_config(config)
    path = candles or (Path(cfg.candles_path) if cfg.candles_path else None)
    if path is None:
        raise InputError(
            "autotune needs candles: pass --candles FILE, set AUTOLEARN_CANDLES, or "
            "candles_path in the autotune config (e.g. examples/data/fx/*.csv)"
        )
    bars = load_candles(path)
    ledger = SqlLedger.open(settings().ledger_url)
    try:
        record = run_cycle(
            store(),
            ledger,
            cfg,
            bars,
            path,
            at,
            storage_url=storage,
            n_trials=trials,
            workers=workers,
            shadow=shadow,
        )
    finally:
        ledger.close()
    emit_json(record)
