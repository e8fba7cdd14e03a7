"""Streaming QuantRabbit imports: chunks to a sink, the same verdicts as an in-memory import."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from autolearn.core.model import Trade
from autolearn.importers.quantrabbit import import_path
from autolearn.importers.report import ImportReport
from tests.importers.test_quantrabbit import CSV_FULL, HOME_DB, build_v3_db, v3_row

NOW = datetime(2025, 10, 24, tzinfo=UTC)


def _streamed(path: Path, chunk_rows: int) -> tuple[ImportReport, list[list[Trade]]]:
    chunks: list[list[Trade]] = []
    report = import_path(path, now=NOW, sink=chunks.append, chunk_rows=chunk_rows)
    return report, chunks


def _mixed_db(tmp_path: Path) -> Path:
    """Good rows, bad rows and duplicates spread so they straddle chunk boundaries."""
    rows = []
    for i in range(23):
        rows.append(v3_row(ticket_id=str(1000 + i), transaction_id=2000 + i))
        if i % 5 == 2:
            rows.append(v3_row(ticket_id=str(1000 + i), transaction_id=2000 + i))  # duplicate
        if i % 7 == 3:
            rows.append(v3_row(ticket_id=str(5000 + i), close_time="2025-10-23 02:59:03"))
        if i == 11:
            rows.append(v3_row(ticket_id="9001", entry_thesis="{not json"))
    return build_v3_db(tmp_path / "trades.db", rows)


@pytest.mark.parametrize("chunk_rows", [1, 4, 10_000])
def test_streamed_import_hands_over_every_accepted_trade_in_order(
    tmp_path: Path, chunk_rows: int
) -> None:
    """Same trades, in order, in chunks of at most ``chunk_rows``; same rejections and notes."""
    mixed = _mixed_db(tmp_path)
    in_memory = import_path(mixed, now=NOW)
    assert len(in_memory.rejected) == 8 and in_memory.notes  # 5 duplicates, 3 naive times
    for path in (mixed, HOME_DB, CSV_FULL):
        whole = import_path(path, now=NOW)
        report, chunks = _streamed(path, chunk_rows)
        assert [t for chunk in chunks for t in chunk] == list(whole.accepted)
        assert all(0 < len(chunk) <= chunk_rows for chunk in chunks)
        assert report.accepted == ()  # handed over, not held
        assert (report.accepted_count, report.streamed) == (whole.accepted_count,) * 2
        assert report.rejected == whole.rejected
        assert report.notes == whole.notes
        assert report.format(detail_limit=50) == whole.format(detail_limit=50)


def test_duplicates_are_found_across_chunks(tmp_path: Path) -> None:
    """A key repeated after its first chunk went to the sink is still rejected, naming row 1."""
    path = build_v3_db(
        tmp_path / "trades.db",
        [v3_row(), v3_row(ticket_id="2", transaction_id=2), v3_row(), v3_row()],
    )
    report, chunks = _streamed(path, chunk_rows=1)
    assert [len(c) for c in chunks] == [1, 1]
    assert [(r.row, r.column) for r in report.rejected] == [(3, "ticket_id"), (4, "ticket_id")]
    assert all("first seen at row 1" in r.reason for r in report.rejected)


def test_chunk_rows_must_be_positive() -> None:
    """A zero chunk size is a caller's bug, refused before the file is read."""
    with pytest.raises(ValueError, match="chunk_rows"):
        import_path(HOME_DB, now=NOW, sink=lambda chunk: None, chunk_rows=0)
