"""The runtime state store: the only way any knob value changes.

Layout of the state directory (untracked; default ``logs/tuning/`` under the bot checkout)::

    effective.json            merged runtime layer every worker reads (version, values, sources,
                              the concurrent arms of changes in flight)
    snapshots/<version>.json  immutable, content-addressed: the runtime values of each version
    mechanisms/<name>.json    per-mechanism state (mode, LKG, in-flight change, counters)
    control.json              operator switches (freeze/unfreeze with reason)
    history.jsonl             append-only run records (one per run, every mechanism)
    locks/<name>.lock         flock files: one per mechanism, one for the merged view

Every file carries ``schema_version``; a newer one is refused. Writes are atomic and refuse any
path git tracks. ``apply()`` runs the pure apply guard under the merged-view lock, writes the new
snapshot and ``effective.json``, then appends the run record; if a crash lands between the
last two, the next ``apply()`` finds the unrecorded version and appends it (``recovered``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autolearn.adapters.atomic import atomic_write_bytes, ensure_dir, remove_stale_temp_files
from autolearn.adapters.files import read_regular, refuse_linked_dirs
from autolearn.adapters.gitguard import ensure_state_dir_ignored, ensure_untracked, tracked_under
from autolearn.adapters.history import HistoryFile, RotationPolicy
from autolearn.adapters.locks import file_lock
from autolearn.core.apply_guard import ApplyKind, KnobChange, KnobDecision, guard_changes
from autolearn.core.arms import ArmSplit, arm_layers
from autolearn.core.knobs import KnobSpec, KnobType, KnobValue, Owner
from autolearn.core.registry import Registry
from autolearn.core.timestamps import TimestampError, format_utc, parse_utc
from autolearn.errors import StateError

if TYPE_CHECKING:  # the SQL of the run locks loads only when AUTOLEARN_LOCK_URL is set
    from autolearn.adapters.pg_lock import RunLocks

__all__ = [
    "STATE_SCHEMA_VERSION",
    "ApplyResult",
    "Effective",
    "StateStore",
    "presets_digest",
    "version_of",
]

STATE_SCHEMA_VERSION = 1
_MECHANISM_NAME = frozenset(o.value for o in Owner) | {
    "reconcile",
    "gates",
    "replay",
    "compat",  # the QuantRabbit compat exports (autolearn.compat.quantrabbit.exports)
    "follow",  # watermarks of followed trades.db files (autolearn.importers.follow)
}
_KEEP_CHANGES = timedelta(days=2)
# locks of this host's files, never taken across hosts (the rest are mechanisms' run locks)
_LOCAL_LOCKS = frozenset({"effective", "control"})


def presets_digest(registry: Registry) -> str:
    """Fingerprint of the registry's defaults (the presets), not of its comments or docs."""
    canonical = json.dumps(registry.defaults(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def version_of(values: Mapping[str, KnobValue], presets: str = "") -> str:
    """Content address of an effective config: runtime overrides *and* the presets under them.

    The same overrides over different presets are different configs (a deploy that changes a
    default must not keep the version id the judge attributes trades by), so the presets'
    digest is part of the address.
    """
    payload: dict[str, Any] = {"values": dict(values), "presets": presets}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return "v" + hashlib.sha256(canonical.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Effective:
    """The merged runtime layer: overrides of the registry defaults, with their provenance."""

    version: str
    values: dict[str, KnobValue]
    sources: dict[str, dict[str, str]] = field(default_factory=dict)
    changes: dict[str, list[KnobChange]] = field(default_factory=dict)
    updated_at: datetime | None = None
    last_record: dict[str, Any] | None = None
    # history position when ``last_record`` was about to be appended: recovery scans from here
    last_record_offset: int = 0
    presets: str = ""  # digest of the registry defaults this version was addressed with
    # concurrent arms of changes in flight (empty: every entry sees ``values``)
    arms: tuple[ArmSplit, ...] = ()
    # arm key ("cb": first split on its candidate, second on its baseline) -> version id
    arm_versions: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        arms = {"arms": [a.to_json() for a in self.arms]} if self.arms else {}
        return arms | {
            "schema_version": STATE_SCHEMA_VERSION,
            "version": self.version,
            "values": dict(sorted(self.values.items())),
            "sources": dict(sorted(self.sources.items())),
            "changes": {
                k: [{"at": format_utc(c.at), "before": c.before, "after": c.after} for c in v]
                for k, v in sorted(self.changes.items())
            },
            "updated_at": format_utc(self.updated_at) if self.updated_at else None,
            "last_record": self.last_record,
            "last_record_offset": self.last_record_offset,
            "presets": self.presets,
        }


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What an apply did: per-knob decisions, versions and the diff of adopted values."""

    decisions: list[KnobDecision]
    version_before: str
    version_after: str
    diff: list[dict[str, Any]]

    @property
    def applied(self) -> bool:
        return bool(self.diff)


class StateStore:
    """Runtime state under ``state_dir`` for the knobs of ``registry``."""

    def __init__(
        self,
        state_dir: Path,
        registry: Registry,
        history_policy: RotationPolicy | None = None,
        *,
        run_locks: RunLocks | None = None,
    ) -> None:
        self.root = Path(state_dir)
        # the mechanisms' locks across hosts (None: this host's flocks only)
        self.run_locks = run_locks
        self.registry = registry
        self.effective_path = self.root / "effective.json"
        self.snapshots_dir = self.root / "snapshots"
        self.mechanisms_dir = self.root / "mechanisms"
        self.control_path = self.root / "control.json"
        self.history = HistoryFile(self.root / "history.jsonl", history_policy)
        self.locks_dir = self.root / "locks"
        self.presets = presets_digest(registry)
        self._root_checked = False
        # (bytes of effective.json, its parsed and verified layer): every cycle reads the layer
        # several times and it rarely changes; the bytes are compared on every read, so a write
        # by any process is seen at once
        self._effective_memo: tuple[bytes, Effective] | None = None
        # version -> (bytes of its snapshot, the verified document): the tuner reads the
        # snapshots of every version its window's trades ran under, every cycle
        self._snapshot_memo: dict[str, tuple[bytes, dict[str, Any]]] = {}
        self._base_version: tuple[str | None, str] = (None, "")

    # -- locks -------------------------------------------------------------------------------
    @contextmanager
    def lock(self, name: str, *, timeout_s: float = 0.0) -> Iterator[None]:
        """Exclusive lock ``name`` (a mechanism, ``effective`` or ``control``).

        With ``run_locks``, a mechanism's lock is also taken on PostgreSQL, after the flock (a
        second run on this host finds it busy without the network). ``effective`` and
        ``control`` guard this host's files and stay flocks. ``LockBusy`` when held;
        ``LockUnavailable`` when the lock database does not answer (nothing runs).
        """
        if not name.replace("_", "").isalnum():
            raise StateError(f"invalid lock name {name!r}")
        self._check_root()
        path = self.locks_dir / f"{name}.lock"
        refuse_linked_dirs(self.root, path)
        deadline = time.monotonic() + timeout_s
        with file_lock(path, timeout_s=timeout_s):
            if self.run_locks is None or name in _LOCAL_LOCKS:
                yield
                return
            left = max(0.0, deadline - time.monotonic())  # one wait for both locks
            with self.run_locks.hold(name, timeout_s=left):
                yield

    # -- reading -----------------------------------------------------------------------------
    def version_of(self, values: Mapping[str, KnobValue]) -> str:
        """The version id of ``values`` over this registry's presets."""
        return version_of(values, self.presets)

    def base_version(self) -> str:
        """The version of the presets alone (no runtime override)."""
        if self._base_version[0] != self.presets:  # asked several times a cycle: hashed once
            self._base_version = (self.presets, self.version_of({}))
        return self._base_version[1]

    def read_effective(self, *, allow_lost: bool = False) -> Effective:
        """The current merged runtime layer (empty = presets only). Strict: corrupt -> error.

        After a deploy changed the presets, the stored layer is *rebased*: same overrides, new
        version id (its snapshot is synthesized on read and written by the next apply).
        """
        raw = read_regular(self.effective_path)
        if raw is None:
            if not allow_lost:
                self._refuse_lost_effective()
            return Effective(version=self.base_version(), values={}, presets=self.presets)
        memo = self._effective_memo
        if memo is not None and memo[0] == raw:
            return _fresh(memo[1])  # the same bytes parse and verify to the same layer
        effective = self._parse_verified(raw)
        self._effective_memo = (raw, effective)
        return _fresh(effective)

    def _parse_verified(self, raw: bytes) -> Effective:
        doc = self._decode_json(self.effective_path, raw)
        effective = _parse_effective(doc, self.effective_path)
        values = effective.values
        if version_of(values, effective.presets) != effective.version:
            raise StateError(
                f"{self.effective_path}: values do not match version {effective.version} "
                "(edited by hand?); restore the last good version with `autolearn recover "
                "--reason R` (or `recover --to VERSION`)"
            )
        if effective.presets != self.presets:  # presets changed by a deploy: rebase
            effective = replace(effective, version=self.version_of(values), presets=self.presets)
        return self._with_arm_versions(effective)

    def last_recorded_version(self) -> str | None:
        """The ``version_after`` of the last applied run in the history (None: never applied)."""
        return self.history.last_applied_version()  # old segments answer from their summaries

    def _refuse_lost_effective(self) -> None:
        """A missing ``effective.json`` after applies is lost state, not "presets only"."""
        version = self.last_recorded_version()
        if version is None or version == self.base_version():
            return
        raise StateError(
            f"{self.effective_path} is missing, but {self.history.path} records version "
            f"{version} as applied (a clean-up job may have deleted it); nothing changed. "
            f"Fix: `autolearn rollback --to {version} --reason restore` writes it back"
        )

    def _with_arm_versions(self, effective: Effective) -> Effective:
        """``effective`` with the version of every arm combination (computed, never stored)."""
        if not effective.arms:
            return effective
        versions = {
            key: self.version_of(layer) for key, layer in self._arm_layers(effective).items()
        }
        return replace(effective, arm_versions=versions)

    def _arm_layers(self, effective: Effective) -> dict[str, dict[str, KnobValue]]:
        def is_default(knob: str, value: KnobValue) -> bool:
            spec = self.registry.find(knob)
            return spec is not None and value == spec.default and type(value) is type(spec.default)

        return arm_layers(effective.values, effective.arms, is_default)

    def current_values(self) -> dict[str, KnobValue]:
        """Registry defaults overlaid with the runtime layer."""
        return {**self.registry.defaults(), **self.read_effective().values}

    def read_snapshot(self, version: str) -> dict[str, Any]:
        """An immutable snapshot, verified against its content address."""
        if not version.startswith("v") or not version[1:].isalnum():
            raise StateError(f"invalid version id {version!r}")
        if version == self.base_version():
            return {"version": version, "values": {}, "presets": self.presets, "created_at": None}
        path = self.snapshots_dir / f"{version}.json"
        raw = read_regular(path)
        memo = self._snapshot_memo.get(version)
        if raw is not None and memo is not None and memo[0] == raw:
            return _copied(memo[1])  # the same bytes: parsed and verified before
        if raw is None:
            effective = self.read_effective()
            if effective.version == version:  # rebased, not yet written: it is the live layer
                return {
                    "version": version,
                    "values": dict(effective.values),
                    "presets": self.presets,
                    "created_at": None,
                }
            raise StateError(f"no snapshot {version} in {self.snapshots_dir}")
        doc = self._decode_json(path, raw)
        if version_of(doc.get("values", {}), str(doc.get("presets", ""))) != version:
            raise StateError(f"snapshot {version} is corrupt (content does not match its id)")
        if len(self._snapshot_memo) >= _SNAPSHOT_MEMO:
            self._snapshot_memo.clear()  # bounded in a long-lived process
        self._snapshot_memo[version] = (raw, doc)
        return _copied(doc)

    def list_snapshots(self) -> list[dict[str, Any]]:
        out = []
        if self.snapshots_dir.exists():
            for path in sorted(self.snapshots_dir.glob("v*.json")):
                doc = self._read_json(path)
                if doc is not None:
                    out.append(doc)
        return sorted(out, key=lambda d: str(d.get("created_at") or ""))

    def read_mechanism(self, name: str) -> dict[str, Any]:
        """Per-mechanism state (empty dict before the first run)."""
        doc = self._read_json(self._mechanism_path(name))
        return {} if doc is None else {k: v for k, v in doc.items() if k != "schema_version"}

    def write_mechanism(self, name: str, state: Mapping[str, Any]) -> None:
        self._write_json(self._mechanism_path(name), dict(state))

    def read_control(self) -> dict[str, Any]:
        """The operator switches; a wrong-typed entry is a StateError naming it (never a crash)."""
        doc = self._read_json(self.control_path)
        if doc is None:
            return {}
        mechanisms = doc.get("mechanisms", {})
        if not isinstance(mechanisms, dict) or not all(
            isinstance(v, dict) for v in mechanisms.values()
        ):
            raise StateError(
                f"{self.control_path}: malformed state: 'mechanisms' must be an object of "
                f"objects (mechanism -> switches), got {json.dumps(mechanisms)[:80]}; fix or "
                "remove the file, then re-issue the operator's freeze/enable commands"
            )
        return {k: v for k, v in doc.items() if k != "schema_version"}

    def set_control(self, mechanism: str, entry: Mapping[str, Any]) -> None:
        """Merge ``entry`` into the operator switches of ``mechanism`` (frozen, enabled, ...).

        A merge, not a replace: freezing must not forget that systemd enabled the mechanism.
        """
        with self.lock("control", timeout_s=10):
            control = self.read_control()
            mechanisms = dict(control.get("mechanisms", {}))
            mechanisms[mechanism] = {**mechanisms.get(mechanism, {}), **dict(entry)}
            control["mechanisms"] = mechanisms
            self._write_json(self.control_path, control)

    def is_frozen(self, mechanism: str) -> tuple[bool, str]:
        entry = self.read_control().get("mechanisms", {}).get(mechanism, {})
        return bool(entry.get("frozen")), str(entry.get("reason", ""))

    # -- writing -----------------------------------------------------------------------------
    def record(self, record: Mapping[str, Any]) -> None:
        """Append one run record to the history (a decision that applied nothing)."""
        self._refuse_tracked([self.history.path])
        self.history.append(dict(record))

    def apply(
        self,
        writer: Owner | str,
        requested: Mapping[str, object],
        now: datetime,
        *,
        kind: ApplyKind = ApplyKind.APPLY,
        record: Mapping[str, Any] | None = None,
        dry_run: bool = False,
        start_arms: ArmSplit | None = None,
    ) -> ApplyResult:
        """Guard ``requested`` changes and apply the adopted ones atomically.

        ``record`` is the run's record: it is completed with the decisions, versions and diff
        and appended to the history (so one run leaves exactly one record). Nothing is written
        when ``dry_run`` (shadow mode) or when nothing is adopted, except the record.

        ``start_arms`` splits the entries between the adopted (candidate) values and the split's
        baseline values while the change is in flight. Any apply that changes a knob of an
        active split ends that split (a rollback, an operator's set): its arms no longer hold.
        """
        with self.lock("effective", timeout_s=30):
            effective = self.read_effective()
            return self._apply_locked(
                effective, writer, requested, now, kind, record, dry_run, start_arms
            )

    def apply_if(
        self,
        expected: Mapping[str, KnobValue],
        requested: Mapping[str, object],
        now: datetime,
        *,
        writer: Owner | str = Owner.OPERATOR,
        kind: ApplyKind = ApplyKind.OPERATOR,
        record: Mapping[str, Any] | None = None,
    ) -> ApplyResult:
        """Apply ``requested`` only if every knob of ``expected`` still holds that value.

        A compare-and-set under the merged-view lock (an undo: a timer's apply cannot slip in
        between the check and the write). A knob that moved, or a change the guard refuses,
        raises ``StateError`` naming it, and nothing is written.
        """
        with self.lock("effective", timeout_s=30):
            effective = self.read_effective()
            current = {**self.registry.defaults(), **effective.values}
            moved = [
                f"{k} is {json.dumps(current.get(k))}, not {json.dumps(v)}"
                for k, v in sorted(expected.items())
                if current.get(k) != v or type(current.get(k)) is not type(v)
            ]
            if moved:
                raise StateError(
                    "changed since, nothing undone: " + "; ".join(moved) + " (see `autolearn "
                    "history`; undo the later change first, or `autolearn set` the knob)"
                )
            refused = [
                d
                for d in guard_changes(
                    self.registry, writer, current, effective.changes, requested, now, kind
                )
                if not d.adopted
            ]
            if refused:
                details = "; ".join(f"{d.knob}: {d.code.value} ({d.detail})" for d in refused)
                raise StateError(f"cannot undo exactly, nothing changed: {details}")
            return self._apply_locked(effective, writer, requested, now, kind, record, False)

    def end_arms(self, families: Mapping[str, str], now: datetime) -> bool:
        """End the splits of ``families`` (family -> mechanism): every entry sees the values.

        Used when a change is promoted (no value changes, so no apply). Returns whether a split
        was ended. The version does not change: it addresses values, and the arms are not values.
        """
        with self.lock("effective", timeout_s=30):
            effective = self.read_effective()
            kept = tuple(a for a in effective.arms if families.get(a.family) != a.mechanism)
            if len(kept) == len(effective.arms):
                return False
            ended = replace(effective, arms=kept, arm_versions={}, updated_at=now)
            self._write_json(self.effective_path, ended.to_json(), raw=True)
            return True

    def restore(
        self,
        version: str,
        writer: Owner | str,
        now: datetime,
        *,
        kind: ApplyKind = ApplyKind.OPERATOR,
        record: Mapping[str, Any] | None = None,
    ) -> ApplyResult:
        """Make the runtime layer exactly snapshot ``version``, or change nothing.

        The target is computed under the merged-view lock, so a mechanism's apply cannot slip
        in between reading the current values and writing the restored ones. If the guard
        would refuse any knob (removed from the registry, now out of bounds, not owned by
        ``writer``), nothing is written and ``StateError`` lists them: a partial rollback
        is never presented as a rollback.
        """
        target = dict(self.read_snapshot(version).get("values", {}))
        with self.lock("effective", timeout_s=30):
            effective = self.read_effective(allow_lost=True)
            wanted: dict[str, object] = {}
            for knob in effective.values:
                spec = self.registry.find(knob)
                wanted[knob] = spec.default if spec is not None else None
            wanted.update(target)
            current = {**self.registry.defaults(), **effective.values}
            refused = [
                d
                for d in guard_changes(
                    self.registry, writer, current, effective.changes, wanted, now, kind
                )
                if not d.adopted and d.code.value != "no_change"
            ]
            if refused:
                details = "; ".join(f"{d.knob}: {d.code.value} ({d.detail})" for d in refused)
                raise StateError(f"cannot restore {version} exactly, nothing changed: {details}")
            return self._apply_locked(effective, writer, wanted, now, kind, record, False)

    def recover(
        self,
        version: str | None,
        writer: Owner | str,
        now: datetime,
        *,
        record: Mapping[str, Any] | None = None,
    ) -> tuple[ApplyResult, Path | None]:
        """Replace an unreadable or lost ``effective.json`` with snapshot ``version``, recorded.

        ``version`` defaults to the last version the history records as applied (the last good
        one). The unreadable file is kept beside it (``effective.json.corrupt-<time>``) for a
        post-mortem; its changes in flight are lost (their arms end: every entry sees the
        restored values). Refuses (``StateError``, nothing changed) when ``effective.json``
        reads fine (use :meth:`restore`) or when the target snapshot does not verify.
        """
        with self.lock("effective", timeout_s=30):
            try:
                self.read_effective()  # strict: a lost one (deleted after applies) is recovered too
            except StateError as exc:
                problem = str(exc)
            else:
                raise StateError(
                    f"{self.effective_path} reads fine: nothing to recover (to go back to a "
                    "version use `autolearn rollback --to VERSION`)"
                )
            target = version or self.last_recorded_version() or self.base_version()
            values = dict(self.read_snapshot_file(target).get("values", {}))
            kept = self.root / f"effective.json.corrupt-{now.strftime('%Y%m%dT%H%M%SZ')}"
            self._refuse_tracked([kept, self.effective_path, self.history.path])
            moved = os.path.lexists(self.effective_path)
            if moved:
                os.replace(self.effective_path, kept)
            base = Effective(version=self.base_version(), values={}, presets=self.presets)
            current = self.registry.defaults()
            refused = [
                d
                for d in guard_changes(
                    self.registry, writer, current, {}, values, now, ApplyKind.OPERATOR
                )
                if not d.adopted and d.code.value != "no_change"
            ]
            if refused:
                if moved:
                    os.replace(kept, self.effective_path)
                details = "; ".join(f"{d.knob}: {d.code.value} ({d.detail})" for d in refused)
                raise StateError(f"cannot restore {target} exactly, nothing changed: {details}")
            full = {
                **dict(record or {}),
                "target_version": target,
                "recovered_from": {"problem": problem, "kept_as": str(kept) if moved else None},
            }
            result = self._apply_locked(base, writer, values, now, ApplyKind.OPERATOR, full, False)
            if not result.applied:  # the target is the presets: an empty layer, written
                self._write_json(
                    self.effective_path, replace(base, updated_at=now).to_json(), raw=True
                )
                self._export_compat(base, now)
            return result, kept if moved else None

    def read_snapshot_file(self, version: str) -> dict[str, Any]:
        """A stored snapshot (or the presets), verified; never falls back to ``effective.json``."""
        if not version.startswith("v") or not version[1:].isalnum():
            raise StateError(f"invalid version id {version!r}")
        if version == self.base_version():
            return {"version": version, "values": {}, "presets": self.presets}
        doc = self._read_json(self.snapshots_dir / f"{version}.json")
        if doc is None:
            raise StateError(f"no snapshot {version} in {self.snapshots_dir}")
        if version_of(doc.get("values", {}), str(doc.get("presets", ""))) != version:
            raise StateError(f"snapshot {version} is corrupt (content does not match its id)")
        return doc

    def _apply_locked(
        self,
        effective: Effective,
        writer: Owner | str,
        requested: Mapping[str, object],
        now: datetime,
        kind: ApplyKind,
        record: Mapping[str, Any] | None,
        dry_run: bool,
        start_arms: ArmSplit | None = None,
    ) -> ApplyResult:
        """The body of :meth:`apply`; the caller holds the ``effective`` lock."""
        self._recover_unrecorded(effective)
        current = {**self.registry.defaults(), **effective.values}
        decisions = guard_changes(
            self.registry, writer, current, effective.changes, requested, now, kind
        )
        adopted = {
            d.knob: _typed(self.registry.spec(d.knob), d.requested) for d in decisions if d.adopted
        }
        diff = [
            {"knob": k, "before": current.get(k, self.registry.spec(k).default), "after": v}
            for k, v in sorted(adopted.items())
        ]
        if dry_run or not adopted:
            result = ApplyResult(decisions, effective.version, effective.version, [])
            if record is not None:
                self.record(_complete(record, result, now, applied=False, proposed=diff))
            return result
        # Every file this apply writes is checked before the first write, so a refusal
        # (a tracked history, a link) leaves no snapshot behind.
        self._refuse_tracked([self.history.path, self.effective_path])
        for directory in (self.root, self.snapshots_dir, self.mechanisms_dir):
            remove_stale_temp_files(directory)
        new_effective = self._next_effective(effective, adopted, writer, kind, now)
        arms = tuple(a for a in effective.arms if not set(a.baseline) & set(adopted))
        if start_arms is not None:
            arms = (*(a for a in arms if a.family != start_arms.family), start_arms)
        new_effective = self._with_arm_versions(replace(new_effective, arms=arms))
        result = ApplyResult(decisions, effective.version, new_effective.version, diff)
        full_record = _complete(record or {}, result, now, applied=True, proposed=diff)
        full_record.setdefault("mechanism", str(writer))
        new_effective = Effective(
            version=new_effective.version,
            values=new_effective.values,
            sources=new_effective.sources,
            changes=new_effective.changes,
            updated_at=now,
            last_record=full_record,
            last_record_offset=self.history.position(),  # survives a rotation (see read_from)
            presets=self.presets,
            arms=new_effective.arms,
            arm_versions=new_effective.arm_versions,
        )
        self._write_snapshot(effective, "", writer, ApplyKind.REBASE, now)  # no-op unless rebased
        self._write_snapshot(new_effective, effective.version, writer, kind, now)
        for key, layer in self._arm_layers(new_effective).items():
            arm = Effective(new_effective.arm_versions[key], layer, presets=self.presets)
            self._write_snapshot(arm, new_effective.version, writer, ApplyKind.ARM, now)
        previous = self._read_bytes(self.effective_path)
        self._write_json(self.effective_path, new_effective.to_json(), raw=True)
        try:
            self.record(full_record)
        except StateError as exc:
            raise self._undo_unrecorded(previous, new_effective.version, exc) from exc
        self._export_compat(new_effective, now)
        return result

    def _export_compat(self, effective: Effective, now: datetime) -> None:
        """Write the QuantRabbit compat exports of a recorded change (opt-in, see
        ``autolearn.compat.quantrabbit.exports``); a failure is recorded there, never raised."""
        from autolearn.compat.quantrabbit.exports import export_after_apply  # opt-in: lazy

        export_after_apply(self, effective, now)

    def _read_bytes(self, path: Path) -> bytes | None:
        return read_regular(path)

    def _undo_unrecorded(
        self, previous: bytes | None, version: str, cause: StateError
    ) -> StateError:
        """The history append failed after the new version went live: put the old one back.

        An apply that cannot be recorded must not stay applied silently. If even the restore
        fails (the disk is full), the new version stays with its record kept in
        ``effective.json`` and the next apply appends it (``recovered``); the error says which.
        """
        try:
            if previous is None:
                self.effective_path.unlink(missing_ok=True)
            else:
                atomic_write_bytes(self.effective_path, previous)
        except (OSError, StateError):
            return StateError(
                f"version {version} was applied but its history record could not be written "
                f"({cause}); the next run records it (marked recovered)"
            )
        return StateError(f"{cause}; the previous version was restored: nothing changed")

    def _next_effective(
        self,
        effective: Effective,
        adopted: Mapping[str, KnobValue],
        writer: Owner | str,
        kind: ApplyKind,
        now: datetime,
    ) -> Effective:
        values = dict(effective.values)
        sources = dict(effective.sources)
        changes = {k: list(v) for k, v in effective.changes.items()}
        current = {**self.registry.defaults(), **effective.values}
        for knob, value in adopted.items():
            spec = self.registry.spec(knob)
            before = current.get(knob, spec.default)
            if value == spec.default and type(value) is type(spec.default):
                values.pop(knob, None)  # back at the preset: keep the runtime layer minimal
            else:
                values[knob] = value
            kept = [c for c in changes.get(knob, []) if now - c.at <= _KEEP_CHANGES]
            changes[knob] = [*kept, KnobChange(at=now, before=before, after=value)]
            sources[knob] = {"writer": str(writer), "kind": kind.value, "at": format_utc(now)}
        version = self.version_of(values)
        for source in sources.values():
            source.setdefault("version", version)
        return Effective(version, values, sources, changes, now, presets=self.presets)

    def _write_snapshot(
        self,
        effective: Effective,
        parent: str,
        writer: Owner | str,
        kind: ApplyKind,
        now: datetime,
    ) -> None:
        path = self.snapshots_dir / f"{effective.version}.json"
        if path.exists() or effective.version == self.base_version():
            return  # content-addressed and immutable: the same values are already stored
        self._write_json(
            path,
            {
                "version": effective.version,
                "values": dict(sorted(effective.values.items())),
                "presets": effective.presets,
                "parent": parent,
                "writer": str(writer),
                "kind": kind.value,
                "created_at": format_utc(now),
            },
        )

    def _recover_unrecorded(self, effective: Effective) -> None:
        """Append the last apply's record if a crash left it out of the history.

        The record was due at or after ``last_record_offset``; other runs may have appended
        records since, so everything from that offset is scanned (never a fixed tail, which
        would re-append a record that scrolled out of it).
        """
        last = effective.last_record
        if not last or "run_id" not in last:
            return
        for record in self.history.read_from(effective.last_record_offset):
            if record.get("run_id") == last["run_id"]:
                return
        self.record({**last, "recovered": True})

    # -- file helpers ------------------------------------------------------------------------
    def _mechanism_path(self, name: str) -> Path:
        if name not in _MECHANISM_NAME:
            raise StateError(f"unknown mechanism {name!r} (known: {sorted(_MECHANISM_NAME)})")
        return self.mechanisms_dir / f"{name}.json"

    def _refuse_tracked(self, paths: list[Path]) -> None:
        for path in paths:
            if path.is_symlink():
                raise StateError(
                    f"{path} is a symbolic link; autolearn never writes through links in its "
                    "state directory (a link can point into a tracked file). Fix: remove it"
                )
        ensure_untracked(paths, tracked_under(self.root) if self.root.exists() else set())
        self._check_root()

    def _check_root(self) -> None:
        """The state dir must be outside the checkout or ignored: asked once, before writing."""
        if not self._root_checked:
            ensure_state_dir_ignored(self.root)
            self._root_checked = True

    def _read_json(self, path: Path) -> dict[str, Any] | None:
        raw = read_regular(path)
        if raw is None:
            return None
        return self._decode_json(path, raw)

    def _decode_json(self, path: Path, raw: bytes) -> dict[str, Any]:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StateError(f"{path}: not UTF-8 text ({exc.reason}); the file is corrupt") from exc
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise StateError(f"{path}: not valid JSON ({why}); the file is corrupt") from exc
        if not isinstance(doc, dict):
            raise StateError(f"{path}: expected a JSON object")
        version = doc.get("schema_version")
        if not isinstance(version, int):
            raise StateError(f"{path}: no schema_version (not an autolearn state file?)")
        if version > STATE_SCHEMA_VERSION:
            raise StateError(
                f"{path}: schema_version {version!r} is newer than this autolearn "
                f"understands ({STATE_SCHEMA_VERSION}); upgrade autolearn"
            )
        return doc

    def _write_json(self, path: Path, doc: dict[str, Any], *, raw: bool = False) -> None:
        ensure_dir(self.root)
        refuse_linked_dirs(self.root, path)
        self._refuse_tracked([path])
        body = doc if raw else {"schema_version": STATE_SCHEMA_VERSION, **doc}
        data = json.dumps(body, sort_keys=True, indent=1, default=str).encode() + b"\n"
        atomic_write_bytes(path, data)


_SCALARS = (bool, int, float, str)


_SNAPSHOT_MEMO = 4096


def _copied(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A memoized document the caller may change (its nested objects copied one level)."""
    return {k: dict(v) if isinstance(v, dict) else v for k, v in doc.items()}


def _fresh(effective: Effective) -> Effective:
    """A copy of a memoized layer whose containers the caller may change (``last_record`` is
    shared: it is only read)."""
    return replace(
        effective,
        values=dict(effective.values),
        sources={k: dict(v) for k, v in effective.sources.items()},
        changes={k: list(v) for k, v in effective.changes.items()},
        arm_versions=dict(effective.arm_versions),
    )


def _mapping(doc: Mapping[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = doc.get(key, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StateError(
            f"{path}: malformed state: {key!r} must be an object, got {type(value).__name__}"
        )
    return value


def _parse_changes(doc: Mapping[str, Any]) -> dict[str, list[KnobChange]]:
    changes: dict[str, list[KnobChange]] = {}
    for knob, entries in doc.items():
        if not isinstance(entries, list) or not all(isinstance(c, dict) for c in entries):
            raise ValueError(f"changes.{knob} must be a list of objects")
        changes[knob] = [
            KnobChange(at=parse_utc(str(c["at"])), before=c["before"], after=c["after"])
            for c in entries
        ]
    return changes


def _parse_effective(doc: Mapping[str, Any], path: Path) -> Effective:
    """``effective.json`` as an :class:`Effective`; every structural problem is a StateError."""
    try:
        values = _mapping(doc, "values", path)
        if "values" not in doc or "version" not in doc:
            raise KeyError("values" if "values" not in doc else "version")
        for knob, value in values.items():
            if not isinstance(value, _SCALARS):
                raise ValueError(f"value of {knob!r} is a {type(value).__name__}, not a scalar")
        sources = _mapping(doc, "sources", path)
        for knob, source in sources.items():
            if not isinstance(source, dict):
                raise ValueError(f"sources.{knob} is a {type(source).__name__}, not an object")
        changes = _parse_changes(_mapping(doc, "changes", path))
        arms = doc.get("arms", [])
        if not isinstance(arms, list) or not all(isinstance(a, dict) for a in arms):
            raise ValueError("arms must be a list of objects")
        last_record = doc.get("last_record")
        if last_record is not None and not isinstance(last_record, dict):
            raise ValueError("last_record must be an object or null")
        offset = doc.get("last_record_offset", 0)
        if isinstance(offset, bool) or not isinstance(offset, int):
            raise ValueError(f"last_record_offset must be an integer, got {offset!r}")
        updated = doc.get("updated_at")
        return Effective(
            version=str(doc["version"]),
            values=dict(values),
            sources=dict(sources),
            changes=changes,
            updated_at=parse_utc(str(updated)) if updated else None,
            last_record=last_record,
            last_record_offset=offset,
            presets=str(doc.get("presets", "")),
            arms=tuple(ArmSplit.from_json(a) for a in arms),
        )
    except StateError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, TimestampError) as exc:
        raise StateError(
            f"{path}: malformed state ({type(exc).__name__}: {exc}); restore the last good "
            "version with `autolearn recover --reason R` (see `autolearn history`)"
        ) from exc


def _typed(spec: KnobSpec, value: object) -> KnobValue:
    if spec.type is KnobType.BOOL:
        return bool(value)
    if spec.type is KnobType.INT:
        return int(value)  # type: ignore[call-overload,no-any-return]
    # "+ 0.0" turns -0.0 into 0.0: both are the same value and must hash to one version.
    return round(float(value), spec.decimals) + 0.0  # type: ignore[arg-type]


def _complete(
    record: Mapping[str, Any],
    result: ApplyResult,
    now: datetime,
    *,
    applied: bool,
    proposed: list[dict[str, Any]],
) -> dict[str, Any]:
    out = dict(record)
    out.setdefault("at", format_utc(now))
    out["applied"] = applied
    out["version_before"] = result.version_before
    out["version_after"] = result.version_after
    out["knobs"] = [d.to_record() for d in result.decisions]
    out["diff"] = result.diff if applied else []
    if not applied and proposed:
        out["proposed_diff"] = proposed
    return out
