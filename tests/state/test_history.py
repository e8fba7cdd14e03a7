"""The JSONL history tolerates a torn last line and never merges it with the next record."""

from __future__ import annotations

from pathlib import Path

from autolearn.adapters.history import HistoryFile


def test_torn_last_line_is_skipped_and_sealed(tmp_path: Path) -> None:
    """A crash mid-append leaves a fragment; readers skip it and the next append is whole."""
    history = HistoryFile(tmp_path / "history.jsonl")
    history.append({"run_id": "a"})
    with history.path.open("ab") as handle:
        handle.write(b'{"run_id": "b", "deci')  # torn: no newline
    read = history.read()
    assert [r["run_id"] for r in read.records] == ["a"] and read.torn_last_line
    history.append({"run_id": "c"})
    read = history.read()
    assert [r["run_id"] for r in read.records] == ["a", "c"]
    assert read.corrupt_lines == [2] and not read.torn_last_line


def test_missing_file_reads_empty(tmp_path: Path) -> None:
    """No history yet is an empty history, not an error."""
    read = HistoryFile(tmp_path / "none.jsonl").read()
    assert read.records == [] and not read.torn_last_line
