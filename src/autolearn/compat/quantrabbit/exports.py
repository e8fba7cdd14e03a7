"""Write the QuantRabbit compat exports after every change of the runtime layer.

``StateStore`` calls :func:`export_after_apply` under its merged-view lock right after an apply,
a rollback, a restore or a recovery has been recorded (the one place every value change passes
through), so there is one writer and the exports follow the history's order. Each enabled file
(``config/autolearn_compat.yaml``) is rendered (``render.py``) and written atomically (temp file,
fsync, rename: a reader sees the old file or the new one, never half of one), only to an untracked
path in an ignored directory, never through a link.

An export that fails leaves the previous file in place and is recorded in
``mechanisms/compat.json`` (``failed``: file, path, error, version); ``autolearn status`` then
reports the run degraded and names the file. The apply itself is never undone by an export
failure: autolearn's own workers read ``effective.json``; only the original's are behind.

Versioned: every export carries the autolearn version id, and ``policy_overlay.json``'s integer
``version`` is a sequence number given once per autolearn version, so a rollback to a version
re-renders the bytes that version had.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from autolearn.adapters.atomic import atomic_write_bytes, ensure_dir
from autolearn.adapters.gitguard import ensure_state_dir_ignored, ensure_untracked
from autolearn.adapters.logs import get_logger
from autolearn.compat.quantrabbit.config import (
    EXPORT_FILES,
    CompatConfig,
    find_compat_config,
    load_compat_config,
)
from autolearn.compat.quantrabbit.health import compat_problems
from autolearn.compat.quantrabbit.render import ExportMeta, RenderError, render
from autolearn.core.timestamps import format_utc, parse_utc
from autolearn.errors import AutolearnError, ConfigError, StateError
from autolearn.settings import read_env_file

if TYPE_CHECKING:
    from autolearn.adapters.state import Effective, StateStore

__all__ = [
    "COMPAT_MECHANISM",
    "ExportOutcome",
    "compat_problems",
    "export_after_apply",
    "export_now",
]

COMPAT_MECHANISM = "compat"
EXPORT_MODE = 0o644  # the bot's workers read these (they may run as another user)
_KEEP_VERSIONS = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportOutcome:
    """What one export pass did: files written (name -> path) and files that failed (-> error)."""

    version: str
    written: Mapping[str, str] = field(default_factory=dict)
    failed: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def export_after_apply(
    store: StateStore, effective: Effective, now: datetime
) -> ExportOutcome | None:
    """The state store's hook: export when the bot's compat config switches a file on.

    Returns None when exports are off (no config, or every file off). Never raises for a
    failed export (it is recorded, see the module docstring); a compat config that does not
    parse is recorded the same way, naming the config file.
    """
    path = find_compat_config(store.root, _environment())
    if path is None:
        return None
    try:
        config = load_compat_config(path)
    except ConfigError as exc:
        _record(store, effective.version, now, {}, {"config": (str(path), str(exc))})
        return ExportOutcome(version=effective.version, failed={"config": str(exc)})
    if not config.is_on:
        return None
    try:
        return export_now(store, effective, now, config)
    except StateError as exc:  # even recording the outcome failed (a full disk): say so loudly
        get_logger("autolearn.compat").error(
            "compat_export_unrecorded", version=effective.version, error=str(exc)
        )
        return ExportOutcome(version=effective.version, failed={"state": str(exc)})


def _environment() -> dict[str, str]:
    """The process environment over the env file the units load (as every command reads it)."""
    try:
        _, pairs = read_env_file(os.environ)
    except ConfigError:
        pairs = {}  # an unreadable env file is the command's own error to report, not the hook's
    return {**pairs, **os.environ}


def export_now(
    store: StateStore, effective: Effective, now: datetime, config: CompatConfig
) -> ExportOutcome:
    """Render and write every enabled export of ``effective``; record the outcome."""
    state = store.read_mechanism(COMPAT_MECHANISM)
    versions = dict(state.get("versions") or {})
    meta = _meta(versions, effective.version, now)
    values = {**store.registry.defaults(), **effective.values}
    written: dict[str, tuple[str, str]] = {}
    failed: dict[str, tuple[str, str]] = {}
    for name in EXPORT_FILES:
        if name not in config.enabled:
            continue
        target = config.files.get(name)
        if target is None:
            failed[name] = ("", f"no path for {name} in the compat mapping")
            continue
        try:
            data = render(
                name,
                base=_base(name, config),
                values=values,
                pockets=store.registry.pockets,
                config=config,
                meta=meta,
            )
            _write_export(target, data)
        except (RenderError, AutolearnError) as exc:
            failed[name] = (str(target), str(exc))
            continue
        written[name] = (str(target), hashlib.sha256(data).hexdigest()[:16])
    _record(
        store,
        effective.version,
        now,
        written,
        failed,
        versions=versions,
        meta=meta,
        enabled=config.enabled,
    )
    return ExportOutcome(
        version=effective.version,
        written={k: v[0] for k, v in written.items()},
        failed={k: f"{v[0]}: {v[1]}" for k, v in failed.items()},
    )


def _meta(versions: dict[str, Any], version: str, now: datetime) -> ExportMeta:
    known = versions.get(version)
    if isinstance(known, dict) and isinstance(known.get("seq"), int) and known.get("first_at"):
        first = parse_utc(str(known["first_at"]))
        seq = int(known["seq"])
    else:
        seq = 1 + max(
            (int(v.get("seq", 0)) for v in versions.values() if isinstance(v, dict)), default=0
        )
        first = now
        versions[version] = {"seq": seq, "first_at": format_utc(now)}
    return ExportMeta(
        version=version, seq=seq, generated_at=format_utc(first), generated_ts=first.timestamp()
    )


def _base(name: str, config: CompatConfig) -> dict[str, Any] | None:
    """The tracked base document of ``name`` (presets, scalp params, policy), read-only."""
    path = {
        "tuning_overlay": config.presets,
        "scalp_active_params": config.scalp_base,
        "policy_overlay": config.policy_base,
    }[name]
    if path is None or not path.exists():
        return None
    try:
        text = path.read_text(encoding="utf-8")
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the base of {name}: {exc}") from exc
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: the base of {name} must be a mapping, got {type(doc).__name__}")
    return doc


def _write_export(target: Path, data: bytes) -> None:
    """Atomic write of one export; refuses a tracked path, a link and a non-ignored directory."""
    if target.is_symlink():
        raise StateError(f"{target} is a symbolic link; autolearn never writes through links")
    ensure_dir(target.parent)
    ensure_state_dir_ignored(target.parent)
    ensure_untracked([target])
    atomic_write_bytes(target, data, mode=EXPORT_MODE)


def _record(
    store: StateStore,
    version: str,
    now: datetime,
    written: Mapping[str, tuple[str, str]],
    failed: Mapping[str, tuple[str, str]],
    *,
    versions: dict[str, Any] | None = None,
    meta: ExportMeta | None = None,
    enabled: frozenset[str] | None = None,
) -> None:
    state = store.read_mechanism(COMPAT_MECHANISM)
    exports = {
        name: entry
        for name, entry in (state.get("exports") or {}).items()
        if enabled is None or name in enabled  # a file switched off is no longer tracked
    }
    for name, (path, digest) in written.items():
        exports[name] = {"path": path, "version": version, "sha256": digest, "at": format_utc(now)}
    kept = dict(versions if versions is not None else state.get("versions") or {})
    if len(kept) > _KEEP_VERSIONS:  # oldest first out; a rollback that far re-sequences
        kept = dict(sorted(kept.items(), key=lambda kv: int(kv[1].get("seq", 0)))[-_KEEP_VERSIONS:])
    store.write_mechanism(
        COMPAT_MECHANISM,
        {
            "versions": kept,
            "exports": exports,
            "failed": {
                name: {"path": path, "error": error, "version": version, "at": format_utc(now)}
                for name, (path, error) in failed.items()
            },
            "last_version": version,
            "last_seq": meta.seq if meta else None,
            "at": format_utc(now),
        },
    )
