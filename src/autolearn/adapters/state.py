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
path git tracks. With ``shared`` (``AUTOLEARN_STATE_URL``, ``adapters/shared_state.py``) the same
documents live on PostgreSQL under the same names, for every host of the account: reads go
there, a version switch and its record are one transaction, every lock is taken across hosts,
and the directory keeps a replica (``effective.json`` and ``history.jsonl``, see :meth:`sync`)
for the local readers of the history and for a worker's cold start while the server is down.

``apply()`` runs the pure apply guard under the merged-view lock, writes the new snapshot and
``effective.json``, then appends the run record; if a crash lands between the last two, the next
``apply()`` finds the unrecorded version and appends it (``recovered``).
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
from autolearn.errors import StateError, StateUnavailable

if TYPE_CHECKING:  # the SQL of the run locks loads only when AUTOLEARN_LOCK_URL is set
    from autolearn.adapters.pg_lock import RunLocks
    from autolearn.adapters.shared_state import SharedState

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
# locks of this host's files, taken across hosts only when the state is shared
_LOCAL_LOCKS = frozenset({"effective", "control"})
# locks of this host's replica of a shared state: never taken across hosts
_HOST_LOCKS = frozenset({"replica"})
_EFFECTIVE_DOC = "effective.json"
# mechanisms whose state is the host's own, never shared: ``follow`` keeps watermarks of this
# host's trades.db files (the same path on another host is another file)
_HOST_MECHANISMS = frozenset({"follow"})
_REPLICA_FILE = "replica.json"  # how far this dir's history replicates the shared records


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
        shared: SharedState | None = None,
    ) -> None:
        self.root = Path(state_dir)
        # the state every host of the account shares (None: this directory's files)
        self.shared = shared
        if shared is not None and run_locks is None:  # shared state needs one runner anywhere
            from autolearn.adapters.pg_lock import RunLocks

            run_locks = RunLocks(shared.url, shared.scope, where="AUTOLEARN_STATE_URL")
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
        # run ids of applies this process found recorded (``_record_crashed_apply``)
        self._seen_recorded: set[str] = set()
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
            local = name in _HOST_LOCKS or (name in _LOCAL_LOCKS and self.shared is None)
            if self.run_locks is None or local:
                yield
                return
            left = max(0.0, deadline - time.monotonic())  # one wait for both locks
            with self.run_locks.hold(name, timeout_s=left):
                if self.shared is not None and name not in _LOCAL_LOCKS:
                    self.sync()  # a mechanism reads the history: every host's records first
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
        raw = self._load(self.effective_path)
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
                f"{self._where(self.effective_path)}: values do not match version "
                f"{effective.version} (edited by hand?); restore the last good version with "
                "`autolearn recover --reason R` (or `recover --to VERSION`)"
            )
        if effective.presets != self.presets:  # presets changed by a deploy: rebase
            effective = replace(effective, version=self.version_of(values), presets=self.presets)
        return self._with_arm_versions(effective)

    def last_recorded_version(self) -> str | None:
        """The ``version_after`` of the last applied run in the history (None: never applied)."""
        if self.shared is not None:
            return self.shared.last_applied_version()
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
        memo = self._snapshot_memo.get(version)
        if memo is not None and self.shared is not None:
            return _copied(memo[1])  # a shared snapshot is inserted once, never rewritten
        raw = self._load(path)
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
            raise StateError(f"no snapshot {version} in {self._where(self.snapshots_dir)}")
        doc = self._decode_json(path, raw)
        if version_of(doc.get("values", {}), str(doc.get("presets", ""))) != version:
            raise StateError(f"snapshot {version} is corrupt (content does not match its id)")
        if len(self._snapshot_memo) >= _SNAPSHOT_MEMO:
            self._snapshot_memo.clear()  # bounded in a long-lived process
        self._snapshot_memo[version] = (raw, doc)
        return _copied(doc)

    def list_snapshots(self) -> list[dict[str, Any]]:
        out = []
        if self.shared is not None:
            for name, raw in self.shared.listing("snapshots/"):
                out.append(self._decode_json(self.root / name, raw))
        elif self.snapshots_dir.exists():
            for path in sorted(self.snapshots_dir.glob("v*.json")):
                doc = self._read_json(path)
                if doc is not None:
                    out.append(doc)
        return sorted(out, key=lambda d: str(d.get("created_at") or ""))

    def read_mechanism(self, name: str) -> dict[str, Any]:
        """Per-mechanism state (empty dict before the first run)."""
        path = self._mechanism_path(name)
        doc = self._read_local_json(path) if name in _HOST_MECHANISMS else self._read_json(path)
        return {} if doc is None else {k: v for k, v in doc.items() if k != "schema_version"}

    def write_mechanism(self, name: str, state: Mapping[str, Any]) -> None:
        self._write_json(self._mechanism_path(name), dict(state), local=name in _HOST_MECHANISMS)

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
        """Append one run record to the history (a decision that applied nothing).

        First, the last apply's own record if a crash left it out: the next run may well
        apply nothing, and the apply must not wait for the next apply to be recorded.
        """
        if self.shared is None:
            self._record_crashed_apply()
        self._append_record(record)

    def _append_record(self, record: Mapping[str, Any]) -> None:
        """``record`` without the crash check (the callers hold the ``effective`` lock)."""
        self._refuse_tracked([self.history.path])
        if self.shared is not None:
            self.shared.append(self._stamped(record))
            self._replicate_after_write()
            return
        self.history.append(dict(record))

    def _record_crashed_apply(self) -> None:
        """``_recover_unrecorded`` (under the ``effective`` lock) unless the last apply's
        record is found where it was due: a few line reads, once per apply a process sees."""
        try:
            effective = self.read_effective(allow_lost=True)
        except StateError:
            return  # unreadable: `autolearn recover` restores it, and records that
        last = effective.last_record
        run_id = last.get("run_id") if last else None
        if not isinstance(run_id, str) or run_id in self._seen_recorded:
            return
        if not self.history.holds_run_near(effective.last_record_offset, run_id):
            with self.lock("effective", timeout_s=30):
                self._recover_unrecorded(self.read_effective(allow_lost=True))
        self._seen_recorded.add(run_id)

    # -- the shared state ---------------------------------------------------------------------
    def sync(self) -> int:
        """Bring this dir's replica up to the shared state; the number of records copied.

        Copies every shared document written since the last sync over its local file
        (``effective.json``, snapshots, mechanisms, ``control.json``: the dir stays a complete
        state dir) and appends the shared records this dir's ``history.jsonl`` does not hold
        yet, in commit order. A no-op
        without shared state. Refuses (``StateError``, nothing changed) a dir whose own history
        never came from the shared state: that is an unshared host's state, to upload with
        ``autolearn share`` or to move aside, never to mix with the shared one.
        """
        if self.shared is None:
            return 0
        self._refuse_tracked([self.history.path, self.effective_path, self._replica_path])
        with self.lock("replica", timeout_s=30):
            copied = self._pull_records()
            self._mirror_documents()
        return copied

    def share(self, now: datetime) -> int:
        """Upload this dir's state into an empty shared state (a host moving to shared state).

        Every snapshot, mechanism state, the operator switches, ``effective.json`` and every
        history record, in order; the dir then replicates the shared state. Refuses when the
        shared state already holds anything (two hosts' states are never merged). Returns the
        number of records uploaded.
        """
        if self.shared is None:
            raise StateError("no shared state configured (set AUTOLEARN_STATE_URL)")
        with self.lock("effective", timeout_s=30), self.lock("replica", timeout_s=30):
            documents: dict[str, bytes] = {}
            for directory in (self.snapshots_dir, self.mechanisms_dir):
                if directory.is_dir():
                    for path in sorted(directory.glob("*.json")):
                        raw = read_regular(path)
                        if raw is not None and self._replica_file(path.name, directory) is not None:
                            self._decode_json(path, raw, local=True)  # a corrupt one is not
                            documents[path.relative_to(self.root).as_posix()] = raw
            for path in (self.control_path, self.effective_path):
                raw = read_regular(path)
                if raw is not None:
                    self._decode_json(path, raw, local=True)
                    documents[path.relative_to(self.root).as_posix()] = raw
            if self.effective_path.exists():
                _parse_effective(
                    self._decode_json(self.effective_path, documents[_EFFECTIVE_DOC], local=True),
                    self.effective_path,
                )
            once = frozenset(n for n in documents if n.startswith("snapshots/"))
            records = [{**r, "shared_from": self.shared.host} for r in self.history.read().records]
            # one transaction: a crash uploads all or nothing, and no other host's record lands
            # between this host's (the emptiness check is in it too)
            seq = self.shared.upload(documents, records, once=once)
            self._write_replica(seq, self.history.position(), self._replica_docs_seq())
            return len(records)

    def write_replica_effective(self, effective: Effective) -> None:
        """Write ``effective`` as this dir's ``effective.json`` (a shared-state worker keeps its
        host's replica current: a cold start while the server is down serves it)."""
        self._write_json(self.effective_path, effective.to_json(), raw=True, local=True)

    def _stamped(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """A record to share: which host wrote it."""
        assert self.shared is not None
        return {**dict(record), "host": self.shared.host}

    @property
    def _replica_path(self) -> Path:
        return self.root / _REPLICA_FILE

    def _replicate_after_write(self) -> None:
        """After a shared write: copy it into the replica. The write is done (committed): a
        replica that cannot follow now catches up on the next sync, so this never raises."""
        try:
            self.sync()
        except StateError as exc:
            from autolearn.adapters.logs import get_logger

            get_logger(__name__).warning("state_replica_behind", error=str(exc))

    def _replica_docs_seq(self) -> int:
        """The write number of the last shared document copied into this dir (0: none)."""
        doc = self._read_local_json(self._replica_path) or {}
        seq = doc.get("docs_seq", 0)
        return seq if isinstance(seq, int) and not isinstance(seq, bool) else 0

    def _replica_seq(self) -> int:
        """The highest shared record ``seq`` this dir's history holds."""
        doc = self._read_local_json(self._replica_path)
        if doc is None:
            if self.history.position() > 0 and self.history.read().records:
                raise StateError(
                    f"{self.history.path} holds this host's own history, not a replica of the "
                    f"shared state {self.shared.describe() if self.shared else ''}; nothing "
                    "changed. Upload it with `autolearn share` (if the shared state is empty), "
                    "or move the state dir aside to serve the shared state"
                )
            return 0
        seq, position = doc.get("seq", 0), doc.get("position", 0)
        if not isinstance(seq, int) or not isinstance(position, int):
            raise StateError(f"{self._replica_path}: malformed (seq and position are integers)")
        # a crash between appending records and writing this file: the records say how far
        for record in self.history.read_from(position):
            found = record.get("shared_seq")
            if isinstance(found, int) and found > seq:
                seq = found
        return seq

    def _pull_records(self) -> int:
        assert self.shared is not None
        seq = self._replica_seq()
        if not self._replica_path.exists():  # before the first append: a crash after it must
            self._write_replica(0, self.history.position(), 0)  # find a replica, not "own" history
        copied = 0
        while records := self.shared.records_after(seq):
            for record in records:
                self.history.append(record)
                seq = int(record["shared_seq"])
                copied += 1
            self._write_replica(seq, self.history.position(), self._replica_docs_seq())
        return copied

    def _write_replica(self, seq: int, position: int, docs_seq: int) -> None:
        doc = {"seq": seq, "position": position, "docs_seq": docs_seq}
        self._write_json(self._replica_path, doc, local=True)

    def _mirror_documents(self) -> None:
        """Copy the shared documents written since the last sync into their files (a crash
        before the watermark is written copies them again: each copy is a whole file)."""
        assert self.shared is not None
        docs_seq = self._replica_docs_seq()
        changed = self.shared.changed_after(docs_seq)
        for seq, name, raw in changed:
            docs_seq = max(docs_seq, seq)
            path = self._replica_file(name)
            if path is None or raw == read_regular(path):
                continue
            try:
                self._decode_json(path, raw)
            except StateError as exc:  # never copied over a good file; its readers say so
                from autolearn.adapters.logs import get_logger

                get_logger(__name__).error("shared_document_unreadable", name=name, error=str(exc))
                continue
            else:
                ensure_dir(path.parent)
                refuse_linked_dirs(self.root, path)
                self._refuse_tracked([path])
                atomic_write_bytes(path, raw)
        if changed:
            doc = self._read_local_json(self._replica_path) or {}
            seq, position = doc.get("seq", 0), doc.get("position", 0)
            self._write_replica(int(seq), int(position), docs_seq)

    def _replica_file(self, name: str, directory: Path | None = None) -> Path | None:
        """Where shared document ``name`` (or file ``name`` of ``directory``) lives in this dir;
        None: not shared (a host's own file, a kept corrupt copy, a name this version does not
        know: left where it is)."""
        if directory is not None:
            name = f"{directory.relative_to(self.root).as_posix()}/{name}"
        parts = name.split("/")
        if len(parts) == 1 and name in (_EFFECTIVE_DOC, self.control_path.name):
            return self.root / name
        if len(parts) == 2 and parts[0] in ("snapshots", "mechanisms"):
            stem = parts[1].removesuffix(".json")
            if parts[0] == "mechanisms" and stem in _HOST_MECHANISMS:
                return None
            if parts[1].endswith(".json") and stem.replace("_", "").isalnum():
                return self.root / parts[0] / parts[1]
        return None

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
            except StateUnavailable:
                raise  # a server that does not answer is not a corrupt state
            except StateError as exc:
                problem = str(exc)
            else:
                raise StateError(
                    f"{self._where(self.effective_path)} reads fine: nothing to recover (to go "
                    "back to a version use `autolearn rollback --to VERSION`)"
                )
            target = version or self.last_recorded_version() or self.base_version()
            values = dict(self.read_snapshot_file(target).get("values", {}))
            kept = self.root / f"effective.json.corrupt-{now.strftime('%Y%m%dT%H%M%SZ')}"
            self._refuse_tracked([kept, self.effective_path, self.history.path])
            if self.shared is not None:  # the unreadable document is kept beside it, shared too
                corrupt = self.shared.get(_EFFECTIVE_DOC)
                moved = corrupt is not None
                if corrupt is not None:
                    self.shared.put(kept.name, corrupt, once=True)
            else:
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
                if moved and self.shared is None:
                    os.replace(kept, self.effective_path)
                details = "; ".join(f"{d.knob}: {d.code.value} ({d.detail})" for d in refused)
                raise StateError(f"cannot restore {target} exactly, nothing changed: {details}")
            full = {
                **dict(record or {}),
                "target_version": target,
                "recovered_from": {
                    "problem": problem,
                    "kept_as": self._where(kept) if moved else None,
                },
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
            raise StateError(f"no snapshot {version} in {self._where(self.snapshots_dir)}")
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
                self._append_record(_complete(record, result, now, applied=False, proposed=diff))
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
            # survives a rotation (see read_from); shared: the record is in the switch's transaction
            last_record_offset=0 if self.shared is not None else self.history.position(),
            presets=self.presets,
            arms=new_effective.arms,
            arm_versions=new_effective.arm_versions,
        )
        self._write_snapshot(effective, "", writer, ApplyKind.REBASE, now)  # no-op unless rebased
        self._write_snapshot(new_effective, effective.version, writer, kind, now)
        for key, layer in self._arm_layers(new_effective).items():
            arm = Effective(new_effective.arm_versions[key], layer, presets=self.presets)
            self._write_snapshot(arm, new_effective.version, writer, ApplyKind.ARM, now)
        if self.shared is not None:  # the switch and its record: one transaction
            self.shared.publish(
                {_EFFECTIVE_DOC: _encoded(new_effective.to_json())}, self._stamped(full_record)
            )
            self._replicate_after_write()
            self._export_compat(new_effective, now)
            return result
        previous = self._read_bytes(self.effective_path)
        self._write_json(self.effective_path, new_effective.to_json(), raw=True)
        try:
            self._append_record(full_record)
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
        if effective.version == self.base_version():
            return
        if self.shared is None and path.exists():
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
        if not last or "run_id" not in last or self.shared is not None:
            return  # shared: the record was in the switch's own transaction
        for record in self.history.read_from(effective.last_record_offset):
            if record.get("run_id") == last["run_id"]:
                return
        self._append_record({**last, "recovered": True})

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
        raw = self._load(path)
        if raw is None:
            return None
        return self._decode_json(path, raw)

    def _read_local_json(self, path: Path) -> dict[str, Any] | None:
        raw = read_regular(path)
        return None if raw is None else self._decode_json(path, raw, local=True)

    def _load(self, path: Path) -> bytes | None:
        """The bytes of state file ``path``: the shared document of that name, else the file."""
        if self.shared is not None:
            return self.shared.get(path.relative_to(self.root).as_posix())
        return read_regular(path)

    def _where(self, path: Path) -> str:
        """``path`` as messages name it (the shared state's name for it when shared)."""
        if self.shared is None:
            return str(path)
        return (
            f"{path.relative_to(self.root).as_posix()} of the shared state {self.shared.describe()}"
        )

    def _decode_json(self, path: Path, raw: bytes, *, local: bool = False) -> dict[str, Any]:
        """``raw`` of state file ``path`` as a JSON object (``local``: this dir's file, even
        when shared), checked for ``schema_version``; every problem is a ``StateError``."""
        shown = str(path) if local else self._where(path)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StateError(
                f"{shown}: not UTF-8 text ({exc.reason}); the file is corrupt"
            ) from exc
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise StateError(f"{shown}: not valid JSON ({why}); the file is corrupt") from exc
        if not isinstance(doc, dict):
            raise StateError(f"{shown}: expected a JSON object")
        version = doc.get("schema_version")
        if not isinstance(version, int):
            raise StateError(f"{shown}: no schema_version (not an autolearn state file?)")
        if version > STATE_SCHEMA_VERSION:
            raise StateError(
                f"{shown}: schema_version {version!r} is newer than this autolearn "
                f"understands ({STATE_SCHEMA_VERSION}); upgrade autolearn"
            )
        return doc

    def _write_json(
        self, path: Path, doc: dict[str, Any], *, raw: bool = False, local: bool = False
    ) -> None:
        """Write state file ``path`` (shared: its document; ``local``: this dir's file anyway)."""
        body = doc if raw else {"schema_version": STATE_SCHEMA_VERSION, **doc}
        data = _encoded(body)
        if self.shared is not None and not local:
            name = path.relative_to(self.root).as_posix()
            self.shared.put(name, data, once=name.startswith("snapshots/"))
            if path == self.effective_path:
                self._replicate_after_write()
            return
        ensure_dir(self.root)
        refuse_linked_dirs(self.root, path)
        self._refuse_tracked([path])
        atomic_write_bytes(path, data)


_SCALARS = (bool, int, float, str)


_SNAPSHOT_MEMO = 4096


def _encoded(doc: Mapping[str, Any]) -> bytes:
    """A state document's bytes (sorted keys, one key per line: diffable, stable)."""
    return json.dumps(doc, sort_keys=True, indent=1, default=str).encode() + b"\n"


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
