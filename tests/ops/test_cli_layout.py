"""What a person reads at 80 columns: real placeholders, whole knob names, status that wraps
at words and name segments."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from autolearn.settings import load_registry


def _run(autolearn_path: str, *args: str, env: dict[str, str] | None = None) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AUTOLEARN_")}
    base.update(PATH=autolearn_path, COLUMNS="80", AUTOLEARN_ENV_FILE="/dev/null", **(env or {}))
    done = subprocess.run(
        ["autolearn", *args], capture_output=True, text=True, env=base, check=False, timeout=120
    )
    assert done.returncode in (0, 1), done.stderr
    return done.stdout


@pytest.mark.parametrize(
    "command",
    [(), ("status",), ("doctor",), ("systemd", "render"), ("systemd", "enable"), ("undo",)],
)
def test_help_shows_no_python_type_placeholders(autolearn_path: str, command: tuple[str, ...]):
    """Flags show no placeholder, value options a word (TEXT, PATH, DURATION): never
    ``<bool>`` or ``<str>`` after an option."""
    text = _run(autolearn_path, *command, "--help")
    option_lines = [line for line in text.splitlines() if re.search(r"│\s+(\*\s+)?--", line)]
    assert option_lines
    for line in option_lines:
        assert not re.search(r"<(bool|str|int|float|path|list\[str\])>", line), line
    if command == ("status",):
        assert re.search(r"--now\s+UTC_TIME", text) and re.search(r"--json\s+Machine", text)


def test_knobs_never_cuts_a_name_at_80_columns(autolearn_path: str) -> None:
    """Every knob name appears whole on one line of ``autolearn knobs`` at 80 columns."""
    text = _run(autolearn_path, "knobs")
    assert all(len(line) <= 80 for line in text.splitlines())
    for spec in load_registry(None):
        assert re.search(rf"│ {re.escape(spec.name)}\s", text), spec.name


def test_status_wraps_reasons_at_segments(autolearn_path: str, bot_repo: Path) -> None:
    """A long reason token in status breaks after its separators, not mid-segment, and no
    table line is wider than 80 columns (free text lines are left to the terminal)."""
    env = {"AUTOLEARN_BOT_ROOT": str(bot_repo)}
    subprocess.run(
        ["autolearn", "init"],
        env={**os.environ, "PATH": autolearn_path, "AUTOLEARN_ENV_FILE": "/dev/null", **env},
        check=True,
        capture_output=True,
    )
    reason = "ops_review.lowvol_exit_window:hazard_debounce_ticks/check"
    subprocess.run(
        ["autolearn", "systemd", "enable", "tuner", "--reason", reason, "--no-systemctl"],
        env={**os.environ, "PATH": autolearn_path, "AUTOLEARN_ENV_FILE": "/dev/null", **env},
        check=True,
        capture_output=True,
    )
    text = _run(autolearn_path, "status", env=env)
    lines = [line for line in text.splitlines() if line[:1] in "┌│├└"]  # the tables
    assert lines and all(len(line) <= 80 for line in lines)
    cells = [c.strip() for line in lines for c in line.split("│")]
    pieces = re.findall(r"[^._:/]+[._:/]?", reason)
    # each segment of the reason is whole in some cell
    for piece in pieces:
        assert any(piece in cell for cell in cells), (piece, text)
