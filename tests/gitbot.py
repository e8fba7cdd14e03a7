"""A bot checkout in git for CLI tests: the registry tracked, ``logs/`` ignored, no setting left
in the process environment (so the test names every one it relies on)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from autolearn.settings import OPTION_VARS, packaged_registry_text

__all__ = ["make_git_bot"]


def make_git_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path/bot``, committed, with ``AUTOLEARN_BOT_ROOT`` pointing at it."""
    bot = tmp_path / "bot"
    (bot / "config").mkdir(parents=True)
    (bot / "config" / "knobs.yaml").write_text(packaged_registry_text())
    (bot / ".gitignore").write_text("logs/\n")
    for args in (
        ["init", "-q"],
        ["add", "."],
        ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"],
    ):
        subprocess.run(["git", "-C", str(bot), *args], check=True)
    for name in {*OPTION_VARS, "AUTOLEARN_STATE_DIR", "AUTOLEARN_REGISTRY", "AUTOLEARN_LEDGER_URL"}:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUTOLEARN_BOT_ROOT", str(bot))
    return bot
