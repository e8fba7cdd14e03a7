"""A hostile state directory: links, special files, lost and malformed files (issue 13)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autolearn.adapters.history import HistoryFile
from autolearn.adapters.state import StateStore, version_of
from autolearn.core.apply_guard import ApplyKind
from autolearn.core.knobs import Owner
from autolearn.errors import StateError, TrackedPathError
from autolearn.runtime import Tuning
from autolearn.settings import load_registry, packaged_registry_text

REGISTRY = load_registry(None)
T0 = datetime(2025, 10, 23, tzinfo=UTC)
UPPER = "exit.lowvol.upper_bound_max_sec"
ALLOW = "pockets.micro.allow_new"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture(name="repo")
def fixture_repo(tmp_path: Path) -> Path:
    """A bot checkout: tracked config/, ignored logs/."""
    repo = tmp_path / "bot"
    (repo / "config").mkdir(parents=True)
    (repo / "config" / "knobs.yaml").write_text(packaged_registry_text())
    (repo / "config" / "bot.yaml").write_text("tracked: true\n")
    (repo / ".gitignore").write_text("logs/\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "bot")
    return repo


def _block_micro(store: StateStore, at: datetime = T0) -> str:
    store.apply(
        Owner.OPERATOR, {ALLOW: False}, at, kind=ApplyKind.OPERATOR, record={"run_id": "r1"}
    )
    return store.read_effective().version


def _rewrite(store: StateStore, **fields: Any) -> None:
    """Rewrite effective.json with ``fields`` replaced (the hash is recomputed for values)."""
    doc = json.loads(store.effective_path.read_text())
    doc.update(fields)
    if "values" in fields and isinstance(fields["values"], dict):
        doc["version"] = version_of(fields["values"], doc["presets"])
    store.effective_path.write_text(json.dumps(doc))


def _get_within(tuning: Tuning, key: str, seconds: float = 5.0) -> Any:
    """``tuning.get(key)`` in a thread; fails the test if it hangs."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(tuning.get(key)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert out, f"Tuning.get({key!r}) hung for {seconds} s"
    return out[0]


class TestLinks:
    def test_history_link_into_tracked_file_is_refused(self, repo: Path) -> None:
        """A history.jsonl symlinked to a tracked file: the run refuses and writes nothing."""
        state = repo / "logs" / "tuning"
        state.mkdir(parents=True)
        (state / "history.jsonl").symlink_to(Path("../../config/bot.yaml"))
        store = StateStore(state, REGISTRY)
        with pytest.raises(StateError, match="symbolic link"):
            _block_micro(store)
        assert (repo / "config" / "bot.yaml").read_text() == "tracked: true\n"
        assert _git(repo, "status", "--porcelain") == ""
        assert not (state / "snapshots").exists()  # refused before the first write (item 12)

    @pytest.mark.parametrize("subdir", ["snapshots", "locks", "mechanisms"])
    def test_a_linked_subdirectory_is_never_written_through(self, repo: Path, subdir: str) -> None:
        """``snapshots -> ../../config`` (or locks/): refused; nothing lands in the checkout."""
        state = repo / "logs" / "tuning"
        state.mkdir(parents=True)
        (state / subdir).symlink_to(Path("../../config"))
        store = StateStore(state, REGISTRY)
        with pytest.raises(StateError, match="not a directory"):
            if subdir == "mechanisms":
                store.write_mechanism("tuner", {"families": {}})
            else:
                _block_micro(store)
        assert sorted(p.name for p in (repo / "config").iterdir()) == ["bot.yaml", "knobs.yaml"]
        assert _git(repo, "status", "--porcelain") == ""

    def test_history_link_refused_on_append_too(self, tmp_path: Path) -> None:
        """The history appends with O_NOFOLLOW: a link is never written through."""
        target = tmp_path / "target.txt"
        target.write_text("keep\n")
        (tmp_path / "history.jsonl").symlink_to(target)
        with pytest.raises(StateError, match="symbolic link"):
            HistoryFile(tmp_path / "history.jsonl").append({"a": 1})
        assert target.read_text() == "keep\n"

    def test_dangling_effective_link_degrades_the_worker(self, tmp_path: Path) -> None:
        """A dangling effective.json link: the worker keeps its last good version, degraded."""
        store = StateStore(tmp_path / "state", REGISTRY)
        version = _block_micro(store)
        tuning = Tuning(store.root, REGISTRY, refresh_s=0)
        assert tuning.get(ALLOW) is False
        store.effective_path.unlink()
        store.effective_path.symlink_to(tmp_path / "gone.json")
        assert tuning.get(ALLOW) is False
        assert tuning.config_version == version
        assert tuning.degraded is not None and "symbolic link" in tuning.degraded


class TestSpecialFiles:
    @pytest.mark.parametrize("kind", ["fifo", "dev_zero", "directory"])
    def test_special_effective_never_hangs(self, tmp_path: Path, kind: str) -> None:
        """A FIFO, /dev/zero (linked) or a directory as effective.json: no hang, degraded."""
        store = StateStore(tmp_path / "state", REGISTRY)
        _block_micro(store)
        store.effective_path.unlink()
        if kind == "fifo":
            os.mkfifo(store.effective_path)
        elif kind == "dev_zero":
            store.effective_path.symlink_to("/dev/zero")
        else:
            store.effective_path.mkdir()
        tuning = Tuning(store.root, REGISTRY, refresh_s=0)
        assert _get_within(tuning, ALLOW) is False  # recovered from the history
        assert tuning.degraded is not None
        with pytest.raises(StateError, match=r"effective\.json"):
            store.read_effective()

    def test_oversized_file_is_refused(self, tmp_path: Path) -> None:
        """A state file beyond the bound is refused, not read into memory."""
        from autolearn.adapters import files

        path = tmp_path / "big.json"
        path.write_bytes(b" " * 2048)
        with pytest.raises(StateError, match="larger than 1024 bytes"):
            files.read_regular(path, limit=1024)

    def test_history_fifo_is_refused(self, tmp_path: Path) -> None:
        """A FIFO as history.jsonl: reads and appends refuse it at once."""
        os.mkfifo(tmp_path / "history.jsonl")
        history = HistoryFile(tmp_path / "history.jsonl")
        with pytest.raises(StateError, match="FIFO"):
            history.read()
        with pytest.raises(StateError, match="FIFO"):
            history.append({"a": 1})


class TestStateDir:
    @pytest.mark.parametrize("where", ["config", ".", "logs/../config", "link", "config/sub"])
    def test_state_dir_in_the_checkout_is_refused(self, repo: Path, where: str) -> None:
        """A state dir inside the checkout and not ignored: refused before any write (73)."""
        if where == "link":
            (repo / "logs").mkdir()
            (repo / "logs" / "tuning").symlink_to(repo / "config")
            state = repo / "logs" / "tuning"
        else:
            state = repo / where
        store = StateStore(state, REGISTRY)
        with pytest.raises(TrackedPathError, match="state directory") as caught:
            _block_micro(store)
        assert caught.value.exit_code == 73
        assert _git(repo, "status", "--porcelain", "--ignored=no") == ""

    def test_ignored_state_dir_is_accepted(self, repo: Path) -> None:
        """The default logs/tuning (logs/ ignored) is fine; git stays clean."""
        store = StateStore(repo / "logs" / "tuning", REGISTRY)
        _block_micro(store)
        assert _git(repo, "status", "--porcelain") == ""


class TestLostEffective:
    def test_running_worker_keeps_the_block(self, tmp_path: Path) -> None:
        """effective.json deleted under a worker: allow_new stays False, degraded is set."""
        store = StateStore(tmp_path / "state", REGISTRY)
        version = _block_micro(store)
        tuning = Tuning(store.root, REGISTRY, refresh_s=0)
        assert tuning.get(ALLOW) is False
        store.effective_path.unlink()
        assert tuning.get(ALLOW) is False
        assert tuning.config_version == version
        assert tuning.degraded is not None and "missing" in tuning.degraded

    def test_cold_start_recovers_the_recorded_version(self, tmp_path: Path) -> None:
        """A worker starting after the deletion serves the last recorded version, degraded."""
        store = StateStore(tmp_path / "state", REGISTRY)
        version = _block_micro(store)
        store.effective_path.unlink()
        tuning = Tuning(store.root, REGISTRY, refresh_s=0)
        assert tuning.get(ALLOW) is False
        assert tuning.config_version == version
        assert tuning.degraded is not None

    def test_cli_readers_refuse_and_rollback_restores(self, tmp_path: Path) -> None:
        """Strict readers raise StateError naming the fix; rollback to the version restores."""
        store = StateStore(tmp_path / "state", REGISTRY)
        version = _block_micro(store)
        store.effective_path.unlink()
        with pytest.raises(StateError, match=f"rollback --to {version}"):
            store.read_effective()
        with pytest.raises(StateError, match="missing"):
            store.apply(Owner.TUNER, {UPPER: 3.8}, T0 + timedelta(hours=2))
        store.restore(version, Owner.OPERATOR, T0 + timedelta(hours=2), record={"run_id": "r"})
        assert store.read_effective().version == version

    def test_fresh_state_is_still_presets(self, tmp_path: Path) -> None:
        """No history, no effective.json: presets, not an error (a new install)."""
        store = StateStore(tmp_path / "state", REGISTRY)
        assert store.read_effective().version == store.base_version()


class TestMalformed:
    @pytest.mark.parametrize(
        "fields",
        [
            {"changes": []},
            {"sources": "x"},
            {"sources": {UPPER: 5}},
            {"arms": {"a": 1}},
            {"arms": ["x"]},
            {"last_record": 5},
            {"last_record_offset": "7"},
            {"values": {UPPER: [1]}},
            {"changes": {UPPER: [{"at": 5}]}},
        ],
    )
    def test_wrong_types_are_state_errors(self, tmp_path: Path, fields: dict[str, Any]) -> None:
        """Well-formed JSON, wrong field types: StateError for the CLI, last good for a worker."""
        store = StateStore(tmp_path / "state", REGISTRY)
        _block_micro(store)
        tuning = Tuning(store.root, REGISTRY, refresh_s=0)
        assert tuning.get(ALLOW) is False
        _rewrite(store, **fields)
        with pytest.raises(StateError, match="malformed state"):
            store.read_effective()
        assert tuning.get(ALLOW) is False
        assert tuning.degraded is not None
        assert Tuning(store.root, REGISTRY, refresh_s=0).get(ALLOW) is False  # cold start

    def test_deep_nesting_is_a_state_error(self, tmp_path: Path) -> None:
        """~3,000 nested brackets: StateError in effective.json; a corrupt line in history."""
        store = StateStore(tmp_path / "state", REGISTRY)
        _block_micro(store)
        deep = "[" * 3000 + "]" * 3000
        store.effective_path.write_text(deep)
        with pytest.raises(StateError, match="nested too deeply"):
            store.read_effective()
        assert Tuning(store.root, REGISTRY, refresh_s=0).get(ALLOW) is False
        with store.history.path.open("a") as handle:
            handle.write(deep + "\n")
        read = store.history.read()
        assert read.corrupt_lines == [2]
        assert store.history.read_runs().corrupt_lines == [2]

    def test_control_mechanisms_as_a_list(self, tmp_path: Path) -> None:
        """control.json with ``mechanisms`` as a list: a StateError naming the field."""
        store = StateStore(tmp_path / "state", REGISTRY)
        store.control_path.parent.mkdir(parents=True)
        store.control_path.write_text(json.dumps({"schema_version": 1, "mechanisms": ["tuner"]}))
        with pytest.raises(StateError, match="'mechanisms' must be an object"):
            store.is_frozen("tuner")


class TestServedValues:
    @pytest.mark.parametrize("bad", [999.0, "3.8", float("nan"), True])
    def test_out_of_registry_values_are_not_served(self, tmp_path: Path, bad: object) -> None:
        """A value with a matching hash but refused by the registry is never served."""
        store = StateStore(tmp_path / "state", REGISTRY)
        store.apply(Owner.TUNER, {UPPER: 3.8}, T0, record={"run_id": "a"})
        tuning = Tuning(store.root, REGISTRY, refresh_s=0)
        assert tuning.get(UPPER) == 3.8
        _rewrite(store, values={UPPER: bad})
        assert tuning.get(UPPER) == 3.8  # the last good version
        assert tuning.degraded is not None and "registry refuses" in tuning.degraded
        cold = Tuning(store.root, REGISTRY, refresh_s=0)
        served = cold.get(UPPER)
        assert served in (3.6, 3.8) and cold.degraded is not None


class TestLeftovers:
    def test_stale_temp_files_are_removed(self, tmp_path: Path) -> None:
        """Temp files a killed apply left behind go at the next apply; a fresh one stays."""
        store = StateStore(tmp_path / "state", REGISTRY)
        _block_micro(store)
        stale = store.root / ".effective.json.abc123.tmp"
        fresh = store.root / ".effective.json.def456.tmp"
        stale.write_text("{")
        fresh.write_text("{")
        old = time.time() - 3600
        os.utime(stale, (old, old))
        store.apply(Owner.TUNER, {UPPER: 3.8}, T0 + timedelta(hours=2), record={"run_id": "b"})
        assert not stale.exists()
        assert fresh.exists()

    def test_tracked_history_leaves_nothing_behind(self, repo: Path) -> None:
        """A tracked history.jsonl: refused (73) with no snapshot or lock file in the checkout."""
        state = repo / "state"
        state.mkdir()
        (state / "history.jsonl").write_text("")
        _git(repo, "add", "state/history.jsonl")
        _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "h")
        store = StateStore(state, REGISTRY)
        with pytest.raises(TrackedPathError):
            _block_micro(store)
        assert sorted(p.name for p in state.iterdir()) == ["history.jsonl"]
        assert _git(repo, "status", "--porcelain") == ""
