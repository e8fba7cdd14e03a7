"""deploy-check and scripts/deploy.sh on real git repositories (a bare origin and a clone)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from autolearn.ops.deploy import DeployFacts, evaluate_deploy
from autolearn.ops.findings import Severity

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "deploy.sh"


@pytest.fixture(name="clone")
def fixture_clone(tmp_path: Path, bot_repo: Path, git_run, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bare origin made from the bot repo, and a VM-like clone of it on main."""
    origin = tmp_path / "origin.git"
    git_run(tmp_path, "clone", "-q", "--bare", str(bot_repo), str(origin))
    vm = tmp_path / "vm"
    git_run(tmp_path, "clone", "-q", str(origin), str(vm))
    monkeypatch.setenv("AUTOLEARN_BOT_ROOT", str(vm))
    monkeypatch.delenv("AUTOLEARN_STATE_DIR", raising=False)
    monkeypatch.delenv("AUTOLEARN_LEDGER_URL", raising=False)
    return vm


def _push_commit(bot_repo: Path, git_run, name: str) -> str:
    (bot_repo / name).write_text(name)
    git_run(bot_repo, "add", name)
    git_run(bot_repo, "commit", "-qm", name)
    git_run(bot_repo, "push", "-q", str(bot_repo.parent / "origin.git"), "main")
    return git_run(bot_repo, "rev-parse", "HEAD").strip()


def _head(repo: Path, git_run) -> str:
    return git_run(repo, "rev-parse", "HEAD").strip()


class TestDeployCheck:
    def test_clean_checkout_at_the_expected_commit_passes(self, cli, clone: Path, git_run) -> None:
        """HEAD == expected, clean, on origin/main: exit 0."""
        result = cli("deploy-check", "--expect", _head(clone, git_run)[:10])
        assert result.code == 0, result.out + result.err

    def test_dirty_tracked_file_fails_loudly(self, cli, clone: Path, git_run) -> None:
        """A modified tracked file (a runtime writer in git) fails with the file and a fix."""
        (clone / "config" / "presets.yaml").write_text("a: 2\n")
        result = cli("deploy-check", "--expect", _head(clone, git_run))
        assert result.code != 0
        assert "config/presets.yaml" in result.out and "fix:" in result.out
        assert "FAILED" in result.err

    def test_head_behind_the_intended_commit_fails(
        self, cli, clone: Path, bot_repo: Path, git_run
    ) -> None:
        """A pushed commit the VM did not pull: HEAD != expected, exit non-zero."""
        wanted = _push_commit(bot_repo, git_run, "feature.txt")
        result = cli("deploy-check", "--expect", wanted, "--fetch")
        assert result.code != 0
        assert "not the intended" in result.out
        git_run(clone, "pull", "-q", "--ff-only")
        assert cli("deploy-check", "--expect", wanted).code == 0

    def test_diverged_checkout_fails(self, cli, clone: Path, bot_repo: Path, git_run) -> None:
        """A local commit on the VM makes the next pull --ff-only impossible: exit non-zero."""
        _push_commit(bot_repo, git_run, "upstream.txt")
        (clone / "local.txt").write_text("hotfix")
        git_run(clone, "add", "local.txt")
        git_run(clone, "commit", "-qm", "hotfix on the VM")
        result = cli("deploy-check", "--expect", _head(clone, git_run), "--fetch")
        assert result.code != 0
        assert "pull --ff-only` will fail" in result.out

    def test_unknown_commit_fails(self, cli, clone: Path) -> None:
        """An id the checkout does not know fails and says to fetch."""
        result = cli("deploy-check", "--expect", "deadbeefdeadbeef")
        assert result.code != 0 and "unknown" in result.out


def test_behind_but_fast_forwardable_is_only_info() -> None:
    """Being behind origin while at the intended commit is information, not a failure."""
    facts = DeployFacts(
        root="r",
        expected="a",
        expected_sha="a",
        head_sha="a",
        dirty_tracked=[],
        remote_ref="origin/main",
        remote_sha="b",
        head_on_remote=True,
        remote_ahead=2,
    )
    (finding,) = evaluate_deploy(facts)
    assert finding.severity is Severity.INFO


class TestDeployScript:
    def _run(
        self, tmp_path: Path, autolearn_path: str, *args: str
    ) -> subprocess.CompletedProcess[str]:
        ssh = tmp_path / "fake-ssh"
        ssh.write_text('#!/bin/sh\nshift\nexec "$@"\n')  # drop HOST, run `bash -s ...` here
        ssh.chmod(0o755)
        env = {**os.environ, "SSH": str(ssh), "PATH": autolearn_path}
        env = {k: v for k, v in env.items() if not k.startswith("AUTOLEARN_")}
        return subprocess.run(
            ["bash", str(SCRIPT), "vm", *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=120,
        )

    @pytest.mark.slow
    def test_deploys_a_pushed_commit(
        self, tmp_path: Path, clone: Path, bot_repo: Path, git_run, autolearn_path: str
    ) -> None:
        """The script pulls, verifies HEAD == COMMIT and runs status; exit 0."""
        wanted = _push_commit(bot_repo, git_run, "release.txt")
        out = self._run(tmp_path, autolearn_path, wanted, "--dir", str(clone))
        assert out.returncode == 0, out.stdout + out.stderr
        assert _head(clone, git_run) == wanted
        assert "HEAD ==" in out.stdout

    def test_refuses_a_dirty_checkout(
        self, tmp_path: Path, clone: Path, bot_repo: Path, git_run, autolearn_path: str
    ) -> None:
        """Dirty tracked files stop the deploy before the pull, with the file named."""
        before = _head(clone, git_run)
        wanted = _push_commit(bot_repo, git_run, "release.txt")
        (clone / "config" / "presets.yaml").write_text("tuned: 1\n")
        out = self._run(tmp_path, autolearn_path, wanted, "--dir", str(clone))
        assert out.returncode == 1
        assert "REFUSED" in out.stderr and "config/presets.yaml" in out.stderr
        assert _head(clone, git_run) == before

    def test_fails_when_origin_moved_past_the_commit(
        self, tmp_path: Path, clone: Path, bot_repo: Path, git_run, autolearn_path: str
    ) -> None:
        """If the pull lands on a newer commit than intended, deploy-check fails the deploy."""
        wanted = _push_commit(bot_repo, git_run, "one.txt")
        _push_commit(bot_repo, git_run, "two.txt")
        out = self._run(tmp_path, autolearn_path, wanted, "--dir", str(clone))
        assert out.returncode != 0
        assert "not the intended" in out.stdout
