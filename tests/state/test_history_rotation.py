"""The history folds repeats and rotates segments without losing or doubling a record.

Properties (Hypothesis): whatever is appended reads back exactly (canonical JSON text), folded
or not, across any number of rotations; a crash (a kill, simulated by an exception nothing
catches) at any step of a rotation loses no record whose append returned and doubles none.
``read_runs_since`` opens only the segments its window needs, and ``read_status`` gives
``status`` exactly what the whole history gives it.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import autolearn.adapters.history as history_module
from autolearn.adapters.history import HistoryFile, RotationPolicy, strict_json
from autolearn.core.timestamps import format_utc
from autolearn.ops.schedules import SCHEDULES
from autolearn.ops.status import LedgerProbe, StatusInputs, build_status

T0 = datetime(2026, 11, 1, tzinfo=UTC)
KEEP_ALL = timedelta(days=3650)
SMALL = RotationPolicy(max_bytes=4000, max_age=timedelta(hours=6), retention=KEEP_ALL)

_LEAVES = st.none() | st.booleans() | st.integers(-2, 2) | st.floats(-1, 1) | st.text(max_size=2)
_PAYLOAD = st.recursive(
    _LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["x", "y", "_fold_items", "0"]), inner, max_size=3)
    ),
    max_leaves=10,
)


def _record(i: int, minutes: int, payload: Any, mechanism: str, decision: str) -> dict[str, Any]:
    return {
        "at": format_utc(T0 + timedelta(minutes=minutes)),
        "run_id": f"run-{i}",
        "mechanism": mechanism,
        "decision": decision,
        "metrics": {"stale": "newest close is 6:21:00 old", "payload": payload},
        "knobs": [{"knob": f"k{j}", "code": "frozen", "detail": "x" * 40} for j in range(8)],
    }


_RUNS = st.lists(
    st.tuples(
        st.integers(0, 240),  # minutes after the previous run
        _PAYLOAD,
        st.sampled_from(["tuner", "policy"]),
        st.sampled_from(["freeze", "hold"]),
    ),
    min_size=1,
    max_size=40,
)


def _build(runs: list[tuple[int, Any, str, str]]) -> list[dict[str, Any]]:
    out, minutes = [], 0
    for i, (gap, payload, mechanism, decision) in enumerate(runs):
        minutes += gap
        out.append(_record(i, minutes, payload, mechanism, decision))
    return out


def _texts(records: list[dict[str, Any]]) -> list[str]:
    return [strict_json(r) for r in records]


@pytest.fixture(name="tmp")
def fixture_tmp() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:  # Hypothesis examples share one test call
        yield Path(name)


class TestLossless:
    @settings(max_examples=60, deadline=None)
    @given(runs=_RUNS)
    def test_what_is_appended_reads_back_exactly(self, runs: list[Any]) -> None:
        """Folded and rotated, every record reads back as its exact canonical text, in order."""
        with tempfile.TemporaryDirectory() as name:
            history = HistoryFile(Path(name) / "history.jsonl", SMALL)
            records = _build(runs)
            for record in records:
                history.append(record)
            assert _texts(history.read().records) == _texts(records)
            assert _texts(HistoryFile(history.path).read().records) == _texts(records)

    def test_a_repeat_is_stored_small(self, tmp: Path) -> None:
        """A run that repeats the last one of its mechanism and decision is a short delta line."""
        history = HistoryFile(tmp / "history.jsonl")
        first = _record(0, 0, None, "tuner", "freeze")
        first["families"] = {f"f{i}": {"detail": "y" * 300} for i in range(20)}  # ~7 KB
        second = {**first, "at": format_utc(T0 + timedelta(minutes=10)), "run_id": "run-1"}
        second["metrics"] = {**first["metrics"], "stale": "newest close is 6:31:00 old"}
        history.append(first)
        history.append(second)
        lines = history.path.read_bytes().splitlines()
        assert len(lines[0]) > 7000 and len(lines[1]) < 400
        folded = json.loads(lines[1])
        assert folded["run_id"] == "run-1" and folded["_fold"]["base"] == 0
        assert _texts(history.read().records) == _texts([first, second])

    def test_a_delta_without_its_base_is_reported_not_guessed(self, tmp: Path) -> None:
        """A delta line whose base is gone is a corrupt line; the other records still read."""
        history = HistoryFile(tmp / "history.jsonl")
        for i in range(3):
            history.append(_record(i, i, None, "tuner", "freeze"))
        lines = history.path.read_bytes().splitlines(keepends=True)
        assert b"_fold" in lines[1]
        history.path.write_bytes(b'{"not":"the base"}\n' + b"".join(lines[1:]))
        read = history.read()
        assert read.corrupt_lines == [2, 3]
        assert [r.get("run_id") for r in read.records] == [None]

    def test_fold_off_writes_every_record_in_full(self, tmp: Path) -> None:
        """``RotationPolicy(fold=False)`` keeps the plain one-record-per-line file."""
        history = HistoryFile(tmp / "history.jsonl", RotationPolicy(fold=False))
        records = [_record(i, i, None, "tuner", "freeze") for i in range(3)]
        for record in records:
            history.append(record)
        assert history.path.read_text().splitlines() == _texts(records)


class _Killed(BaseException):
    """The process dies here: nothing catches it, no clean-up runs."""


def _kill_points() -> dict[str, Callable[[pytest.MonkeyPatch], None]]:
    real_rename, real_write, real_unlink = os.rename, history_module.atomic_write_bytes, Path.unlink

    def before_summary(mp: pytest.MonkeyPatch) -> None:
        mp.setattr(history_module, "atomic_write_bytes", _raise)

    def after_summary(mp: pytest.MonkeyPatch) -> None:
        def write(path: Path, data: bytes) -> None:
            real_write(path, data)
            raise _Killed

        mp.setattr(history_module, "atomic_write_bytes", write)

    def after_rename(mp: pytest.MonkeyPatch) -> None:
        def rename(src: Any, dst: Any) -> None:
            real_rename(src, dst)
            raise _Killed

        mp.setattr(os, "rename", rename)

    def mid_retention(mp: pytest.MonkeyPatch) -> None:
        def unlink(self: Path, missing_ok: bool = False) -> None:
            real_unlink(self, missing_ok=missing_ok)
            raise _Killed  # the segment is gone, its summary is left behind

        mp.setattr(Path, "unlink", unlink)

    return {
        "before_summary": before_summary,
        "after_summary": after_summary,
        "after_rename": after_rename,
        "mid_retention": mid_retention,
    }


def _raise(*_: Any, **__: Any) -> None:
    raise _Killed


def _rotates(history: HistoryFile, record: dict[str, Any], policy: RotationPolicy) -> bool:
    """Whether appending ``record`` rotates first (the active segment spans ``max_age``)."""
    if not history.size():
        return False
    first = json.loads(history.path.read_bytes().splitlines()[0])["at"]
    span = datetime.fromisoformat(record["at"]) - datetime.fromisoformat(first)
    return span >= policy.max_age


class TestCrashMidRotation:
    @pytest.mark.parametrize(
        ("point", "kill_at"),
        [(p, n) for p in sorted(_kill_points()) for n in (1, 4) if (p, n) != ("mid_retention", 1)],
    )  # retention (12 h of 6 h segments) first deletes at the fourth rotation
    def test_no_record_lost_or_doubled(
        self, tmp: Path, monkeypatch: pytest.MonkeyPatch, point: str, kill_at: int
    ) -> None:
        """Killed at a rotation step, then run again: each returned append is there once."""
        policy = RotationPolicy(
            max_bytes=1 << 20, max_age=timedelta(hours=6), retention=timedelta(hours=12)
        )
        rng = random.Random(kill_at)
        records = [
            _record(i, i * 60, rng.random(), rng.choice(["tuner", "policy"]), "hold")
            for i in range(60)
        ]
        history = HistoryFile(tmp / "history.jsonl", policy)
        appended: list[dict[str, Any]] = []
        rotations = 0
        for record in records:
            if _rotates(history, record, policy):
                rotations += 1
                if rotations == kill_at:
                    with monkeypatch.context() as mp:
                        _kill_points()[point](mp)
                        with pytest.raises(_Killed):
                            history.append(record)
                    history = HistoryFile(history.path, policy)  # a new process
                    continue  # the killed append never returned: its record may be absent
            history.append(record)
            appended.append(record)
        read = history.read()
        ids = [r["run_id"] for r in read.records]
        assert len(ids) == len(set(ids)), "a record was doubled"
        # retention (12 h) may drop whole old segments, never a record inside the window
        newest = T0 + timedelta(minutes=60 * 59)
        kept = [r for r in appended if r["at"] >= format_utc(newest - timedelta(hours=12))]
        assert set(_texts(kept)) <= set(_texts(read.records))
        assert _texts(read.records) == [
            t for t in _texts(appended) if t in set(_texts(read.records))
        ]
        assert not read.corrupt_lines and not read.segment_problems


class TestSegments:
    def _history(self, tmp: Path, hours: int, policy: RotationPolicy) -> HistoryFile:
        history = HistoryFile(tmp / "history.jsonl", policy)
        for i in range(hours):
            history.append(_record(i, i * 60, i % 3, ["tuner", "policy"][i % 2], "hold"))
        return history

    def test_since_reads_only_the_segments_it_needs(
        self, tmp: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """--since 30h of five daily segments: the same records as a full read, two files opened."""
        policy = RotationPolicy(max_age=timedelta(days=1), retention=KEEP_ALL)
        history = self._history(tmp, 24 * 5, policy)
        assert len(list(tmp.glob("history-*.jsonl"))) == 4
        cutoff = T0 + timedelta(hours=24 * 5 - 30)
        expected = [r for r in history.read_runs().runs if r.at is not None and r.at >= cutoff]
        opened: list[str] = []
        real = history_module.read_segment

        def spy(path: Path) -> Any:
            opened.append(path.name)
            return real(path)

        monkeypatch.setattr(history_module, "read_segment", spy)
        got = history.read_runs_since(cutoff).runs
        assert [r.run_id for r in got] == [r.run_id for r in expected] and len(got) == 30
        assert len(opened) == 2 and "history.jsonl" in opened  # the active one and the last day
        assert list(history.since(cutoff)) == [r.to_json() for r in expected]

    def test_retention_deletes_only_what_it_says(self, tmp: Path) -> None:
        """Segments wholly older than the retention go; the rest, and the newest rotated, stay."""
        policy = RotationPolicy(max_age=timedelta(days=1), retention=timedelta(days=2))
        history = self._history(tmp, 24 * 6, policy)
        records = history.read().records
        newest = T0 + timedelta(hours=24 * 6 - 1)
        assert min(r["at"] for r in records) >= format_utc(newest - timedelta(days=3))
        assert {r["run_id"] for r in records} >= {
            f"run-{i}"
            for i in range(24 * 6)
            if T0 + timedelta(hours=i) >= newest - timedelta(days=2)
        }
        assert not list(tmp.glob("*.summary.json")) or all(
            p.with_name(p.name.replace(".summary.json", ".jsonl")).exists()
            for p in tmp.glob("*.summary.json")
        )

    def test_read_from_finds_a_record_written_across_a_rotation(self, tmp: Path) -> None:
        """The position taken before an append finds its record even when the append rotated."""
        policy = RotationPolicy(max_age=timedelta(hours=1), retention=KEEP_ALL)
        history = HistoryFile(tmp / "history.jsonl", policy)
        history.append(_record(0, 0, None, "tuner", "hold"))
        position = history.position()
        history.append(_record(1, 120, None, "tuner", "hold"))  # rotates first
        assert list(tmp.glob("history-*.jsonl"))
        assert [r["run_id"] for r in history.read_from(position)] == ["run-1"]
        for i in range(2, 40):
            history.append(_record(i, 120 + i, "padding" * 20, "policy", "hold"))
        assert "run-1" in [r["run_id"] for r in history.read_from(position)]

    def test_a_torn_last_line_is_sealed_before_rotation_and_reported(self, tmp: Path) -> None:
        """A crash mid-append, then a rotation: the fragment is a corrupt line of the segment."""
        policy = RotationPolicy(max_age=timedelta(hours=1), retention=KEEP_ALL)
        history = HistoryFile(tmp / "history.jsonl", policy)
        history.append(_record(0, 0, None, "tuner", "hold"))
        with history.path.open("ab") as handle:
            handle.write(b'{"run_id": "torn", "deci')
        assert history.read().torn_last_line
        history.append(_record(1, 120, None, "tuner", "hold"))
        read = history.read()
        assert [r["run_id"] for r in read.records] == ["run-0", "run-1"]
        assert not read.torn_last_line and len(read.segment_problems) == 1
        assert "corrupt lines 2" in read.segment_problems[0]


# -- status from the window and the landmarks == status from the whole history ------------------
_MECHANISMS = [*SCHEDULES, "reconcile", "operator"]
_DECISIONS = ["hold", "apply", "rollback", "operator_enable", "operator_disable", "clean"]
_DECISIONS += ["mismatch", "freeze", "operator_freeze"]
_BLOCK = "pockets.micro.allow_new"
NOW = T0 + timedelta(days=6)


def _status_record(rng: random.Random, i: int, at: datetime) -> dict[str, Any]:
    mechanism = rng.choice(_MECHANISMS)
    decision = rng.choice(_DECISIONS)
    applied = decision in ("apply", "rollback") and rng.random() < 0.7
    record: dict[str, Any] = {
        "at": format_utc(at),
        "run_id": f"r{i}",
        "mechanism": mechanism,
        "decision": decision,
        "reasons": [rng.choice(["a", "b", "operator: x"])],
        "applied": applied,
        "diff": [{"knob": _BLOCK, "before": True, "after": rng.random() < 0.5}] if applied else [],
    }
    if rng.random() < 0.3:
        record["in_flight"] = {"knob": rng.choice(["k1", "k2"])}
    if decision == "mismatch":
        record["findings_total"] = rng.randint(1, 5)
    return record


def _report(records: Any, total: int | None, problems: Any = ()) -> dict[str, Any]:
    inputs = StatusInputs(
        records=records,
        history_path="history.jsonl",
        history_records=total,
        history_problems=problems,
        control={"mechanisms": {"tuner": {"enabled": True, "enabled_at": format_utc(T0)}}},
        effective_values={_BLOCK: False},
        presets={_BLOCK: True},
        ledger=LedgerProbe(source="sqlite:///l.db", last_close_at=NOW, trades=1),
    )
    return build_status(inputs, NOW).to_json()


class TestStatusFromLandmarks:
    @pytest.mark.parametrize("seed", range(6))
    def test_same_report_as_the_whole_history(self, tmp: Path, seed: int) -> None:
        """Six days in six-hour segments, clocks a little out of order: the same report."""
        rng = random.Random(seed)
        policy = RotationPolicy(max_age=timedelta(hours=6), retention=KEEP_ALL)
        history = HistoryFile(tmp / "history.jsonl", policy)
        minutes = 0
        for i in range(300):
            minutes += rng.randint(0, 60)
            jitter = timedelta(minutes=rng.choice([0, 0, 0, -90]))  # a record out of order
            history.append(_status_record(rng, i, T0 + timedelta(minutes=minutes) + jitter))
        assert len(list(tmp.glob("history-*.jsonl"))) > 5
        full = history.read_runs()
        fast = history.read_status(NOW - timedelta(hours=24))
        assert len(fast.read.runs) < len(full.runs)
        assert fast.total_runs == len(full.runs)
        assert _report(fast.read.runs, fast.total_runs) == _report(full.runs, None)
