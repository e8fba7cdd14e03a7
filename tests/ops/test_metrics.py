"""Prometheus textfile metrics: valid exposition format, counts over the history, atomic file."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from autolearn.core.timestamps import format_utc
from autolearn.ops.prometheus import metric_families, render_metrics
from autolearn.ops.status import LedgerProbe, StatusInputs, build_status

NOW = datetime(2025, 10, 23, 3, 0, tzinfo=UTC)


def parse_exposition(text: str) -> dict[str, dict[str, Any]]:
    """Parse with ``prometheus_client``'s own parser; families keyed by the name in the file
    (a counter's ``_total``), each declared once, every counter sample >= 0."""
    assert text.endswith("\n")
    families: dict[str, dict[str, Any]] = {}
    for family in text_string_to_metric_families(text):
        name = f"{family.name}_total" if family.type == "counter" else family.name
        assert re.fullmatch(r"autolearn_[a-z_]+", name), name
        assert name not in families, f"{name} declared twice"
        assert family.type in {"gauge", "counter"}, (name, family.type)
        samples = [(s.labels, s.value) for s in family.samples]
        assert all(s.name == name for s in family.samples), (name, family.samples)
        if family.type == "counter":
            assert all(value >= 0 for _, value in samples), (name, samples)
        families[name] = {"help": family.documentation, "type": family.type, "samples": samples}
    return families


def _report(records: list[dict[str, Any]], now: datetime = NOW, **kw: Any) -> Any:
    inputs = StatusInputs(
        records=records,
        history_path="h",
        control={"mechanisms": {"tuner": {"enabled": True, "enabled_at": format_utc(NOW)}}},
        ledger=LedgerProbe(source="l", last_close_at=NOW - timedelta(seconds=90), trades=3),
        **kw,
    )
    return build_status(inputs, now)


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


_MECHANISMS = st.sampled_from(["tuner", "policy", "operator", "reconcile"])
_HISTORY = st.lists(
    st.tuples(_MECHANISMS, st.text(min_size=1, max_size=12), st.integers(1, 10_000)), max_size=25
)


@given(_HISTORY, st.integers(0, 10**6))
def test_the_text_is_the_mapping_and_counts_every_record(
    history: list[tuple[str, str, int]], micros: int
) -> None:
    """Parsed back, the file holds exactly the mapping's families and values (sub-second
    timestamps included), and each decision counter is the number of its records."""
    records = [_rec(m, d, minutes) for m, d, minutes in history]
    report = _report(records, now=NOW + timedelta(microseconds=micros))
    families = metric_families(report, records)
    fam = parse_exposition(render_metrics(report, records))
    assert list(fam) == [
        f"{f.name}_total" if f.type == "counter" else f.name for f in families
    ]  # every family, in order, even one with no sample (its HELP and TYPE stay findable)
    for family in families:
        name = f"{family.name}_total" if family.type == "counter" else family.name
        assert fam[name]["samples"] == [(s.labels, s.value) for s in family.samples]
    decisions = {
        (s[0]["mechanism"], s[0]["decision"]): s[1]
        for s in fam["autolearn_decisions_total"]["samples"]
    }
    assert decisions == Counter((m, d) for m, d, _ in history)
    generated = fam["autolearn_metrics_generated_timestamp_seconds"]["samples"]
    assert generated == [({}, report.now.timestamp())]


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
