"""``autolearn init`` on a temporary bot checkout: state dir, ignore check, tracked config."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from autolearn.cli import main
from autolearn.settings import packaged_registry_text


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture(name="bot")
def fixture_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A committed bot checkout with no .gitignore yet; AUTOLEARN_* defaults under it."""
    repo = tmp_path / "bot"
    repo.mkdir()
    (repo / "main.py").write_text("print('bot')\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "bot")
    for key in ("AUTOLEARN_STATE_DIR", "AUTOLEARN_LEDGER_URL", "AUTOLEARN_REGISTRY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AUTOLEARN_BOT_ROOT", str(repo))
    return repo


def test_unignored_paths_print_the_line_and_touch_nothing(
    bot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without an ignore rule: exit 1, the exact lines printed, no dir made, nothing edited."""
    assert main(["init"]) == 1
    out = capsys.readouterr().out
    assert "/logs/tuning/" in out.splitlines()
    assert "/logs/autolearn/ledger.db*" in out.splitlines()
    assert not (bot / "logs").exists()
    assert not (bot / ".gitignore").exists()
    assert _git(bot, "status", "--porcelain") == ""


def test_ignored_checkout_gets_a_private_state_dir_and_next_steps(
    bot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the printed lines in .gitignore: exit 0, state dir 0700, next steps shown."""
    (bot / ".gitignore").write_text("/logs/tuning/\n/logs/autolearn/ledger.db*\n")
    _git(bot, "add", ".gitignore")
    _git(bot, "commit", "-qm", "ignore runtime state")
    assert main(["init"]) == 0
    out = capsys.readouterr().out
    state = bot / "logs" / "tuning"
    assert state.is_dir() and stat.S_IMODE(state.stat().st_mode) == 0o700
    assert "autolearn systemd render" in out and "autolearn status" in out
    assert "autolearn ingest" in out
    assert _git(bot, "status", "--porcelain") == ""
    assert main(["init"]) == 0  # idempotent


def test_write_config_writes_defaults_once_and_never_overwrites(
    bot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--write-config writes both files when absent; an existing one is kept byte for byte."""
    (bot / ".gitignore").write_text("logs/\n")
    _git(bot, "add", ".gitignore")
    _git(bot, "commit", "-qm", "ignore logs")
    (bot / "config").mkdir()
    mine = "# the operator's gates\npolicy: {}\n"
    (bot / "config" / "gates.yaml").write_text(mine)
    assert main(["init", "--write-config"]) == 0
    out = capsys.readouterr().out
    assert (bot / "config" / "knobs.yaml").read_text() == packaged_registry_text()
    assert (bot / "config" / "gates.yaml").read_text() == mine
    assert "not overwritten" in out
    assert "git add config/knobs.yaml" in out
    # the new tracked-to-be file is the only change: nothing else in the checkout moved
    assert _git(bot, "status", "--porcelain") == "?? config/\n"
    _git(bot, "add", "config")
    _git(bot, "commit", "-qm", "autolearn config")
    assert main(["init", "--write-config"]) == 0
    assert _git(bot, "status", "--porcelain") == ""


def test_tracked_but_deleted_config_is_not_recreated(
    bot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tracked config file deleted in the work tree is left for `git checkout`, not rewritten."""
    (bot / ".gitignore").write_text("logs/\n")
    (bot / "config").mkdir()
    (bot / "config" / "knobs.yaml").write_text(packaged_registry_text())
    _git(bot, "add", ".")
    _git(bot, "commit", "-qm", "config")
    (bot / "config" / "knobs.yaml").unlink()
    assert main(["init", "--write-config"]) == 0
    assert not (bot / "config" / "knobs.yaml").exists()
    assert "git checkout -- config/knobs.yaml" in capsys.readouterr().out
