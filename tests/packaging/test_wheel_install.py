"""A clean install on the VM from a built wheel, and an upgrade in place (the runbook's recipe).

Slow: builds the wheel of a copy of the checkout, installs it with the ``cli`` extra under the
lock into a fresh venv, renders units that run *that* venv's binary, then builds a newer
version and upgrades the same venv: the units' paths stay valid and the state is kept.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _copy_source(target: Path, version: str) -> Path:
    target.mkdir()
    for name in ("pyproject.toml", "README.md", "constraints.txt"):
        shutil.copy2(REPO / name, target / name)
    shutil.copytree(
        REPO / "src", target / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
    )
    for path, pattern in (
        (target / "pyproject.toml", r'^version = "[^"]+"'),
        (target / "src" / "autolearn" / "__init__.py", r'^__version__ = "[^"]+"'),
    ):
        text = path.read_text(encoding="utf-8")
        new = re.sub(
            pattern, pattern.split(" = ")[0].lstrip("^") + f' = "{version}"', text, 1, re.M
        )
        assert new != text or version == "0.1.0", path
        path.write_text(new, encoding="utf-8")
    return target


def _wheel(source: Path, out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(source)],
        check=True,
    )
    (wheel,) = out.glob("autolearn-*.whl")
    return wheel


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600, **kw)  # type: ignore[call-overload]


@pytest.mark.slow
def test_install_from_a_wheel_then_upgrade_in_place(tmp_path: Path) -> None:
    """wheel -> fresh venv -> ``autolearn --version`` -> units naming that venv's binary;
    a newer wheel upgrades the same venv, the units need no change and the state is kept."""
    venv = tmp_path / "opt-autolearn"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    exe = venv / "bin" / "autolearn"
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    lock = ["-c", str(REPO / "constraints.txt")]
    first = _wheel(_copy_source(tmp_path / "src-0.1.0", "0.1.0"), tmp_path / "wheels-1")
    done = _run([*pip, *lock, f"{first}[cli]"])
    assert done.returncode == 0, done.stderr
    assert _run([str(exe), "--version"]).stdout.strip() == "autolearn 0.1.0"

    bot = tmp_path / "bot"
    bot.mkdir()
    subprocess.run(["git", "init", "-q", str(bot)], check=True)
    (bot / ".gitignore").write_text("logs/\n")
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "AUTOLEARN_ENV_FILE": "/dev/null",
        "AUTOLEARN_BOT_ROOT": str(bot),
        "HOME": str(tmp_path),
    }
    assert _run([str(exe), "init"], env=env, cwd=tmp_path).returncode == 0
    units = _run([str(exe), "systemd", "render", "--mechanism", "tuner"], env=env, cwd=tmp_path)
    assert units.returncode == 0, units.stderr
    (exec_start,) = [line for line in units.stdout.splitlines() if line.startswith("ExecStart=")]
    assert f" {exe} tune" in exec_start, exec_start  # this install's binary, not the renderer's
    assert str(Path(sys.executable).parent) not in units.stdout

    second = _wheel(_copy_source(tmp_path / "src-0.1.1", "0.1.1"), tmp_path / "wheels-2")
    done = _run([*pip, "--upgrade", *lock, f"{second}[cli]"])
    assert done.returncode == 0, done.stderr
    assert _run([str(exe), "--version"]).stdout.strip() == "autolearn 0.1.1"
    again = _run([str(exe), "systemd", "render", "--mechanism", "tuner"], env=env, cwd=tmp_path)
    assert again.stdout == units.stdout  # the installed units stay valid: no re-install
    status = _run([str(exe), "status", "--json"], env=env, cwd=tmp_path)
    assert str(bot / "logs" / "tuning") in status.stdout, status.stderr
