"""The operator docs are true: the ownership doc matches the registry, the runbook runs."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from autolearn.core.ownership_doc import render_ownership_doc
from autolearn.settings import load_registry

DOCS = Path(__file__).resolve().parents[2] / "docs"
SAMPLE = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "quantrabbit"
    / ("trades_latest.part-0001-0300.csv")
)
SAMPLE_OANDA = Path(__file__).resolve().parents[1] / "data" / "oanda" / "usd_jpy_session.json"
_BLOCK = re.compile(r"^```sh runnable(?: exit=(?P<exit>\d+))?\n(?P<body>.*?)^```$", re.M | re.S)


def test_knob_ownership_doc_matches_the_registry() -> None:
    """docs/KNOB_OWNERSHIP.md is exactly `autolearn knobs --doc` on the packaged registry."""
    expected = render_ownership_doc(load_registry(None))
    actual = (DOCS / "KNOB_OWNERSHIP.md").read_text(encoding="utf-8")
    assert actual == expected, "regenerate: autolearn knobs --doc > docs/KNOB_OWNERSHIP.md"


def test_runbook_has_runnable_blocks_for_every_operator_task() -> None:
    """Install (from a wheel, and upgrade), check, stop, resume and roll back each have a
    runnable command."""
    text = (DOCS / "ONLINE_TUNER.md").read_text(encoding="utf-8")
    bodies = "\n".join(m.group("body") for m in _BLOCK.finditer(text))
    for command in (
        "systemd enable",
        "status",
        "history --since 24h",
        "freeze",
        "systemd disable",
        "unfreeze",
        "rollback --to",
        "undo --last",
        "unblock micro",
        "recover --reason",
        "doctor",
        "metrics --textfile",
        "reconcile --since 3000d --repair",
    ):
        assert f"autolearn {command}" in bodies, command
    for step in (
        'pip" wheel --quiet --no-deps',
        "install --quiet --upgrade",
        'autolearn" --version',
    ):
        assert step in bodies, step  # install from a built wheel, and upgrade in place


@pytest.mark.slow
def test_runbook_blocks_run_as_documented(
    tmp_path: Path, bot_repo: Path, git_run, autolearn_path: str
) -> None:
    """Each `sh runnable` block of ONLINE_TUNER.md exits with its documented code, in order."""
    text = (DOCS / "ONLINE_TUNER.md").read_text(encoding="utf-8")
    blocks = [(int(m.group("exit") or 0), m.group("body")) for m in _BLOCK.finditer(text)]
    assert len(blocks) >= 8
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOLEARN_")}
    env.update(
        PATH=autolearn_path,
        AUTOLEARN_BOT_ROOT=str(bot_repo),
        AUTOLEARN_STATE_DIR=str(bot_repo / "logs" / "tuning"),
        AUTOLEARN_LEDGER_URL=f"sqlite:///{bot_repo / 'logs' / 'autolearn' / 'ledger.db'}",
        SAMPLE_TRADES=str(SAMPLE),
        SAMPLE_OANDA=str(SAMPLE_OANDA),
        AUTOLEARN_SOURCE=str(DOCS.parent),  # the autolearn checkout the install blocks build
        COLUMNS="80",
    )
    work = tmp_path / "work"
    work.mkdir()
    for number, (expected, body) in enumerate(blocks, start=1):
        out = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + body],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,  # the install blocks build a wheel and fetch the cli extra
        )
        assert out.returncode == expected, (
            f"block {number} exited {out.returncode}, documented {expected}:\n{body}\n"
            f"{out.stdout}\n{out.stderr}"
        )
    # the whole drill left the bot checkout clean
    assert git_run(bot_repo, "status", "--porcelain") == ""
