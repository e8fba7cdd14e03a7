"""``autolearn policy [--shadow [--now T]]`` and ``autolearn unblock POCKET[/STRATEGY] --reason``.

Thin shell: resolve settings, open the ledger, run the cycle, print the one JSON run record.
``--now`` (shadow runs only, as for ``tune``) decides as of another UTC time, so a shadow policy
can be run on historical trades (the 14-day lookback ends at ``--now``, not at the clock).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from autolearn.adapters.logs import emit_json
from autolearn.cli._common import (
    JsonOpt,
    acted_on,
    actor,
    app,
    emit_run,
    gates_config_path,
    gates_overrides,
    operator_store,
    settings,
    store,
    utcnow,
)
from autolearn.cli._mechanism_opts import NowOpt, ShadowOpt, run_time

if TYPE_CHECKING:  # imported inside the commands: gates pull in SQLAlchemy and numpy, and
    # every `autolearn` invocation (even `set`) would pay for them at start-up
    from autolearn.gates.config import GatesConfig

__all__ = ["load_policy_config", "policy", "unblock"]

_ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", help="Gates/policy YAML (default: <bot>/config/gates.yaml if present)"
    ),
]


def _config(path: Path | None) -> GatesConfig:
    from autolearn.gates.config import load_gates_config

    return load_gates_config(gates_config_path(path), gates_overrides())


def load_policy_config() -> GatesConfig:
    """The gates/policy config a policy run would use (tracked YAML + runtime overrides)."""
    return _config(None)


@app.command()
def policy(
    shadow: ShadowOpt = False,
    now: NowOpt = None,
    config: _ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run one policy cycle: block, probation and unblock pockets and strategies."""
    from autolearn.ledger.sql import SqlLedger
    from autolearn.policy.cycle import run_policy

    at = run_time(now, shadow)
    cfg = _config(config)
    with SqlLedger.open(settings().ledger_url, account=settings().account) as ledger:
        record = run_policy(ledger=ledger, store=store(), config=cfg, now=at, shadow=shadow)
    emit_run(record, as_json)


@app.command()
def unblock(
    target: Annotated[str, typer.Argument(help="POCKET or POCKET/STRATEGY")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the history)")],
    active: Annotated[
        bool, typer.Option("--active", help="Straight to active instead of probation")
    ] = False,
    config: _ConfigOpt = None,
) -> None:
    """Lift a policy block by hand (to probation by default); the action is recorded."""
    from autolearn.policy.cycle import operator_unblock

    state = operator_store()
    record = operator_unblock(
        store=state,
        scope=target,
        reason=reason,
        now=utcnow(),
        to_active=active,
        config=_config(config),
        actor=actor(),
    )
    acted_on(state.root)
    emit_json(record)
