"""The three files QuantRabbit's unchanged workers read, rendered from knob values.

- ``tuning_overlay.yaml`` (read by ``utils/tuning_loader.get_tuning_value((...))``, 3.3): the
  bot's tracked presets deep-merged with every mapped knob's value (defaults included, so no
  key falls through to a stale legacy layer), nested by the original's key path, plus ``meta``
  (the loader ignores nothing, but no worker asks for ``meta``);
- ``policy_overlay.json`` (a PolicySnapshot read by ``analysis/policy_bus.latest()``, 3.4):
  ``pockets.<p>.entry_gates.allow_new`` from ``pockets.<p>.allow_new``, the pocket's strategy
  allow-list when a strategy is blocked, ``version`` and ``notes``;
- ``scalp_active_params.json`` (read whole by M1Scalper, 3.8): the tracked base file with the
  mapped values merged in.

Deterministic: the same values, bases and ``ExportMeta`` give the same bytes, which is what
makes a rollback restore the previous export byte for byte. Pure: no I/O, no clock.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from autolearn.compat.quantrabbit.config import CompatConfig
from autolearn.core.knob_names import strategy_from_key

__all__ = [
    "NO_STRATEGY",
    "ExportMeta",
    "RenderError",
    "render",
    "render_policy_overlay",
    "render_scalp_params",
    "render_tuning_overlay",
]

# An allow-list entry no strategy tag matches: every strategy of a pocket is blocked (an empty
# list would mean "all allowed" to policy_bus).
NO_STRATEGY = "autolearn:none"


class RenderError(ValueError):
    """The values cannot be expressed in the original's shape (nothing is written)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportMeta:
    """What identifies an export: the autolearn version and its stable sequence number."""

    version: str  # autolearn's effective version id
    seq: int  # PolicySnapshot.version: assigned once per autolearn version, so stable on rollback
    generated_at: str  # when this version was first exported (UTC ISO)
    generated_ts: float  # the same instant, epoch seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "source": "autolearn",
            "autolearn_version": self.version,
            "generated_at": self.generated_at,
        }


def _set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    node = doc
    parts = path.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def _mapped(values: Mapping[str, Any], config: CompatConfig, file: str) -> dict[str, Any]:
    """Original path -> value of every knob mapped into ``file`` (sorted, so stable)."""
    out: dict[str, Any] = {}
    for knob in sorted(values):
        entry = config.path_of(knob)
        if entry is None or entry.file != file:
            continue
        path = entry.resolve(knob)
        if path is not None and not path.endswith(".strategies"):
            out[path] = values[knob]
    return out


def render_tuning_overlay(
    presets: Mapping[str, Any], values: Mapping[str, Any], config: CompatConfig, meta: ExportMeta
) -> bytes:
    """The nested overlay: presets, then every mapped knob's value at its original path."""
    doc: dict[str, Any] = copy.deepcopy(dict(presets))
    for path, value in _mapped(values, config, "tuning_overlay").items():
        _set_path(doc, path, value)
    doc["meta"] = meta.to_json()
    text = yaml.safe_dump(doc, sort_keys=True, default_flow_style=False, allow_unicode=True)
    return text.encode("utf-8")


def render_scalp_params(
    base: Mapping[str, Any], values: Mapping[str, Any], config: CompatConfig, meta: ExportMeta
) -> bytes:
    """The whole ``scalp_active_params.json``: the tracked base with the mapped values merged."""
    doc: dict[str, Any] = copy.deepcopy(dict(base))
    for path, value in _mapped(values, config, "scalp_active_params").items():
        _set_path(doc, path, value)
    doc["meta"] = meta.to_json()
    return (json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def _default_pocket() -> dict[str, Any]:
    return {
        "enabled": True,
        "bias": "neutral",
        "entry_gates": {"allow_new": True},
        "strategies": [],
    }


def _strategy_blocks(values: Mapping[str, Any], pocket: str) -> tuple[set[str], set[str]]:
    """(blocked, explicitly allowed) strategy names of ``pocket`` from its strategy knobs."""
    prefix, suffix = f"pockets.{pocket}.strategies.", ".allow_new"
    blocked: set[str] = set()
    allowed: set[str] = set()
    for knob, value in values.items():
        if knob.startswith(prefix) and knob.endswith(suffix):
            name = strategy_from_key(knob[len(prefix) : -len(suffix)])
            (allowed if value else blocked).add(name)
    return blocked, allowed


def render_policy_overlay(
    base: Mapping[str, Any] | None,
    values: Mapping[str, Any],
    pockets: tuple[str, ...],
    config: CompatConfig,
    meta: ExportMeta,
) -> bytes:
    """The PolicySnapshot: ``allow_new`` per pocket and the allow-list of blocked strategies.

    Raises:
        RenderError: a strategy is blocked in a pocket whose strategies the compat config does
            not list (an allow-list of the unknown rest cannot be written; blocking the whole
            pocket instead would block more than autolearn decided).
    """
    doc: dict[str, Any] = copy.deepcopy(dict(base)) if base else {}
    raw_pockets = doc.get("pockets")
    doc_pockets: dict[str, Any] = dict(raw_pockets) if isinstance(raw_pockets, dict) else {}
    blocked_notes: dict[str, list[str]] = {}
    for pocket in pockets:
        entry = doc_pockets.get(pocket)
        node = {**_default_pocket(), **(entry if isinstance(entry, dict) else {})}
        doc_pockets[pocket] = node
        blocked, allowed = _strategy_blocks(values, pocket)
        if not blocked:
            continue
        known = set(config.pocket_strategies.get(pocket, ()))
        if not known:
            raise RenderError(
                f"pocket {pocket}: strategies {sorted(blocked)} are blocked, but "
                f"quantrabbit.pocket_strategies.{pocket} in {config.source} lists none: the "
                "allow-list of the pocket's other strategies cannot be written"
            )
        listed = sorted((known | allowed) - blocked)
        node["strategies"] = listed or [NO_STRATEGY]
        blocked_notes[pocket] = sorted(blocked)
    doc["pockets"] = doc_pockets
    for path, value in _mapped(values, config, "policy_overlay").items():
        _set_path(doc, path, value)
    notes = doc.get("notes")
    doc["notes"] = {
        **(notes if isinstance(notes, dict) else {}),
        **meta.to_json(),
        "policy_id": f"autolearn-{meta.version}",
        "policy_source": "autolearn",
        "autolearn_blocked_strategies": blocked_notes,
    }
    doc["version"] = meta.seq
    doc["generated_ts"] = meta.generated_ts
    doc["policy_id"] = f"autolearn-{meta.version}"
    return (json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def render(
    file: str,
    *,
    base: Mapping[str, Any] | None,
    values: Mapping[str, Any],
    pockets: tuple[str, ...],
    config: CompatConfig,
    meta: ExportMeta,
) -> bytes:
    """The bytes of export ``file`` (one of ``EXPORT_FILES``)."""
    if file == "tuning_overlay":
        return render_tuning_overlay(base or {}, values, config, meta)
    if file == "scalp_active_params":
        return render_scalp_params(base or {}, values, config, meta)
    if file == "policy_overlay":
        return render_policy_overlay(base, values, pockets, config, meta)
    raise RenderError(f"unknown export file {file!r}")
