"""The worker runtime API: read knob values, explain them, pin the config version.

Layers, first hit wins per key:

1. runtime state   ``<state_dir>/effective.json`` (written only by the state store)
2. presets         the tracked registry's defaults
3. legacy files    ``config/tuning_overlay.yaml``, ``config/tuning_overrides.yaml``,
                   ``configs/scalp_active_params.json`` under the bot root: read-only, for keys
                   a legacy config still carries (e.g. ``strategies.RangeRevertLite.*``)

While a change is in flight with concurrent arms, ``get(key, unit=order_id)`` serves the
candidate values to the flight's share of units and the last-known-good values to the rest, by
a stable hash of the unit id (``autolearn.core.arms``); ``arm(unit).version`` is the version the
bot pins on that order and its trade, so the judge compares both arms over the same hours. A
call without ``unit`` gets the candidate (the weaker before/after comparison, for a bot that
cannot pass a unit id).

A tuned ``0`` or ``false`` is a value (the original's ``x or default`` idiom turned a tuned 0 into
600 ms). Reads are cheap: the runtime file is re-``stat``-ed at most every ``refresh_s`` and
re-parsed only when its mtime/size changes. A torn or corrupt runtime file never falls through to
stale legacy values: the loader keeps the last good version in memory, logs an error, and reports
itself ``degraded``; at a cold start it recovers the version named by the last history record.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autolearn.adapters.history import HistoryFile
from autolearn.adapters.logs import get_logger
from autolearn.adapters.state import StateStore
from autolearn.core.arms import CANDIDATE, LKG, ArmSplit, arm_key
from autolearn.core.knobs import KnobValue, problems_with_value
from autolearn.core.registry import Registry
from autolearn.errors import AutolearnError, StateError

__all__ = ["LEGACY_FILES", "Arm", "Explanation", "Tuning", "flatten"]

LEGACY_FILES = (
    "config/tuning_overlay.yaml",
    "config/tuning_overrides.yaml",
    "configs/scalp_active_params.json",
)
_MISSING: Any = object()
_RETRY_DEGRADED_S = 30.0  # a degraded loader retries an unchanged file this often


def flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings to dotted keys (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``); ``meta`` dropped."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if not prefix and key == "meta":
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


@dataclass(frozen=True, slots=True)
class Explanation:
    """Where a value came from."""

    key: str
    value: Any
    layer: str  # runtime | preset | legacy:<path> | missing
    version: str
    changed_at: str | None = None
    writer: str | None = None
    degraded: str | None = None


@dataclass(frozen=True, slots=True)
class Arm:
    """What one unit (an order or signal id) sees while changes are in flight."""

    unit: str
    version: str  # pin this on the order and its trade
    arms: dict[str, str]  # family -> "candidate" | "baseline" (empty: nothing in flight)


@dataclass(frozen=True, slots=True)
class _View:
    version: str
    values: dict[str, KnobValue]
    sources: dict[str, dict[str, str]]
    arms: tuple[ArmSplit, ...] = ()
    arm_versions: dict[str, str] | None = None

    def for_unit(self, unit: str | None) -> tuple[str, str, dict[str, KnobValue]]:
        """(arm key, version, overrides) of ``unit``; the candidate for no unit."""
        if unit is None or not self.arms:
            return "", self.version, {}
        key = arm_key(self.arms, unit)
        if "b" not in key:
            return key, self.version, {}
        overrides: dict[str, KnobValue] = {}
        for split, letter in zip(self.arms, key, strict=True):
            if letter == "b":
                overrides.update(split.baseline)
        return key, (self.arm_versions or {}).get(key, self.version), overrides


class Tuning:
    """Knob values for a worker process. Thread-safe; never raises on a corrupt state file."""

    def __init__(
        self,
        state_dir: Path,
        registry: Registry,
        *,
        bot_root: Path | None = None,
        refresh_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = StateStore(state_dir, registry)
        self._registry = registry
        self._presets = registry.defaults()
        self._legacy = self._load_legacy(bot_root) if bot_root else []
        self._refresh_s = refresh_s
        self._clock = clock
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._loaded_at = float("-inf")
        self._stamp: tuple[int, int] | None = None
        self._view: _View | None = None
        self.degraded: str | None = None
        self._log = get_logger("autolearn.runtime")

    # -- public API -------------------------------------------------------------------------
    def get(self, key: str, default: Any = _MISSING, *, unit: str | None = None) -> Any:
        """The value of ``key`` for ``unit``; ``default`` (or ``KeyError``) only if no layer has it.

        ``unit`` is the id of the order or signal the value is for (see :meth:`arm`).
        """
        view = self._current()
        if unit is not None and view.arms:
            _, _, overrides = view.for_unit(unit)
            if key in overrides:
                return overrides[key]
        if key in view.values:
            return view.values[key]
        if key in self._presets:
            return self._presets[key]
        spec = self._registry.find(key)
        if spec is not None:
            return spec.default
        for _, values in self._legacy:
            if key in values:
                return values[key]
        if default is _MISSING:
            raise KeyError(f"{key!r}: not registered, not in presets or legacy files")
        return default

    def explain(self, key: str) -> Explanation:
        """Which layer ``key`` comes from, at which version, written when and by whom."""
        view = self._current()
        if key in view.values:
            source = view.sources.get(key, {})
            return Explanation(
                key,
                view.values[key],
                "runtime",
                view.version,
                source.get("at"),
                source.get("writer"),
                self.degraded,
            )
        spec = self._registry.find(key)
        if spec is not None:
            return Explanation(key, spec.default, "preset", view.version, None, None, self.degraded)
        for path, values in self._legacy:
            if key in values:
                return Explanation(
                    key, values[key], f"legacy:{path}", view.version, None, None, self.degraded
                )
        return Explanation(key, None, "missing", view.version, None, None, self.degraded)

    def arm(self, unit: str) -> Arm:
        """The arm ``unit`` is in for every change in flight, and the version to pin for it.

        Stable: the same unit gets the same answer for as long as the flights run.
        """
        view = self._current()
        key, version, _ = view.for_unit(unit)
        arms = {
            split.family: CANDIDATE if letter == "c" else LKG
            for split, letter in zip(view.arms, key, strict=True)
        }
        return Arm(unit, version, arms)

    def version_for(self, unit: str) -> str:
        """``arm(unit).version`` alone, without building the arms (asked per bar and strategy)."""
        return self._current().for_unit(unit)[1]

    def values_for(self, unit: str) -> dict[str, Any]:
        """Every registered knob's value as ``unit`` sees it (one consistent version)."""
        view = self._current()
        _, _, overrides = view.for_unit(unit)
        return {**self._presets, **view.values, **overrides}

    @property
    def config_version(self) -> str:
        """The version id the bot pins on each order and trade."""
        return self._current().version

    def values(self) -> dict[str, Any]:
        """Every registered knob's value (one consistent version)."""
        view = self._current()
        return {**self._presets, **view.values}

    # -- loading ----------------------------------------------------------------------------
    def _current(self) -> _View:
        now = self._clock()
        with self._lock:
            if self._view is not None and now - self._checked_at < self._refresh_s:
                return self._view
            self._checked_at = now
            try:
                stamp = self._stat()
                retry = self.degraded is not None and now - self._loaded_at >= _RETRY_DEGRADED_S
                if self._view is not None and stamp == self._stamp and not retry:
                    return self._view
                self._loaded_at = now
                self._reload(stamp)
            except Exception as exc:  # the bot must never see an exception from a read
                self._degrade(f"runtime state unreadable: {type(exc).__name__}: {exc}")
            if self._view is None:  # even the recovery failed: presets, loudly
                self._view = _View(self._store.base_version(), {}, {})
            return self._view

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self._store.effective_path.lstat()  # a link is a change too (and refused)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _reload(self, stamp: tuple[int, int] | None) -> None:
        # Re-read when the file changes, and after a failure at most every _RETRY_DEGRADED_S
        # (a lost file would otherwise mean a history scan on every refresh).
        self._stamp = stamp
        try:
            effective = self._store.read_effective()
        except AutolearnError as exc:
            self._degrade(f"runtime state unreadable: {exc}")
            return
        problems = self._served_problems(effective.values, effective.arms)
        if problems:
            self._degrade(
                f"runtime state {self._store.effective_path} serves values the registry "
                f"refuses ({'; '.join(problems[:5])}); not served"
            )
            return
        self._view = _View(
            effective.version,
            effective.values,
            effective.sources,
            effective.arms,
            effective.arm_versions,
        )
        self.degraded = None

    def _served_problems(
        self, values: Mapping[str, Any], arms: tuple[ArmSplit, ...] = ()
    ) -> list[str]:
        """Why any value a worker would be served is not a legal value of its knob."""
        found: list[str] = []
        layers = [("values", values)] + [(f"arm {a.family} baseline", a.baseline) for a in arms]
        for where, layer in layers:
            for knob, value in layer.items():
                spec = self._registry.find(knob)
                if spec is not None:
                    found += [f"{where} {knob}: {p}" for p in problems_with_value(spec, value)]
        return found

    def _degrade(self, reason: str) -> None:
        if self.degraded != reason:
            with contextlib.suppress(Exception):  # logging must not break the promise
                self._log.error("runtime_state_unreadable", reason=reason, kept=self._kept())
        self.degraded = reason
        if self._view is None:
            self._view = self._recover_from_history()

    def _kept(self) -> str:
        return self._view.version if self._view else "history or presets"

    def _recover_from_history(self) -> _View:
        """Cold start on a corrupt or lost file: the last recorded version's snapshot, else presets.

        A recovered value the registry refuses is dropped (its preset is served instead).
        """
        try:
            records = HistoryFile(self._store.history.path).read().records
        except StateError as exc:
            self.degraded = f"{self.degraded}; history unreadable too: {exc}"
            records = []
        for record in reversed(records):
            version = record.get("version_after")
            if isinstance(version, str) and record.get("applied") is True:
                try:
                    snapshot = self._store.read_snapshot(version)
                    raw = snapshot.get("values", {})
                    values = dict(raw) if isinstance(raw, Mapping) else {}
                except (StateError, TypeError, ValueError):
                    continue
                clean = {k: v for k, v in values.items() if not self._served_problems({k: v})}
                return _View(version, clean, {})
        return _View(self._store.base_version(), {}, {})

    @staticmethod
    def _load_legacy(bot_root: Path) -> list[tuple[str, dict[str, Any]]]:
        import yaml  # local: only legacy files need it at runtime

        layers: list[tuple[str, dict[str, Any]]] = []
        for rel in LEGACY_FILES:
            path = bot_root / rel
            try:
                text = path.read_text(encoding="utf-8")
                doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
            except FileNotFoundError:
                continue
            except (OSError, ValueError, yaml.YAMLError) as exc:
                get_logger("autolearn.runtime").error(
                    "legacy_file_unreadable", path=rel, error=str(exc)
                )
                continue
            if isinstance(doc, Mapping):
                layers.append((rel, flatten(doc)))
        return layers
