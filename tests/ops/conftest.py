"""Fixtures of the ops tests: a bot checkout (git), the CLI in-process and as a program."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import autolearn.cli._ops  # noqa: F401  registers the ops commands (until cli/__init__ imports it)
from autolearn.cli import main


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` (checked) and return stdout."""
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture(name="git_run")
def fixture_git_run() -> Callable[..., str]:
    """``git_run(repo, *args)``: git with an identity, checked."""
    return git


@pytest.fixture(name="bot_repo")
def fixture_bot_repo(tmp_path: Path) -> Path:
    """A bot checkout with a tracked config file and ``logs/`` ignored, committed."""
    repo = tmp_path / "bot"
    (repo / "config").mkdir(parents=True)
    (repo / "config" / "presets.yaml").write_text("a: 1\n")
    (repo / ".gitignore").write_text("logs/\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "bot")
    return repo


@pytest.fixture(name="bot_env")
def fixture_bot_env(bot_repo: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """AUTOLEARN_* pointing into the bot checkout (state and ledger under ignored logs/)."""
    env = {
        "AUTOLEARN_BOT_ROOT": str(bot_repo),
        "AUTOLEARN_STATE_DIR": str(bot_repo / "logs" / "tuning"),
        "AUTOLEARN_LEDGER_URL": f"sqlite:///{bot_repo / 'logs' / 'autolearn' / 'ledger.db'}",
    }
    monkeypatch.delenv("AUTOLEARN_REGISTRY", raising=False)
    monkeypatch.delenv("AUTOLEARN_METRICS_DIR", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture(name="cli")
def fixture_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run ``autolearn ARGS`` in-process; returns exit code, stdout, stderr."""

    def run(*argv: str) -> Result:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture(name="autolearn_path", scope="session")
def fixture_autolearn_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH whose ``autolearn`` has the ops commands (whether or not the CLI wires them yet)."""
    bindir = tmp_path_factory.mktemp("bin")
    shim = bindir / "autolearn"
    shim.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "import autolearn.cli._ops  # noqa: F401\n"
        "from autolearn.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    return f"{bindir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
