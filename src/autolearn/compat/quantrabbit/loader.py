"""A reader of the exported files exactly as QuantRabbit's consumers read them (3.3, 3.4, 3.8).

Not what autolearn's own workers use (they read ``effective.json`` through
``autolearn.runtime.Tuning``): this is the original's documented behaviour, kept so that tests and
``ADOPT_QUANTRABBIT.md`` can prove an unchanged worker sees every exported value.

- :meth:`OriginalReader.get_tuning_value` - ``utils/tuning_loader``: per key path, first non-None
  of overlay (``$TUNING_OVERLAY_PATH`` only, else ``logs/tuning/tuning_overlay.yaml`` then the
  legacy tracked ``config/tuning_overlay.yaml``), overrides (same rule,
  ``tuning_overrides.yaml``), presets (``$TUNING_PRESETS_PATH`` only, else
  ``config/tuning_presets.yaml``); a file that does not parse is an empty layer;
- :meth:`OriginalReader.policy` - ``analysis/policy_bus.latest()``: ``$POLICY_OVERLAY_PATH``, else
  ``$POLICY_SNAPSHOT_PATH``, else ``logs/policy_overlay.json``; ``none``/``off`` disables;
- :meth:`OriginalReader.entry_allowed` - ``order_manager._policy_gate_allows_entry``'s codes;
- :meth:`OriginalReader.scalp_params` - M1Scalper: one whole file (``$SCALP_ACTIVE_PARAMS_PATH``,
  else the runtime file if it exists, else the tracked ``configs/scalp_active_params.json``),
  section ``M1Scalper`` (or ``m1scalper``).

Reads only; never writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["OriginalReader"]


def _load(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError):
        return None


def _walk(doc: Any, keys: Iterable[str]) -> Any:
    node = doc
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


@dataclass(frozen=True, slots=True)
class OriginalReader:
    """The original's consumers, reading a checkout at ``root`` under environment ``env``."""

    root: Path
    env: Mapping[str, str] = field(default_factory=dict)

    def _layer_paths(self, env_key: str, runtime: str, legacy: str | None) -> list[Path]:
        named = self.env.get(env_key)
        if named:
            return [Path(named)]
        paths = [self.root / runtime]
        if legacy:
            paths.append(self.root / legacy)
        return paths

    def tuning_layers(self) -> list[Path]:
        """The files the tuning loader consults, in order, duplicates removed."""
        layers = (
            self._layer_paths(
                "TUNING_OVERLAY_PATH",
                "logs/tuning/tuning_overlay.yaml",
                "config/tuning_overlay.yaml",
            )
            + self._layer_paths(
                "TUNING_OVERRIDES_PATH",
                "logs/tuning/tuning_overrides.yaml",
                "config/tuning_overrides.yaml",
            )
            + self._layer_paths("TUNING_PRESETS_PATH", "config/tuning_presets.yaml", None)
        )
        seen: list[Path] = []
        for path in layers:
            if path not in seen:
                seen.append(path)
        return seen

    def get_tuning_value(self, keys: Iterable[str], default: Any = None) -> Any:
        """The first non-None value of the key path over the layers, else ``default``."""
        wanted = list(keys)
        for path in self.tuning_layers():
            value = _walk(_load(path), wanted) if path.exists() else None
            if value is not None:
                return value
        return default

    def tuning_source(self, keys: Iterable[str]) -> Path | None:
        """Which layer :meth:`get_tuning_value` would answer from (None: default)."""
        wanted = list(keys)
        for path in self.tuning_layers():
            if path.exists() and _walk(_load(path), wanted) is not None:
                return path
        return None

    def policy(self) -> dict[str, Any] | None:
        """The PolicySnapshot ``policy_bus.latest()`` would hold (None: disabled or absent)."""
        named = self.env.get("POLICY_OVERLAY_PATH") or self.env.get("POLICY_SNAPSHOT_PATH")
        if named and named.strip().lower() in {"none", "off"}:
            return None
        path = Path(named) if named else self.root / "logs/policy_overlay.json"
        doc = _load(path) if path.exists() else None
        return doc if isinstance(doc, dict) else None

    def entry_allowed(self, pocket: str, strategy_tag: str, side: str) -> tuple[bool, str]:
        """The order path's policy gate: ``(allowed, code)`` with the original's codes."""
        snapshot = self.policy() or {}
        node = _walk(snapshot, ["pockets", pocket]) or {}
        if node.get("enabled") is False:
            return False, "policy_disabled"
        if _walk(node, ["entry_gates", "allow_new"]) is False:
            return False, "policy_allow_new_false"
        bias = str(node.get("bias") or "neutral")
        if bias == "long" and side == "short":
            return False, "policy_bias_long"
        if bias == "short" and side == "long":
            return False, "policy_bias_short"
        allow = node.get("strategies") or []
        base = strategy_tag.split("-", 1)[0]
        if allow and strategy_tag not in allow and base not in allow:
            return False, "policy_strategy_block"
        return True, "ok"

    def scalp_params(self) -> dict[str, Any]:
        """M1Scalper's section of the one whole params file it picks."""
        named = self.env.get("SCALP_ACTIVE_PARAMS_PATH")
        runtime = self.root / "logs/tuning/scalp_active_params.json"
        path = (
            Path(named)
            if named
            else runtime
            if runtime.exists()
            else (self.root / "configs/scalp_active_params.json")
        )
        doc = _load(path) if path.exists() else None
        if not isinstance(doc, dict):
            return {}
        section = doc.get("M1Scalper") or doc.get("m1scalper") or {}
        return section if isinstance(section, dict) else {}

    def scalp_file(self) -> dict[str, Any]:
        """The whole params file M1Scalper picks (other sections: autotune's strategies)."""
        named = self.env.get("SCALP_ACTIVE_PARAMS_PATH")
        runtime = self.root / "logs/tuning/scalp_active_params.json"
        path = (
            Path(named)
            if named
            else runtime
            if runtime.exists()
            else (self.root / "configs/scalp_active_params.json")
        )
        doc = _load(path) if path.exists() else None
        return doc if isinstance(doc, dict) else {}
