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

With shared state (``shared``: ``AUTOLEARN_STATE_URL``) the layer is read from PostgreSQL, where
every host's workers read it: a background thread checks its write number every ``refresh_s``
and reloads it when it changed, so a ``get`` never waits on the network (only the very first,
at start-up, reads it in the caller's thread: up to the connect timeout if the server is down).
Each new layer is copied into the host's ``effective.json``. It also records what
this process serves (``state_hosts``, on every change and every minute) for ``status`` to
compare hosts. A server that does not answer leaves the last good version served, ``degraded``;
a cold start without it serves the host's replica (``effective.json``), degraded too.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autolearn.adapters.history import HistoryFile
from autolearn.adapters.logs import get_logger
from autolearn.adapters.state import Effective, StateStore
from autolearn.core.arms import CANDIDATE, LKG, ArmSplit, arm_key
from autolearn.core.knobs import KnobValue, problems_with_value
from autolearn.core.registry import Registry
from autolearn.errors import AutolearnError, StateError

if TYPE_CHECKING:
    from autolearn.adapters.shared_state import SharedState

__all__ = ["LEGACY_FILES", "Arm", "Explanation", "Tuning", "flatten"]

LEGACY_FILES = (
    "config/tuning_overlay.yaml",
    "config/tuning_overrides.yaml",
    "configs/scalp_active_params.json",
)
_MISSING: Any = object()
_RETRY_DEGRADED_S = 30.0  # a degraded loader retries an unchanged file this often
_HEARTBEAT_S = 60.0  # a shared-state worker says which version it serves at least this often


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
        shared: SharedState | None = None,
    ) -> None:
        self._store = StateStore(state_dir, registry, shared=shared)
        self._shared = shared
        self._local = StateStore(state_dir, registry) if shared is not None else self._store
        self._refreshing = False
        self._beat_at = float("-inf")
        self._beat_version = ""
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
            if self._shared is not None and self._view is not None:
                if not self._refreshing:  # the network is the thread's, never the caller's
                    self._refreshing = True
                    try:
                        threading.Thread(target=self._refresh_shared, daemon=True).start()
                    except RuntimeError:  # no thread to be had now: the next call tries again
                        self._refreshing = False
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

    def _refresh_shared(self) -> None:
        """The refresh of a shared-state reader (one at a time; ``_refreshing`` is set).

        The network reads happen outside ``_lock``: a ``get`` meanwhile serves the view it
        holds, however slow the server. Only installing the new view takes the lock.
        """
        try:
            now = self._clock()
            stamp = self._stat()
            with self._lock:
                retry = self.degraded is not None and now - self._loaded_at >= _RETRY_DEGRADED_S
                changed = stamp != self._stamp or retry
            if changed:
                try:
                    effective = self._store.read_effective()
                except AutolearnError as exc:
                    with self._lock:
                        self._stamp, self._loaded_at = stamp, now
                        self._degrade(f"shared state unreadable: {exc}")
                    return
                with self._lock:
                    self._loaded_at = now
                    installed = self._install(stamp, effective)
                if installed:
                    self._keep_replica(effective)
            view = self._view
            if view is not None:
                self._heartbeat(view.version)
        except Exception as exc:  # a thread's error must reach the log, never the bot
            with self._lock:
                self._degrade(f"shared state unreadable: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._checked_at = self._clock()  # the next check: refresh_s after this one
                self._refreshing = False

    def _keep_replica(self, effective: Effective) -> None:
        """Copy a newly served shared layer into this host's ``effective.json`` (a cold start
        while the server is down serves it); a dir the bot cannot write is logged, not raised."""
        try:
            current = self._local.read_effective(allow_lost=True)
        except AutolearnError:
            current = None
        if current is not None and current.version == effective.version:
            return
        try:
            self._local.write_replica_effective(effective)
        except Exception as exc:  # the copy is a convenience: serving goes on without it
            with contextlib.suppress(Exception):
                self._log.warning("state_replica_not_written", error=str(exc))

    def _heartbeat(self, version: str) -> None:
        """Tell ``status`` which version this process serves (on change, and every minute)."""
        now = self._clock()
        if self._shared is None or (
            version == self._beat_version and now - self._beat_at < _HEARTBEAT_S
        ):
            return
        try:
            self._shared.heartbeat("worker", version)
        except AutolearnError as exc:  # status then misses this process: logged, not degraded
            with contextlib.suppress(Exception):
                self._log.warning("state_heartbeat_failed", error=str(exc))
            return
        self._beat_at, self._beat_version = now, version

    def refresh(self) -> None:
        """Check the runtime state now (shared state: in this thread), whatever ``refresh_s``."""
        if self._shared is not None and self._view is not None:
            deadline = time.monotonic() + 60.0
            while True:  # after the background refresh in flight, if any
                with self._lock:
                    if not self._refreshing:
                        self._refreshing = True
                        break
                if time.monotonic() > deadline:
                    return
                time.sleep(0.005)
            self._refresh_shared()
            return
        with self._lock:
            self._checked_at = float("-inf")
        self._current()

    def _stat(self) -> tuple[int, int] | None:
        if self._shared is not None:  # raises when unreachable: the caller degrades
            seq = self._shared.stamp("effective.json")
            return None if seq is None else (seq, 0)
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
        if self._install(stamp, effective) and self._shared is not None:
            self._keep_replica(effective)  # the cold start's read: this host's copy follows

    def _install(self, stamp: tuple[int, int] | None, effective: Effective) -> bool:
        """Serve ``effective`` unless the registry refuses a value (the caller holds _lock)."""
        self._stamp = stamp
        problems = self._served_problems(effective.values, effective.arms)
        if problems:
            self._degrade(
                f"runtime state {self._store.effective_path} serves values the registry "
                f"refuses ({'; '.join(problems[:5])}); not served"
            )
            return False
        self._view = _View(
            effective.version,
            effective.values,
            effective.sources,
            effective.arms,
            effective.arm_versions,
        )
        self.degraded = None
        return True

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
        if self._view is None and self._shared is not None:
            with contextlib.suppress(AutolearnError):  # this host's replica of the shared layer
                replica = self._local.read_effective()
                if not self._served_problems(replica.values, replica.arms):
                    self._view = _View(
                        replica.version,
                        replica.values,
                        replica.sources,
                        replica.arms,
                        replica.arm_versions,
                    )
        if self._view is None:
            self._view = self._recover_from_history()

    def _kept(self) -> str:
        return self._view.version if self._view else "history or presets"

    def _recover_from_history(self) -> _View:
        """Cold start on a corrupt or lost file: the last recorded version's snapshot, else presets.

        A recovered value the registry refuses is dropped (its preset is served instead).
        """
        try:
            records = HistoryFile(self._local.history.path).read().records
        except StateError as exc:
            self.degraded = f"{self.degraded}; history unreadable too: {exc}"
            records = []
        for record in reversed(records):
            version = record.get("version_after")
            if isinstance(version, str) and record.get("applied") is True:
                try:
                    snapshot = self._local.read_snapshot(version)
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
