"""Packaging: compatible ranges plus a lock, extras by role, and a bare install a bot can import.

The slow test builds a fresh venv, installs the checkout with no extras under the lock
(``pip install -c constraints.txt .``) and drives the worker API there with the control plane's
heavy packages absent.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from autolearn._entry import EXTRA_OF, missing_extra_message

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
HEAVY = (
    "numpy",
    "numba",
    "llvmlite",
    "scipy",
    "optuna",
    "plotly",
    "httpx",
    "typer",
    "rich",
    "alembic",
)
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+")


def _name(requirement: str) -> str:
    match = _NAME.match(requirement)
    assert match, requirement
    return match.group(0).lower().replace("_", "-")


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[_name(name)] = version
    return pins


class TestMetadata:
    def test_runtime_dependencies_are_ranges_not_pins(self) -> None:
        """A bot importing autolearn keeps its own versions: no ``==`` outside dev/bench tools."""
        extras = PYPROJECT["project"]["optional-dependencies"]
        runtime = list(PYPROJECT["project"]["dependencies"])
        for role in ("cli", "learn", "report", "oanda", "postgres", "all"):
            runtime += extras[role]
        assert runtime
        for requirement in runtime:
            assert "==" not in requirement, requirement
            assert "<" in requirement, f"{requirement}: give an upper bound (next major)"

    def test_bare_install_is_the_worker_api_only(self) -> None:
        """``pip install autolearn`` pulls SQLAlchemy, structlog, pydantic and PyYAML, no more."""
        names = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
        assert names == {"sqlalchemy", "structlog", "pydantic", "pyyaml"}

    def test_all_is_every_control_plane_extra(self) -> None:
        """``[all]`` holds exactly the requirements of cli, learn, report, oanda and postgres."""
        extras = PYPROJECT["project"]["optional-dependencies"]
        parts = [
            r for role in ("cli", "learn", "report", "oanda", "postgres") for r in extras[role]
        ]
        assert sorted(extras["all"]) == sorted(parts)

    def test_lock_pins_every_declared_requirement_within_its_range(self) -> None:
        """Every runtime and dev requirement has one exact version in constraints.txt."""
        pins = _lock()
        extras = PYPROJECT["project"]["optional-dependencies"]
        for requirement in [*PYPROJECT["project"]["dependencies"], *extras["all"], *extras["dev"]]:
            assert _name(requirement) in pins, f"{requirement} is not in constraints.txt"

    def test_every_heavy_module_maps_to_an_extra(self) -> None:
        """A missing optional module names the extra that installs it."""
        for module in HEAVY:
            exc = ModuleNotFoundError(f"No module named {module!r}", name=module)
            message = missing_extra_message(exc)
            assert message is not None
            assert f"autolearn[{EXTRA_OF[module]}]" in message
        assert missing_extra_message(ModuleNotFoundError("x", name="nonexistent")) is None


class TestMissingExtra:
    def test_a_command_whose_extra_is_missing_exits_78_naming_it(self, tmp_path: Path) -> None:
        """``autolearn report`` without plotly: exit 78 and the pip install that fixes it."""
        (tmp_path / "run").mkdir()
        code = (
            "import sys; sys.modules['plotly'] = None\n"
            "from autolearn.cli import main\n"
            "sys.exit(main(['report', 'run']))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
        )
        assert done.returncode == 78, done.stderr
        assert "pip install 'autolearn[report]'" in done.stderr
        assert "Traceback" not in done.stderr


class TestLicences:
    def test_src_never_imports_the_test_only_peers(self) -> None:
        """backtesting.py (AGPL-3.0) and vectorbt (Commons Clause) are test/bench peers only."""
        offenders = []
        for path in (REPO / "src").rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                offenders += [
                    f"{path}: {n}" for n in names if n.split(".")[0] in ("backtesting", "vectorbt")
                ]
        assert offenders == []


_WORKER_SCRIPT = textwrap.dedent(
    """
    import importlib.util, sys
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from autolearn.gates import Gates
    from autolearn.ledger import TradeWriter
    from autolearn.runtime import Tuning
    from autolearn.settings import load_registry
    from autolearn.testing import make_trade

    heavy = %(heavy)r
    assert [m for m in heavy if importlib.util.find_spec(m) is not None] == [], "heavy present"
    root = Path(sys.argv[1])
    url = f"sqlite:///{root / 'ledger.db'}"
    registry = load_registry(None)
    tuning = Tuning(root / "state", registry)
    assert tuning.get("exit.lowvol.upper_bound_max_sec") == 3.6
    writer = TradeWriter.open(url)
    now = datetime.now(UTC).replace(microsecond=0)
    counts = writer.record_trade(make_trade(close_at=now - timedelta(minutes=5), pl_pips=1.5))
    assert counts.inserted == 1, counts
    gates = Gates.open(url, root / "state", registry)
    verdict = gates.check_entry("TrendMA", registry.pockets[0], "long", 1.1, now)
    assert verdict.allowed, verdict
    gates.close()
    writer.close()
    # A v1 ledger needs the v2 migration (alembic, control plane only): the worker is refused
    # with the install that migrates it, and the ledger is left exactly as it was.
    import sqlite3
    old = sqlite3.connect(root / "v1.db")
    old.executescript((root.parent / "v1.sql").read_text(encoding="utf-8"))
    old.close()
    def dump():
        db = sqlite3.connect(root / "v1.db")
        lines = list(db.iterdump())
        db.close()
        return lines
    before = dump()
    from autolearn.errors import LedgerError
    from autolearn.ledger import SqlLedger
    try:
        SqlLedger.open(f"sqlite:///{root / 'v1.db'}").close()
    except LedgerError as exc:
        assert "pip install 'autolearn[cli]'" in str(exc), exc
    else:
        raise AssertionError("a bare worker migrated a v1 ledger without alembic")
    assert dump() == before
    loaded = sorted(m.split(".")[0] for m in sys.modules if m.split(".")[0] in heavy)
    assert loaded == [], loaded
    print("worker-ok")
    """
)


@pytest.mark.slow
def test_bare_install_runs_the_worker_api_without_the_control_plane(tmp_path: Path) -> None:
    """A fresh venv with ``pip install -c constraints.txt .`` (no extras) reads knobs, checks an
    entry, writes a trade, refuses to migrate a v1 ledger and runs the example bot; the heavy
    packages are absent and the console script names the extra it needs."""
    source = tmp_path / "src-copy"
    source.mkdir()
    shutil.copy2(REPO / "tests" / "data" / "ledger" / "v1-ledger.sql", tmp_path / "v1.sql")
    for name in ("pyproject.toml", "README.md", "constraints.txt"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "-c",
            str(source / "constraints.txt"),
            str(source),
        ],
        check=True,
        cwd=tmp_path,
    )
    work = tmp_path / "bot"
    work.mkdir()
    script = _WORKER_SCRIPT % {"heavy": HEAVY}
    done = subprocess.run(
        [str(python), "-c", script, str(work)], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "worker-ok" in done.stdout
    bot = subprocess.run(
        [str(python), str(REPO / "examples" / "bot" / "bot.py"), "--bot-root", str(work / "b"),
         "--candles", str(REPO / "examples" / "data" / "fx" / "DAT_ASCII_EURUSD_M1_201807.csv"),
         "--hours", "2"],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert bot.returncode == 0, bot.stderr
    assert '"event": "order_sent"' in bot.stdout
    cli = subprocess.run(
        [str(venv / "bin" / "autolearn"), "status"], capture_output=True, text=True, cwd=work
    )
    assert cli.returncode == 78, (cli.stdout, cli.stderr)
    assert "pip install 'autolearn[cli]'" in cli.stderr
    assert "Traceback" not in cli.stderr
