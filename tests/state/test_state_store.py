"""The state store inside a real git checkout: atomic, content-addressed, never touching git."""

from __future__ import annotations

import json
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autolearn.adapters import atomic
from autolearn.adapters.state import StateStore, version_of
from autolearn.core.apply_guard import ApplyKind
from autolearn.core.knobs import Owner, is_on_grid
from autolearn.errors import LockBusy, StateError, TrackedPathError
from autolearn.settings import load_registry, packaged_registry_text

REGISTRY = load_registry(None)
T0 = datetime(2025, 10, 23, 0, 0, tzinfo=UTC)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture(name="bot_repo")
def fixture_bot_repo(tmp_path: Path) -> Path:
    """A bot checkout with tracked presets and legacy files, and logs/ ignored."""
    repo = tmp_path / "bot"
    (repo / "config").mkdir(parents=True)
    (repo / "config" / "knobs.yaml").write_text(packaged_registry_text())
    (repo / "config" / "tuning_overrides.yaml").write_text(
        "exit: {lowvol: {upper_bound_max_sec: 3.7}}\n"
    )
    (repo / ".gitignore").write_text("logs/\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "presets")
    return repo


class TestGitCleanliness:
    def test_hundred_applies_leave_git_status_clean(self, bot_repo: Path) -> None:
        """100 applies by several mechanisms inside the checkout leave `git status` empty."""
        store = StateStore(bot_repo / "logs" / "tuning", REGISTRY)
        knob = "exit.lowvol.upper_bound_max_sec"
        applied = 0
        for i in range(100):
            now = T0 + timedelta(hours=2 * i)
            value = 3.6 + 0.1 * (i % 3)
            record = {"run_id": f"r{i}", "mechanism": "tuner", "decision": "apply"}
            store.apply(Owner.TUNER, {knob: round(value, 1)}, now, record=record)
            flip = {"pockets.micro.allow_new": i % 2 == 1}
            applied += store.apply(Owner.POLICY, flip, now, record={"run_id": f"p{i}"}).applied
        assert applied == 100
        assert _git(bot_repo, "status", "--porcelain") == ""
        assert len(store.history.read().records) >= 100

    def test_refuses_tracked_state_file(self, bot_repo: Path) -> None:
        """A state dir whose effective.json is tracked is refused with the path and the fix."""
        state_dir = bot_repo / "config" / "tuning"
        (state_dir / "mechanisms").mkdir(parents=True)
        tracked = state_dir / "mechanisms" / "tuner.json"
        tracked.write_text('{"schema_version": 1}')
        _git(bot_repo, "add", "-f", "config/tuning/mechanisms/tuner.json")
        store = StateStore(state_dir, REGISTRY)
        with pytest.raises(TrackedPathError) as info:
            store.write_mechanism("tuner", {"x": 1})
        message = str(info.value)
        assert "tuner.json" in message and "git rm --cached" in message
        assert tracked.read_text() == '{"schema_version": 1}'  # untouched
        assert (
            _git(bot_repo, "status", "--porcelain").strip()
            == "A  config/tuning/mechanisms/tuner.json"
        )


class TestApply:
    def test_snapshot_is_content_addressed_and_restorable(self, tmp_path: Path) -> None:
        """Every applied version has an immutable snapshot whose id is its content hash."""
        store = StateStore(tmp_path / "state", REGISTRY)
        first = store.apply(Owner.TUNER, {"exit.lowvol.upper_bound_max_sec": 3.7}, T0)
        second = store.apply(
            Owner.TUNER, {"exit.lowvol.upper_bound_max_sec": 3.8}, T0 + timedelta(hours=2)
        )
        assert first.version_after != second.version_after
        snap = store.read_snapshot(first.version_after)
        assert snap["values"] == {"exit.lowvol.upper_bound_max_sec": 3.7}
        assert version_of(snap["values"], snap["presets"]) == first.version_after
        # back to the preset: the runtime layer empties and the version is the base version
        back = store.apply(
            Owner.TUNER,
            {"exit.lowvol.upper_bound_max_sec": 3.6},
            T0 + timedelta(hours=4),
            kind=ApplyKind.ROLLBACK,
        )
        assert back.version_after == store.base_version()

    def test_rejected_changes_write_nothing(self, tmp_path: Path) -> None:
        """A request the guard rejects leaves no state file and records the reason."""
        store = StateStore(tmp_path / "state", REGISTRY)
        record = {"run_id": "x", "mechanism": "policy", "decision": "apply"}
        result = store.apply(
            Owner.POLICY, {"exit.lowvol.upper_bound_max_sec": 3.7}, T0, record=record
        )
        assert not result.applied
        assert not store.effective_path.exists()
        (entry,) = store.history.read().records
        assert entry["knobs"][0]["code"] == "not_owner" and entry["applied"] is False

    def test_dry_run_records_the_proposal_only(self, tmp_path: Path) -> None:
        """Shadow mode (dry run) records what it would apply and writes no state."""
        store = StateStore(tmp_path / "state", REGISTRY)
        store.apply(
            Owner.TUNER,
            {"exit.lowvol.upper_bound_max_sec": 3.7},
            T0,
            dry_run=True,
            record={"run_id": "s", "decision": "shadow"},
        )
        assert not store.effective_path.exists()
        (entry,) = store.history.read().records
        assert entry["proposed_diff"][0]["after"] == 3.7 and entry["diff"] == []

    def test_files_are_private(self, tmp_path: Path) -> None:
        """State files are created readable by the owner only."""
        store = StateStore(tmp_path / "state", REGISTRY)
        store.apply(
            Owner.TUNER, {"exit.lowvol.upper_bound_max_sec": 3.7}, T0, record={"run_id": "p"}
        )
        for path in (store.effective_path, store.history.path):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_mechanism_names_cannot_escape(self, tmp_path: Path) -> None:
        """A mechanism name is never turned into an arbitrary path."""
        store = StateStore(tmp_path / "state", REGISTRY)
        with pytest.raises(StateError, match="unknown mechanism"):
            store.write_mechanism("../../etc/passwd", {})
        with pytest.raises(StateError, match="invalid version"):
            store.read_snapshot("../effective")

    def test_newer_schema_refused(self, tmp_path: Path) -> None:
        """A state file from a newer autolearn is refused, not misread."""
        store = StateStore(tmp_path / "state", REGISTRY)
        store.write_mechanism("tuner", {"a": 1})
        path = store.mechanisms_dir / "tuner.json"
        path.write_text(json.dumps({"schema_version": 99, "a": 1}))
        with pytest.raises(StateError, match="newer"):
            store.read_mechanism("tuner")

    def test_hand_edited_effective_detected(self, tmp_path: Path) -> None:
        """Values that do not match their version id are reported, not trusted."""
        store = StateStore(tmp_path / "state", REGISTRY)
        store.apply(Owner.TUNER, {"exit.lowvol.upper_bound_max_sec": 3.7}, T0)
        doc = json.loads(store.effective_path.read_text())
        doc["values"]["exit.lowvol.upper_bound_max_sec"] = 4.8
        store.effective_path.write_text(json.dumps(doc))
        with pytest.raises(StateError, match="do not match version"):
            store.read_effective()

    def test_lock_busy(self, tmp_path: Path) -> None:
        """A second holder of a mechanism lock gets LockBusy at once."""
        store = StateStore(tmp_path / "state", REGISTRY)
        with store.lock("tuner"), pytest.raises(LockBusy), store.lock("tuner"):
            pass


class TestCrashConsistency:
    def test_crash_between_temp_write_and_rename_keeps_previous(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If the process dies at the rename, the previous version stays readable and whole."""
        store = StateStore(tmp_path / "state", REGISTRY)
        before = store.apply(Owner.TUNER, {"exit.lowvol.upper_bound_max_sec": 3.7}, T0)

        def crash(*_: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(atomic.os, "replace", crash)
        with pytest.raises(StateError, match="no space left"):
            store.apply(
                Owner.TUNER, {"exit.lowvol.upper_bound_max_sec": 3.8}, T0 + timedelta(hours=2)
            )
        monkeypatch.undo()
        assert store.read_effective().version == before.version_after
        leftovers = [p for p in store.root.rglob("*.tmp")]
        assert leftovers == []

    def test_failed_history_append_undoes_the_apply(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An apply whose record cannot be written is undone and says so: nothing changed."""
        store = StateStore(tmp_path / "state", REGISTRY)
        before = store.apply(Owner.TUNER, {"exit.lowvol.upper_bound_max_sec": 3.7}, T0)

        def full(*_: object) -> None:
            raise StateError("cannot append to history: File too large")

        monkeypatch.setattr(store.history, "append", full)
        with pytest.raises(StateError, match="previous version was restored"):
            store.apply(
                Owner.TUNER,
                {"exit.lowvol.upper_bound_max_sec": 3.8},
                T0 + timedelta(hours=2),
                record={"run_id": "x"},
            )
        assert store.read_effective().version == before.version_after

    def test_unrecorded_apply_is_recovered(self, tmp_path: Path) -> None:
        """An apply whose history append was lost is appended by the next apply."""
        store = StateStore(tmp_path / "state", REGISTRY)
        store.apply(
            Owner.TUNER,
            {"exit.lowvol.upper_bound_max_sec": 3.7},
            T0,
            record={"run_id": "lost", "decision": "apply"},
        )
        store.history.path.write_text("")  # the crash: record never reached the history
        store.apply(
            Owner.POLICY,
            {"pockets.micro.allow_new": False},
            T0 + timedelta(hours=1),
            record={"run_id": "next", "decision": "apply"},
        )
        records = store.history.read().records
        assert [r["run_id"] for r in records] == ["lost", "next"]
        assert records[0]["recovered"] is True

    def test_unrecorded_apply_is_recovered_by_a_run_that_applies_nothing(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The next run after a killed apply usually holds: its record recovers the apply
        first, once (found by tests/reliability's kill campaign: a policy run killed between
        effective.json and its record, then a hold, left the apply unrecorded)."""
        store = StateStore(tmp_path / "state", REGISTRY)
        store.apply(
            Owner.TUNER,
            {"exit.lowvol.upper_bound_max_sec": 3.7},
            T0,
            record={"run_id": "lost", "decision": "apply"},
        )
        store.history.path.write_text("")  # the crash: record never reached the history
        later = StateStore(tmp_path / "state", REGISTRY)  # the next run, a new process
        later.record({"run_id": "hold-1", "decision": "hold"})
        later.record({"run_id": "hold-2", "decision": "hold"})
        StateStore(tmp_path / "state", REGISTRY).record({"run_id": "hold-3", "decision": "hold"})
        records = later.history.read().records
        assert [r["run_id"] for r in records] == ["lost", "hold-1", "hold-2", "hold-3"]
        assert records[0]["recovered"] is True

    def test_a_recorded_apply_costs_a_record_no_lock(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The usual case (the apply's record is where it was due) takes no effective lock."""
        store = StateStore(tmp_path / "state", REGISTRY)
        store.record({"run_id": "before", "decision": "hold"})
        store.apply(
            Owner.TUNER, {"exit.lowvol.upper_bound_max_sec": 3.7}, T0, record={"run_id": "a"}
        )
        later = StateStore(tmp_path / "state", REGISTRY)

        def no_lock(*_: object, **__: object) -> None:
            raise AssertionError("the effective lock was taken")

        monkeypatch.setattr(later, "lock", no_lock)
        later.record({"run_id": "hold", "decision": "hold"})
        assert [r["run_id"] for r in later.history.read().records] == ["before", "a", "hold"]

    def test_read_only_state_dir(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A read-only mount fails with a clear StateError and the old version intact."""
        store = StateStore(tmp_path / "state", REGISTRY)
        before = store.apply(Owner.TUNER, {"exit.lowvol.upper_bound_max_sec": 3.7}, T0)

        def read_only(*_: object, **__: object) -> None:
            raise OSError(30, "Read-only file system")  # what mkstemp raises on an ro mount

        monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only)
        with pytest.raises(StateError, match=r"Read-only file system.*permissions and mount"):
            store.apply(
                Owner.TUNER, {"exit.lowvol.upper_bound_max_sec": 3.8}, T0 + timedelta(hours=2)
            )
        monkeypatch.undo()
        assert store.read_effective().version == before.version_after


_SPECS = [s for s in REGISTRY.owned_by(Owner.TUNER)]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(st.sampled_from(_SPECS), st.integers(-3, 3)), min_size=1, max_size=12))
def test_any_sequence_of_applies_stays_legal(tmp_path: Path, moves) -> None:
    """Whatever sequence of step requests arrives, effective values stay legal and readable."""
    from autolearn.core.knobs import step_value

    store = StateStore(tmp_path / f"s{abs(hash(str(moves)))}", REGISTRY)
    now = T0
    for spec, steps in moves:
        now += timedelta(hours=3)
        current = store.current_values()[spec.name]
        store.apply(Owner.TUNER, {spec.name: step_value(spec, current, steps)}, now)
        for name, value in store.current_values().items():
            s = REGISTRY.spec(name)
            if s.lower is not None:
                assert s.lower <= value <= s.upper and is_on_grid(s, float(value))
        assert store.version_of(store.read_effective().values) == store.read_effective().version
