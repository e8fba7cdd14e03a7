"""Prometheus textfile metrics: valid exposition format, counts over the history, atomic file."""

from __future__ import annotations

import contextlib
import math
import os
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autolearn.core.timestamps import format_utc
from autolearn.ops.prometheus import format_value, render_metrics
from autolearn.ops.status import LedgerProbe, StatusInputs, build_status

NOW = datetime(2025, 10, 23, 3, 0, tzinfo=UTC)
_NAME = r"autolearn_[a-z_]+"
_LABEL = r'[a-z_]+="(?:[^"\\\n]|\\\\|\\"|\\n)*"'
_SAMPLE = re.compile(
    rf"^(?P<name>{_NAME})(?:\{{(?P<labels>{_LABEL}(?:,{_LABEL})*)\}})? (?P<value>\S+)$"
)


def parse_exposition(text: str) -> dict[str, dict[str, Any]]:
    """Parse the text format strictly: HELP then TYPE then samples of that family only."""
    families: dict[str, dict[str, Any]] = {}
    current: str | None = None
    assert text.endswith("\n")
    for number, line in enumerate(text[:-1].split("\n"), start=1):  # only \n ends a line
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert re.fullmatch(_NAME, name), (number, line)
            assert name not in families, f"line {number}: {name} declared twice"
            families[name] = {"help": line.split(" ", 3)[3], "samples": []}
            current = None
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name in families and kind in {"gauge", "counter"}, (number, line)
            families[name]["type"] = kind
            current = name
        else:
            match = _SAMPLE.match(line)
            assert match, f"line {number}: not a sample: {line!r}"
            assert match.group("name") == current, f"line {number}: sample outside its family"
            value = float(match.group("value"))
            if families[current]["type"] == "counter":
                assert current.endswith("_total") and value >= 0
            labels = dict(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', match.group("labels") or ""))
            families[current]["samples"].append((labels, value))
    return families


def _report(records: list[dict[str, Any]], **kw: Any) -> Any:
    inputs = StatusInputs(
        records=records,
        history_path="h",
        control={"mechanisms": {"tuner": {"enabled": True, "enabled_at": format_utc(NOW)}}},
        ledger=LedgerProbe(source="l", last_close_at=NOW - timedelta(seconds=90), trades=3),
        **kw,
    )
    return build_status(inputs, NOW)


def _rec(mechanism: str, decision: str, minutes: int, **extra: Any) -> dict[str, Any]:
    return {
        "at": format_utc(NOW - timedelta(minutes=minutes)),
        "run_id": f"{mechanism}{minutes}",
        "mechanism": mechanism,
        "decision": decision,
        **extra,
    }


def test_exposition_counts_the_history() -> None:
    """Decisions, rollbacks and verdict outcomes are counted per mechanism from the records."""
    records = [
        _rec("tuner", "hold", 30),
        _rec(
            "tuner",
            "apply",
            20,
            applied=True,
            verdicts={"exit.lowvol": {"outcome": "inconclusive"}},
        ),
        _rec("tuner", "rollback", 10, applied=True, verdicts={"outcome": "fail"}),
        _rec("operator", "rollback", 5, applied=True),
        _rec("policy", "hold", 4),
    ]
    text = render_metrics(
        _report(
            records,
            effective_values={"pockets.micro.allow_new": False},
            presets={"pockets.micro.allow_new": True},
        ),
        records,
    )
    fam = parse_exposition(text)
    decisions = {
        (s[0]["mechanism"], s[0]["decision"]): s[1]
        for s in fam["autolearn_decisions_total"]["samples"]
    }
    assert decisions == {
        ("tuner", "hold"): 1,
        ("tuner", "apply"): 1,
        ("tuner", "rollback"): 1,
        ("operator", "rollback"): 1,
        ("policy", "hold"): 1,
    }
    rollbacks = {s[0]["mechanism"]: s[1] for s in fam["autolearn_rollbacks_total"]["samples"]}
    assert rollbacks == {"tuner": 1, "operator": 1}
    verdicts = {s[0]["outcome"]: s[1] for s in fam["autolearn_verdicts_total"]["samples"]}
    assert verdicts == {"inconclusive": 1, "fail": 1}
    assert fam["autolearn_blocked_pockets"]["samples"] == [({}, 1.0)]
    assert fam["autolearn_pocket_blocked"]["samples"] == [
        ({"pocket": "micro", "strategy": ""}, 1.0)
    ]
    assert fam["autolearn_ledger_last_close_age_seconds"]["samples"] == [({}, 90.0)]
    last = dict(
        (s[0]["mechanism"], s[1]) for s in fam["autolearn_last_run_timestamp_seconds"]["samples"]
    )
    assert last["tuner"] == (NOW - timedelta(minutes=10)).timestamp()
    health = [s for s in fam["autolearn_mechanism_health"]["samples"] if s[1] == 1.0]
    assert len(health) == 4  # exactly one health per mechanism


@given(st.text(min_size=1, max_size=30))
def test_label_values_are_escaped(decision: str) -> None:
    """Any decision string (quotes, backslashes, newlines) still yields a parseable file."""
    records = [_rec("tuner", decision, 1)]
    fam = parse_exposition(render_metrics(_report(records), records))
    assert len(fam["autolearn_decisions_total"]["samples"]) == 1


def test_cli_writes_the_textfile_atomically(cli, bot_env, tmp_path: Path) -> None:
    """`autolearn metrics --textfile DIR` writes a readable autolearn.prom and no temp file."""
    out = tmp_path / "textfile"
    out.mkdir()
    result = cli("metrics", "--textfile", str(out))
    assert result.code == 0, result.err
    assert [p.name for p in out.iterdir()] == ["autolearn.prom"]
    assert (out / "autolearn.prom").stat().st_mode & 0o777 == 0o644
    fam = parse_exposition((out / "autolearn.prom").read_text())
    assert fam["autolearn_ledger_up"]["samples"] == [({}, 0.0)]  # no ledger file yet


def test_cli_refuses_a_tracked_textfile(cli, bot_env, bot_repo: Path, git_run) -> None:
    """A tracked autolearn.prom in the checkout is never overwritten (exit 73)."""
    (bot_repo / "config" / "autolearn.prom").write_text("x\n")
    git_run(bot_repo, "add", ".")
    result = cli("metrics", "--textfile", str(bot_repo / "config"))
    assert result.code == 73
    assert (bot_repo / "config" / "autolearn.prom").read_text() == "x\n"


def test_ledger_and_reconcile_metrics() -> None:
    """Ledger rows and staleness, reconcile's last clean time and findings are exported."""
    clean_at = NOW - timedelta(hours=5)
    records = [
        _rec("reconcile", "clean", 300, findings_total=0),
        _rec("reconcile", "mismatch", 60, findings_total=3),
    ]
    fam = parse_exposition(render_metrics(_report(records), records))
    assert fam["autolearn_ledger_trades"]["samples"] == [({}, 3.0)]
    assert fam["autolearn_ledger_stale"]["samples"] == [({}, 0.0)]
    assert fam["autolearn_ledger_stale_after_seconds"]["samples"] == [({}, 6 * 3600.0)]
    assert fam["autolearn_reconcile_configured"]["samples"] == [({}, 1.0)]
    assert fam["autolearn_reconcile_state"]["samples"] == [({"state": "mismatch"}, 1.0)]
    assert fam["autolearn_reconcile_findings"]["samples"] == [({}, 3.0)]
    last_clean = fam["autolearn_reconcile_last_clean_timestamp_seconds"]["samples"]
    assert last_clean == [({}, clean_at.timestamp())]
    stale = _report([], ledger_stale_after=timedelta(seconds=60))
    fam = parse_exposition(render_metrics(stale, []))
    assert fam["autolearn_ledger_stale"]["samples"] == [({}, 1.0)]
    assert fam["autolearn_reconcile_state"]["samples"] == [({"state": "not_configured"}, 1.0)]
    assert "autolearn_reconcile_findings" not in fam


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (float("nan"), "NaN"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        (3.0, "3"),
        (0.25, "0.25"),
        (1e300, "1e+300"),
        (1761188400.5, "1761188400.5"),
    ],
)
def test_non_finite_values_are_written_not_raised(value: float, text: str) -> None:
    """NaN and infinities use the exposition format's names (int(nan) used to crash the writer)."""
    assert format_value(value) == text
    assert math.isnan(float(text)) if text == "NaN" else float(text) == value


def test_the_textfile_is_never_unreadable_while_it_is_replaced(
    cli, bot_env, tmp_path: Path
) -> None:
    """A reader polling during repeated writes always finds mode 0644 (set before the rename)."""
    out = tmp_path / "textfile"
    out.mkdir()
    target = out / "autolearn.prom"
    assert cli("metrics", "--textfile", str(out)).code == 0
    seen: set[int] = set()
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            with contextlib.suppress(FileNotFoundError):
                seen.add(os.stat(target).st_mode & 0o777)

    reader = threading.Thread(target=poll, daemon=True)
    reader.start()
    try:
        for _ in range(40):
            assert cli("metrics", "--textfile", str(out)).code == 0
    finally:
        done.set()
        reader.join(timeout=10)
    assert seen == {0o644}
