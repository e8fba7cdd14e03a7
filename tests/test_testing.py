"""``autolearn.testing``: the README's bot-test snippet runs; the server's old path still works."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from autolearn.testing import oanda_v20

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_snippet() -> str:
    section = README.read_text(encoding="utf-8").split("### Testing your bot:", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README lost its testing snippet"
    return match.group(1)


def test_readme_snippet_runs() -> None:
    """The snippet's assertions hold: one scripted 503 retried, the forming bar left out."""
    namespace: dict[str, object] = {}
    exec(compile(_readme_snippet(), "README.md", "exec"), namespace)
    assert len(namespace["complete"]) == 2  # type: ignore[arg-type]


def test_the_old_import_path_warns_and_gives_the_same_objects() -> None:
    """``autolearn.oanda.fake_server`` (named by earlier docs) re-exports the moved module."""
    sys.modules.pop("autolearn.oanda.fake_server", None)
    with pytest.warns(DeprecationWarning, match=r"autolearn\.testing\.oanda_v20"):
        old = importlib.import_module("autolearn.oanda.fake_server")
    assert old.FakeV20Server is oanda_v20.FakeV20Server
    assert set(old.__all__) == set(oanda_v20.__all__)


@pytest.mark.parametrize("module", ["autolearn.testing.oanda_v20", "autolearn.oanda.fake_server"])
def test_the_program_refuses_to_serve_without_a_token(module: str, tmp_path: Path) -> None:
    """``python -m`` on either path runs the drill server, which needs OANDA_TOKEN (exit 78)."""
    log = tmp_path / "tx.json"
    log.write_text("[]")
    done = subprocess.run(
        [sys.executable, "-m", module, "--transactions", str(log)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )
    assert done.returncode == 78, done.stderr
    assert "set OANDA_TOKEN" in done.stderr


def test_importing_the_package_loads_no_server() -> None:
    """A bot test importing the row builders does not pay for the HTTP server module."""
    code = "import sys, autolearn.testing; print('autolearn.testing.oanda_v20' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"
