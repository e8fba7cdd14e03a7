"""The state reads a replay makes every cycle stay exact when they are incremental or memoized.

``HistoryFile.last_applied_version`` parses only what was appended since it last looked, and
must still give what a full scan gives, whatever happens to the file between two calls (torn
lines, a line without newline, truncation, replacement). ``read_regular(start=...)`` must equal
slicing the whole file. ``StateStore.read_effective`` answers from a memo while the file's bytes
are unchanged; a write by another store (another process) must be seen, and a caller changing
the layer it got must not change the next answer.
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autolearn.adapters.files import read_regular
from autolearn.adapters.history import HistoryFile
from autolearn.adapters.state import StateStore
from autolearn.core.knobs import Owner
from autolearn.settings import load_registry

REGISTRY = load_registry(None)
T0 = datetime(2025, 10, 23, 0, 0, tzinfo=UTC)
KNOB = "exit.lowvol.upper_bound_max_sec"


def _full_scan(history: HistoryFile) -> str | None:
    """What ``StateStore.last_recorded_version`` computed before it was incremental."""
    for record in reversed(history.read().records):
        version = record.get("version_after")
        if isinstance(version, str) and record.get("applied") is True:
            return version
    return None


def _append_raw(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_last_applied_version_equals_a_full_scan(tmp_path: Path, seed: int) -> None:
    """Random appends, torn and unterminated lines, truncations and replacements."""
    rng = random.Random(seed)
    path = tmp_path / "history.jsonl"
    history = HistoryFile(path)
    answers = set()
    for step in range(600):
        roll = rng.random()
        if roll < 0.6:
            history.append(
                {"applied": rng.random() < 0.3, "version_after": f"v{step}" if roll < 0.55 else ""}
            )
        elif roll < 0.7:
            _append_raw(path, b'{"applied": true, "version_after": "torn')
        elif roll < 0.76:
            _append_raw(path, b'{"applied": true, "version_after": "open%d"}' % step)
        elif roll < 0.8 and path.exists():
            data = path.read_bytes()
            path.write_bytes(data[: rng.randrange(len(data) + 1)])  # same inode, shorter
        elif roll < 0.83 and path.exists():
            replacement = tmp_path / "new.jsonl"
            replacement.write_bytes(path.read_bytes()[:-3])
            os.replace(replacement, path)  # rotated: another inode
        got = history.last_applied_version()
        assert got == _full_scan(history), f"step {step}"
        answers.add(got)
    assert len(answers) > 10  # the walk really moved the answer around


def test_last_applied_version_sees_an_in_place_rewrite(tmp_path: Path) -> None:
    """Same inode, same length, different bytes before the read point: read again."""
    path = tmp_path / "history.jsonl"
    history = HistoryFile(path)
    history.append({"applied": True, "version_after": "vaaaa"})
    assert history.last_applied_version() == "vaaaa"
    data = path.read_bytes()
    with path.open("r+b") as handle:  # rewritten in place, as no autolearn writer does
        handle.write(data.replace(b"vaaaa", b"vbbbb"))
    assert history.last_applied_version() == "vbbbb"
    path.unlink()
    assert history.last_applied_version() is None


def test_read_tail_from_an_offset(tmp_path: Path) -> None:
    """``start`` inside the file: its tail; past the end (truncated): the whole file."""
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    assert read_regular(path, start=4) == b"456789"
    assert read_regular(path, start=10) == b""
    assert read_regular(path, start=11) == b"0123456789"
    assert read_regular(path, start=0) == b"0123456789"


def test_read_from_offset_equals_the_old_whole_file_slice(tmp_path: Path) -> None:
    history = HistoryFile(tmp_path / "history.jsonl")
    for i in range(5):
        history.append({"run_id": f"r{i}"})
    offset = len(history.path.read_bytes().split(b"\n")[0]) + 1
    assert [r["run_id"] for r in history.read_from(offset)] == ["r1", "r2", "r3", "r4"]
    assert [r["run_id"] for r in history.read_from(10**9)] == [f"r{i}" for i in range(5)]


def test_read_effective_sees_another_writer_and_hands_out_copies(tmp_path: Path) -> None:
    reader = StateStore(tmp_path / "state", REGISTRY)
    writer = StateStore(tmp_path / "state", REGISTRY)  # another process, in effect
    writer.apply(Owner.TUNER, {KNOB: 3.7}, T0)
    first = reader.read_effective()
    assert first.values == {KNOB: 3.7}
    first.values[KNOB] = 99.0  # a caller changing what it got
    first.sources[KNOB]["writer"] = "someone"
    again = reader.read_effective()
    assert again.values == {KNOB: 3.7} and again.sources[KNOB]["writer"] == "tuner"
    writer.apply(Owner.TUNER, {KNOB: 3.8}, T0 + timedelta(hours=2))
    latest = reader.read_effective()
    assert latest.values == {KNOB: 3.8} and latest.version != first.version
    assert latest == writer.read_effective()


def test_read_snapshot_memo_still_verifies_every_read(tmp_path: Path) -> None:
    """A snapshot changed on disk after a read is refused, and callers get their own copy."""
    from autolearn.errors import StateError

    store = StateStore(tmp_path / "state", REGISTRY)
    version = store.apply(Owner.TUNER, {KNOB: 3.7}, T0).version_after
    first = store.read_snapshot(version)
    first["values"][KNOB] = 1.0
    assert store.read_snapshot(version)["values"] == {KNOB: 3.7}
    path = store.snapshots_dir / f"{version}.json"
    path.write_text(path.read_text().replace("3.7", "3.9"))
    with pytest.raises(StateError, match="corrupt"):
        store.read_snapshot(version)


def test_version_for_is_the_arms_version(tmp_path: Path) -> None:
    """The replay's shortcut pins what ``Tuning.arm(unit).version`` pins, arm by arm."""
    from autolearn.core.apply_guard import ApplyKind
    from autolearn.core.arms import ArmSplit
    from autolearn.runtime import Tuning

    micro = "strategies.MomentumPulse.min_confidence"
    store = StateStore(tmp_path / "state", REGISTRY)
    split = ArmSplit(
        split_id=f"tuner/micro.entry/{T0.isoformat()}",
        mechanism="tuner",
        family="micro.entry",
        share=0.3,
        baseline={micro: 0.65},
    )
    store.apply(Owner.TUNER, {micro: 0.67}, T0, kind=ApplyKind.APPLY, start_arms=split)
    tuning = Tuning(store.root, REGISTRY, refresh_s=0.0)
    versions = {tuning.version_for(f"u{i}") for i in range(200)}
    assert len(versions) == 2  # both arms are reached
    assert all(tuning.version_for(f"u{i}") == tuning.arm(f"u{i}").version for i in range(200))
