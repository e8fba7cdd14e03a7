"""``autolearn scalp-train`` and ``autolearn autotune``: one run each, one JSON record on stdout.

The shell of the shell: resolve settings, open the ledger (and for autotune load the candles),
call the mechanism's ``run_cycle`` with the clock's ``now`` and print the record. ``--now``
(shadow only) decides as of another time, e.g. on an old candle file. Lock contention is a
record (``lock_busy``) and exit 0, never an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autolearn.cli._common import JsonOpt, app, emit_run, settings, store
from autolearn.cli._mechanism_opts import NowOpt, ShadowOpt, run_time
from autolearn.errors import InputError

__all__: list[str] = []


@app.command("scalp-train")
def scalp_train(
    shadow: ShadowOpt = False,
    config: Annotated[
        Path | None,
        typer.Option(help="Scalp trainer thresholds YAML (env AUTOLEARN_SCALP_CONFIG)"),
    ] = None,
    now: NowOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the M1Scalper self-trainer once (opt-in; every 3 hours under systemd)."""
    from autolearn.ledger.sql import SqlLedger
    from autolearn.scalp_trainer import load_scalp_config, run_cycle

    at = run_time(now, shadow)
    cfg = load_scalp_config(settings().option_path(config, "AUTOLEARN_SCALP_CONFIG"))
    with SqlLedger.open(settings().ledger_url, account=settings().account) as ledger:
        record = run_cycle(store(), ledger, cfg, at, shadow=shadow)
    emit_run(record, as_json)


@app.command("autotune")
def autotune(
    storage: Annotated[
        str | None,
        typer.Option(
            help="Optuna RDB URL (env AUTOLEARN_AUTOTUNE_STORAGE; default "
            "sqlite:///<state>/autotune/optuna.db; postgresql://... shares one study between "
            "machines)",
        ),
    ] = None,
    trials: Annotated[
        int | None, typer.Option(min=1, help="Total trials of the study (all workers)")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes on this host")] = 1,
    candles: Annotated[
        Path | None,
        typer.Option(help="Candle file (env AUTOLEARN_CANDLES; else the candle store)"),
    ] = None,
    shadow: Annotated[
        bool, typer.Option("--shadow", help="Search, decide and record, apply nothing")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(help="Autotune settings YAML (env AUTOLEARN_AUTOTUNE_CONFIG)"),
    ] = None,
    now: NowOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the continuous autotune once (hourly under systemd, Nice/CPUQuota/MemoryMax).

    Candles: --candles / AUTOLEARN_CANDLES, else the ledger's candle store (the config's
    instrument and granularity), else the config's candles_path.
    """
    from autolearn.autotune import load_autotune_config, run_cycle
    from autolearn.autotune.cycle import store_candles
    from autolearn.backtest import load_candles
    from autolearn.ledger.sql import SqlLedger

    at = run_time(now, shadow)
    current = settings()
    cfg = load_autotune_config(current.option_path(config, "AUTOLEARN_AUTOTUNE_CONFIG"))
    storage = current.option(storage, "AUTOLEARN_AUTOTUNE_STORAGE")
    candles = current.option_path(candles, "AUTOLEARN_CANDLES")
    ledger_url = current.ledger_url
    # An explicit file (--candles / AUTOLEARN_CANDLES) wins; else the ledger's candle store
    # when it has recent bars of the instrument; else the config's candles_path.
    path = candles
    with SqlLedger.open(ledger_url) as ledger:
        bars = None if path is not None else store_candles(ledger, cfg, at)
        if bars is not None and len(bars) == 0:
            bars = None
            path = Path(cfg.candles_path) if cfg.candles_path else None
            if path is None:
                raise InputError(
                    f"autotune needs candles: the ledger's candle store has no "
                    f"{cfg.instrument} {cfg.granularity} bars since "
                    f"{(at - cfg.window - cfg.max_candle_age).isoformat()} (fill it: "
                    f"`autolearn ingest --oanda-candles {cfg.instrument} --granularity "
                    f"{cfg.granularity}` or `ingest --candles FILE`), and no candle file is "
                    "given (--candles FILE, AUTOLEARN_CANDLES or candles_path in the autotune "
                    "config)"
                )
        if path is not None:
            bars = load_candles(path)
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
            ledger_url=ledger_url,
        )
    emit_run(record, as_json)
