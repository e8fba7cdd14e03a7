"""The Typer app, its global options and the small shared pieces of the commands."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from autolearn.adapters.state import StateStore
from autolearn.settings import Settings

__all__ = ["app", "console", "gates_config_path", "gates_overrides", "settings", "store", "utcnow"]

app = typer.Typer(
    name="autolearn",
    help="Safe auto-learning control plane for a live FX bot: see, stop and undo every change.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(highlight=False, soft_wrap=True)
_SETTINGS: dict[str, Settings] = {}


@app.callback()
def _global(
    bot_root: Annotated[
        Path | None, typer.Option(envvar="AUTOLEARN_BOT_ROOT", help="Bot checkout (default: .)")
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(envvar="AUTOLEARN_STATE_DIR", help="Runtime state dir (<root>/logs/tuning)"),
    ] = None,
    registry: Annotated[
        Path | None, typer.Option(envvar="AUTOLEARN_REGISTRY", help="Knob registry YAML")
    ] = None,
    ledger: Annotated[
        str | None, typer.Option(envvar="AUTOLEARN_LEDGER_URL", help="Ledger URL (sqlite/postgres)")
    ] = None,
) -> None:
    _SETTINGS["current"] = Settings.resolve(
        bot_root=bot_root, state_dir=state_dir, registry=registry, ledger_url=ledger
    )


def settings() -> Settings:
    return _SETTINGS.get("current") or Settings.resolve()


def store() -> StateStore:
    current = settings()
    return StateStore(current.state_dir, current.registry())


def utcnow() -> datetime:
    """The shell's clock (the core never reads it)."""
    return datetime.now(UTC)


def gates_config_path(path: Path | None) -> Path | None:
    """The gates/policy YAML: ``path``, else ``<bot>/config/gates.yaml`` if present, else None
    (the packaged defaults)."""
    if path is None:
        tracked = settings().bot_root / "config" / "gates.yaml"
        path = tracked if tracked.exists() else None
    return path


def gates_overrides() -> Mapping[str, Any] | None:
    """The runtime overrides of the gates config (state dir, never a tracked file)."""
    overrides: Mapping[str, Any] | None = store().read_mechanism("gates").get("overrides")
    return overrides or None
