"""``autolearn config check``: load every config a run would load; exit 78 if any is invalid.

Each config is found as its own command finds it and read through its own loader, so "ok" here
means the run will start:

    tuner      --tuner-config     AUTOLEARN_TUNER_CONFIG     else the defaults
    scalp      --scalp-config     AUTOLEARN_SCALP_CONFIG     else the defaults
    autotune   --autotune-config  AUTOLEARN_AUTOTUNE_CONFIG  else the defaults
    gates      --gates-config     <bot>/config/gates.yaml    else the packaged file; + the runtime
                                                             overrides in the state dir
    registry   --registry         AUTOLEARN_REGISTRY         else <bot>/config/knobs.yaml, packaged
    ledger     <bot>/config/ledger.yaml (plausibility limits of every ledger writer) else defaults

``autolearn doctor`` runs the same check as its ``configs`` finding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autolearn.cli._common import app, gates_config_path, gates_overrides, settings
from autolearn.errors import ConfigError
from autolearn.ops.doctor import ConfigFacts

__all__ = ["gather_config_facts"]

config_app = typer.Typer(help="Check the tracked configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

_ENV = {
    "tuner": "AUTOLEARN_TUNER_CONFIG",
    "scalp": "AUTOLEARN_SCALP_CONFIG",
    "autotune": "AUTOLEARN_AUTOTUNE_CONFIG",
}


@config_app.command("check")
def check(
    tuner_config: Annotated[
        Path | None,
        typer.Option("--tuner-config", help=f"Tuner thresholds YAML (env {_ENV['tuner']})"),
    ] = None,
    scalp_config: Annotated[
        Path | None,
        typer.Option("--scalp-config", help=f"Scalp trainer YAML (env {_ENV['scalp']})"),
    ] = None,
    autotune_config: Annotated[
        Path | None,
        typer.Option("--autotune-config", help=f"Autotune YAML (env {_ENV['autotune']})"),
    ] = None,
    gates_config: Annotated[
        Path | None,
        typer.Option(
            "--gates-config", help="Gates/policy YAML (default: <bot>/config/gates.yaml if present)"
        ),
    ] = None,
) -> None:
    """Validate every config (exit 0 all load, 78 any is invalid), one line per config."""
    facts = gather_config_facts(
        tuner=tuner_config, scalp=scalp_config, autotune=autotune_config, gates=gates_config
    )
    for fact in facts:
        # plain echo, not rich: a problem such as "exit_pockets[0]" is not markup
        typer.echo(f"{fact.name}: {fact.source}: {'invalid' if fact.problems else 'ok'}")
        for problem in fact.problems:
            typer.echo(f"  - {problem}")
    if any(fact.problems for fact in facts):
        raise typer.Exit(ConfigError.exit_code)


def gather_config_facts(
    *,
    tuner: Path | None = None,
    scalp: Path | None = None,
    autotune: Path | None = None,
    gates: Path | None = None,
) -> list[ConfigFacts]:
    """Load each config as its command would (a ``None`` path: the variable, from the
    environment or the env file, then the default)."""
    from autolearn.autotune.config import load_autotune_config
    from autolearn.core.ownership_doc import ownership_problems
    from autolearn.gates.config import load_gates_config
    from autolearn.ledger.limits import LIMITS_FILE, load_trade_limits
    from autolearn.ops.probes import probe_config
    from autolearn.scalp_trainer.config import load_scalp_config
    from autolearn.tuner.config import load_tuner_config

    current = settings()
    tuner = current.option_path(tuner, _ENV["tuner"])
    scalp = current.option_path(scalp, _ENV["scalp"])
    autotune = current.option_path(autotune, _ENV["autotune"])
    gates = gates_config_path(gates)
    gates_source = str(gates) if gates else "defaults (packaged gates.yaml)"
    try:
        overrides = gates_overrides()
    except ConfigError:  # an invalid registry (its own line says why) hides the state store
        overrides, gates_source = None, gates_source + " (runtime overrides unread)"
    if overrides:
        gates_source += " + runtime overrides"

    def load_registry() -> object:
        registry = current.registry()
        problems = ownership_problems(registry)
        if problems:
            raise ConfigError(f"registry {registry.source} is inconsistent:", problems)
        return registry

    return [
        probe_config("tuner", _source(tuner), lambda: load_tuner_config(tuner)),
        probe_config("scalp", _source(scalp), lambda: load_scalp_config(scalp)),
        probe_config("autotune", _source(autotune), lambda: load_autotune_config(autotune)),
        probe_config("gates", gates_source, lambda: load_gates_config(gates, overrides)),
        probe_config(
            "registry",
            str(current.registry_path or "defaults (packaged knobs.yaml)"),
            load_registry,
        ),
        probe_config(
            "ledger",
            str(current.bot_root / LIMITS_FILE)
            if (current.bot_root / LIMITS_FILE).exists()
            else "defaults",
            lambda: load_trade_limits(current.bot_root),
        ),
    ]


def _source(path: Path | None) -> str:
    return str(path) if path else "defaults"
