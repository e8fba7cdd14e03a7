"""A malformed record in the history is skipped and reported by status, metrics, history, doctor."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from autolearn.adapters.history import HistoryFile
from autolearn.core.timestamps import format_utc
from autolearn.ops.prometheus import render_metrics
from autolearn.ops.status import LedgerProbe, StatusInputs, build_status

NOW = datetime(2025, 10, 23, 3, 0, tzinfo=UTC)
FRESH = LedgerProbe(source="sqlite:///l.db", last_close_at=NOW - timedelta(minutes=5), trades=9)
CONTROL = {"mechanisms": {"tuner": {"enabled": True, "enabled_at": format_utc(NOW)}}}


def _run(minutes_ago: float, **extra: Any) -> dict[str, Any]:
    return {
        "at": format_utc(NOW - timedelta(minutes=minutes_ago)),
        "run_id": f"tuner-{minutes_ago}",
        "mechanism": "tuner",
        "decision": "hold",
        "reasons": ["no_signal"],
        "applied": False,
        **extra,
    }


class TestPure:
    def test_a_record_that_does_not_parse_degrades_status(self) -> None:
        """The bad record is skipped and named (field and position); the good ones still count."""
        records = [_run(2), _run(1, reasons="no_signal"), _run(1, diff="x")]
        report = build_status(
            StatusInputs(records=records, history_path="h", control=CONTROL, ledger=FRESH), NOW
        )
        assert report.mechanism("tuner").last_run is not None
        assert report.mechanism("tuner").last_run.run_id == "tuner-2"
        assert report.history_records == 1
        (problem,) = report.problems
        assert problem.startswith("h: 2 malformed records skipped (record #2: run record field")
        assert "reasons" in problem and "diff" in problem
        assert report.exit_code == 1

    def test_malformed_lines_from_the_shell(self) -> None:
        """Lines the history reader skipped are reported with their line numbers."""
        inputs = StatusInputs(
            records=[_run(1)],
            history_path="h",
            history_malformed=[(3, "run record field applied: expected true or false")],
            control=CONTROL,
            ledger=FRESH,
        )
        report = build_status(inputs, NOW)
        assert report.problems == (
            "h: 1 malformed records skipped (line 3: run record field applied: "
            "expected true or false)",
        )
        assert report.exit_code == 1

    def test_metrics_skip_it(self) -> None:
        """Metrics count the records that parse and do not crash on the one that does not."""
        records = [_run(2), _run(1, verdicts={"f": {"outcome": 3}})]
        inputs = StatusInputs(records=records, history_path="h", control=CONTROL, ledger=FRESH)
        text = render_metrics(build_status(inputs, NOW), records)
        assert 'autolearn_decisions_total{decision="hold",mechanism="tuner"} 1' in text
        assert "autolearn_status_code 1" in text


def _history(bot_env: dict[str, str]) -> HistoryFile:
    history = HistoryFile(Path(bot_env["AUTOLEARN_STATE_DIR"]) / "history.jsonl")
    now = datetime.now(UTC)
    history.append({"at": format_utc(now), "mechanism": "tuner", "decision": "hold"})
    history.append({"at": format_utc(now), "mechanism": "tuner", "reasons": "[/oops]"})
    return history


class TestCommands:
    def test_status_reports_the_line_and_field(self, cli, bot_env) -> None:
        """`status` does not crash: the malformed line is a problem naming the field."""
        _history(bot_env)
        result = cli("status", "--json")
        assert result.code == 1, result.err
        problems = json.loads(result.out)["problems"]
        assert any(
            "malformed records skipped (line 2: run record field reasons" in p for p in problems
        )
        text = cli("status")
        assert text.code == 1 and "line 2: run record field reasons" in text.out

    def test_history_shows_the_others_and_notes_it(self, cli, bot_env) -> None:
        """`history` lists the readable records and names the skipped line."""
        _history(bot_env)
        result = cli("history", "--json")
        assert result.code == 0
        assert [json.loads(x)["decision"] for x in result.out.splitlines()] == ["hold"]
        assert "skipped malformed history line 2" in result.err
        table = cli("history")
        assert table.code == 0 and "malformed history line 2" in table.out

    def test_metrics_and_doctor(self, cli, bot_env, tmp_path: Path) -> None:
        """`metrics` writes its file; `doctor` warns about the line like a corrupt one."""
        _history(bot_env)
        out = tmp_path / "textfile"
        out.mkdir()
        assert cli("metrics", "--textfile", str(out)).code == 0
        assert "autolearn_decisions_total" in (out / "autolearn.prom").read_text()
        doctor = cli("doctor", "--json")
        findings = json.loads(doctor.out)
        assert any("corrupt lines [2]" in f["what"] for f in findings)
