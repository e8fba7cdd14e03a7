"""`autolearn history` folds repeated runs into one row and shows them all with --expand;
`status` reads old history segments only through their summaries and reports their bad lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autolearn.adapters.history import HistoryFile, RotationPolicy
from autolearn.cli import main
from autolearn.core.record_view import fold_rows
from autolearn.core.run_record import RunRecord
from autolearn.core.timestamps import format_utc


def _freeze(at: datetime, i: int, mechanism: str = "tuner") -> dict[str, Any]:
    return {
        "at": format_utc(at),
        "run_id": f"{mechanism}-{i}",
        "mechanism": mechanism,
        "decision": "freeze",
        "reasons": ["operator_frozen: incident"],
        "applied": False,
        "diff": [],
        "knobs": [],
    }


@pytest.fixture(name="state")
def fixture_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state"
    for name in ("AUTOLEARN_REGISTRY", "AUTOLEARN_LEDGER_URL", "AUTOLEARN_HISTORY_RETENTION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUTOLEARN_BOT_ROOT", str(tmp_path))
    monkeypatch.setenv("AUTOLEARN_STATE_DIR", str(state))
    monkeypatch.setenv("COLUMNS", "250")
    return state


class TestFold:
    def test_repeats_fold_into_one_row_with_count_and_range(self) -> None:
        """Three equal freezes of the tuner, a policy run between them: two rows, nothing lost."""
        now = datetime(2026, 12, 1, tzinfo=UTC)
        records = [_freeze(now + timedelta(minutes=10 * i), i) for i in range(3)]
        records.insert(1, _freeze(now, 9, "policy"))
        rows = fold_rows([RunRecord.from_json(r) for r in records])
        assert [(r.row.mechanism, r.count) for r in rows] == [("tuner", 3), ("policy", 1)]
        assert (rows[0].first_run_id, rows[0].last_run_id) == ("tuner-0", "tuner-2")
        assert rows[0].runs.startswith("3 runs 2026-12-01T00:00:00 .. 2026-12-01T00:20:00")

    def test_a_different_decision_starts_a_new_row(self) -> None:
        """A run that differs (here its reasons) is its own row, and so is the next repeat."""
        now = datetime(2026, 12, 1, tzinfo=UTC)
        records = [_freeze(now + timedelta(minutes=i), i) for i in range(3)]
        records[1]["reasons"] = ["other"]
        rows = fold_rows([RunRecord.from_json(r) for r in records])
        assert [r.count for r in rows] == [1, 1, 1]


class TestCommand:
    def test_history_folds_and_expands(
        self, state: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The table shows one row for 5 repeats; --expand and --json show each run."""
        history = HistoryFile(state / "history.jsonl")
        now = datetime.now(UTC) - timedelta(hours=1)
        for i in range(5):
            history.append(_freeze(now + timedelta(minutes=i), i))
        assert main(["history", "--since", "24h"]) == 0
        out = capsys.readouterr().out
        assert "5 runs" in out and "tuner-0 .. tuner-4" in out
        assert main(["history", "--since", "24h", "--expand"]) == 0
        out = capsys.readouterr().out
        assert "5 runs" not in out and all(f"tuner-{i}" in out for i in range(5))
        assert main(["history", "--since", "24h", "--json"]) == 0
        lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
        assert [r["run_id"] for r in lines] == [f"tuner-{i}" for i in range(5)]

    def test_status_counts_every_segment_and_names_their_bad_lines(
        self, state: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Old segments count in the record total; a corrupt line in one is a problem."""
        history = HistoryFile(state / "history.jsonl", RotationPolicy(max_age=timedelta(hours=1)))
        start = datetime.now(UTC) - timedelta(days=3)
        for i in range(30):
            history.append(_freeze(start + timedelta(hours=2 * i), i))
            if i == 3:
                with history.path.open("ab") as handle:
                    handle.write(b"{not json\n")
        assert len(list(state.glob("history-*.jsonl"))) >= 20
        main(["status", "--json"])
        doc = json.loads(capsys.readouterr().out)
        assert doc["history"]["records"] == 30
        assert any("corrupt lines 2" in p for p in doc["problems"])
        assert doc["mechanisms"][0]["last_run"]["run_id"] == "tuner-29"
