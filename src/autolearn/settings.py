"""Where things live: the bot checkout, the state dir, the registry and the ledger URL.

Resolution order for each: explicit argument (CLI flag) > environment variable > default under
the bot checkout. Defaults keep every runtime file under ``logs/`` (untracked in the bot's repo).

    AUTOLEARN_BOT_ROOT     bot checkout                       default: current directory
    AUTOLEARN_STATE_DIR    runtime state                      default: <root>/logs/tuning
    AUTOLEARN_REGISTRY     knob registry (tracked YAML)       default: <root>/config/knobs.yaml,
                                                              else the packaged default
    AUTOLEARN_LEDGER_URL   trade ledger (SQLAlchemy URL)      default: sqlite:///<root>/logs/autolearn/ledger.db
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from autolearn.adapters.yamlio import load_yaml, load_yaml_text
from autolearn.core.registry import Registry, parse_registry

__all__ = ["Settings", "load_registry", "packaged_registry_text"]


def packaged_registry_text() -> str:
    """The default registry shipped with autolearn (the original's knob inventory)."""
    return resources.files("autolearn").joinpath("data/knobs.yaml").read_text(encoding="utf-8")


def load_registry(path: Path | None) -> Registry:
    """Load and validate a registry file, or the packaged default when ``path`` is None."""
    if path is None:
        return parse_registry(
            load_yaml_text(packaged_registry_text(), "<packaged knobs.yaml>"),
            "<packaged knobs.yaml>",
        )
    return parse_registry(load_yaml(path), str(path))


@dataclass(frozen=True, slots=True)
class Settings:
    bot_root: Path
    state_dir: Path
    registry_path: Path | None
    ledger_url: str

    @classmethod
    def resolve(
        cls,
        *,
        bot_root: Path | None = None,
        state_dir: Path | None = None,
        registry: Path | None = None,
        ledger_url: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Settings:
        env = os.environ if env is None else env
        root = Path(bot_root or env.get("AUTOLEARN_BOT_ROOT") or Path.cwd()).resolve()
        state = Path(state_dir or env.get("AUTOLEARN_STATE_DIR") or root / "logs" / "tuning")
        reg: Path | None = registry or (
            Path(env["AUTOLEARN_REGISTRY"]) if env.get("AUTOLEARN_REGISTRY") else None
        )
        if reg is None and (root / "config" / "knobs.yaml").exists():
            reg = root / "config" / "knobs.yaml"
        url = (
            ledger_url
            or env.get("AUTOLEARN_LEDGER_URL")
            or (f"sqlite:///{root / 'logs' / 'autolearn' / 'ledger.db'}")
        )
        return cls(root, state.resolve(), reg, url)

    def registry(self) -> Registry:
        return load_registry(self.registry_path)
