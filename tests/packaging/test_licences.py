"""Licences: README's dependency table matches the installed metadata, and the copyleft peers
stay out of the product.

backtesting.py (AGPL-3.0) and vectorbt (Commons Clause) are test/bench peers: importing either
from ``src/`` (even dynamically), or listing either as a runtime requirement of the wheel, would
put their terms on every bot that installs autolearn. The slow test reads the requirements of a
freshly built wheel, the fast one those of the installed distribution.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
ROLES = ("cli", "learn", "report", "oanda", "postgres")  # "all" is their union
PEERS = ("backtesting", "vectorbt")
PEER_EXTRAS = {"dev", "bench"}
_DYNAMIC_IMPORTS = {"import_module", "__import__", "find_spec"}


def licence_of(name: str) -> str:
    """The licence the installed ``name`` declares: ``License-Expression``, else a one-line
    ``License``, else its ``License ::`` trove classifiers (last segment, joined by ' / ')."""
    meta = metadata.metadata(name)
    expression = meta.get("License-Expression")
    if expression:
        return str(expression).strip()
    text = str(meta.get("License") or "").strip()
    if text and "\n" not in text and len(text) <= 40:
        return text
    classifiers = [c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    return " / ".join(c.split(" :: ")[-1] for c in classifiers) or "UNKNOWN"


def _declared() -> dict[tuple[str, str], str]:
    """(extra, canonical name) -> distribution name of every runtime requirement."""
    out = {("bare", canonicalize_name(Requirement(r).name)): Requirement(r).name
           for r in PYPROJECT["project"]["dependencies"]}  # fmt: skip
    for role in ROLES:
        for raw in EXTRAS[role]:
            name = Requirement(raw).name
            out[(role, canonicalize_name(name))] = name
    return out


def _readme_rows() -> dict[tuple[str, str], str]:
    """(extra, canonical package) -> the licence cell's backticked text, from README's table."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Dependencies\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[tuple[str, str], str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in {"extra", "---"}:
            continue
        licence = re.fullmatch(r"`([^`]+)`", cells[2])
        assert licence, f"README Dependencies: licence cell of {cells[1]} is not `...`: {line}"
        key = (cells[0], canonicalize_name(cells[1]))
        assert key not in rows, f"README Dependencies: {cells[1]} listed twice under {cells[0]}"
        rows[key] = licence.group(1)
    return rows


def peer_imports(source: str) -> list[str]:
    """Every module of ``PEERS`` that ``source`` imports, statically or by a constant string
    passed to ``import_module`` / ``__import__`` / ``find_spec``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in _DYNAMIC_IMPORTS and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names = [first.value]
        found += [n for n in names if n.split(".")[0] in PEERS]
    return found


def peer_requirements(requirements: list[str]) -> list[str]:
    """Requirements naming a peer that any extra other than dev/bench (or none) would install."""
    extras = sorted({*EXTRAS, ""} - PEER_EXTRAS)
    offenders = []
    for raw in requirements:
        req = Requirement(raw)
        if canonicalize_name(req.name) not in PEERS:
            continue
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras):
            offenders.append(raw)
    return offenders


class TestDependencyTable:
    def test_every_runtime_requirement_has_a_row_with_its_installed_licence(self) -> None:
        """README's table has exactly one row per runtime requirement of each extra, and its
        licence is what the installed package's metadata declares."""
        declared, rows = _declared(), _readme_rows()
        assert set(rows) == set(declared), (
            f"missing rows: {sorted(set(declared) - set(rows))}; "
            f"rows for undeclared packages: {sorted(set(rows) - set(declared))}"
        )
        wrong = {
            key: (rows[key], licence_of(name))
            for key, name in declared.items()
            if rows[key] != licence_of(name)
        }
        assert wrong == {}, "README licence vs installed metadata: " + repr(wrong)

    def test_no_runtime_dependency_is_a_strong_copyleft(self) -> None:
        """No runtime dependency is GPL/AGPL or carries the Commons Clause (LGPL is allowed)."""
        for name in _declared().values():
            licence = licence_of(name)
            assert not re.search(r"(?<!L)GPL|Commons Clause", licence), (name, licence)


class TestPeersStayOut:
    @pytest.mark.parametrize(
        ("source", "found"),
        [
            ("import backtesting", ["backtesting"]),
            ("from vectorbt.portfolio import Portfolio", ["vectorbt.portfolio"]),
            ("import importlib\nimportlib.import_module('backtesting.lib')", ["backtesting.lib"]),
            ("__import__('vectorbt')", ["vectorbt"]),
            ("from importlib.util import find_spec\nfind_spec('vectorbt')", ["vectorbt"]),
            ("import backtesting_helpers, os\nfrom . import backtesting", []),
        ],
    )
    def test_the_detector_sees_static_and_dynamic_imports(
        self, source: str, found: list[str]
    ) -> None:
        """The AST check catches every way a module could load a peer, and only the peers."""
        assert peer_imports(source) == found

    def test_no_module_under_src_imports_a_peer(self) -> None:
        """Every module under ``src/`` (parsed, not grepped) leaves both peers alone."""
        modules = sorted((REPO / "src").rglob("*.py"))
        assert len(modules) > 50
        offenders = {
            str(p.relative_to(REPO)): peer_imports(p.read_text(encoding="utf-8")) for p in modules
        }
        assert {p: n for p, n in offenders.items() if n} == {}

    @pytest.mark.parametrize(
        ("requirement", "bad"),
        [
            ('backtesting==0.6.6; extra == "dev"', False),
            ('vectorbt==1.2.0; extra == "bench"', False),
            ("backtesting>=0.6", True),
            ('vectorbt; extra == "learn"', True),
            ('backtesting; extra == "dev" or extra == "all"', True),
            ('pandas==3.1.1; extra == "cli"', False),
        ],
    )
    def test_the_requirement_check_sees_every_extra(self, requirement: str, bad: bool) -> None:
        """A peer is allowed only behind ``dev``/``bench``: bare or any other extra is caught."""
        assert peer_requirements([requirement]) == ([requirement] if bad else [])

    def test_the_installed_distribution_lists_peers_only_for_dev_and_bench(self) -> None:
        """The installed autolearn's ``Requires-Dist`` names the peers under dev/bench only."""
        requirements = metadata.requires("autolearn") or []
        assert any(canonicalize_name(Requirement(r).name) in PEERS for r in requirements)
        assert peer_requirements(requirements) == []

    @pytest.mark.slow
    def test_the_built_wheel_lists_peers_only_for_dev_and_bench(self, tmp_path: Path) -> None:
        """A wheel built from the checkout declares the peers under dev/bench only, and every
        runtime requirement of pyproject.toml (what ``pip install`` of it will pull)."""
        source = tmp_path / "src-copy"
        source.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(REPO / name, source / name)
        shutil.copytree(
            REPO / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
        )
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
             "-w", str(tmp_path / "wheels"), str(source)],
            check=True, cwd=tmp_path,
        )  # fmt: skip
        (wheel,) = (tmp_path / "wheels").glob("autolearn-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            (meta_path,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
            meta = Parser().parsestr(archive.read(meta_path).decode("utf-8"))
        requirements = meta.get_all("Requires-Dist") or []
        assert peer_requirements(requirements) == []
        names = {canonicalize_name(Requirement(r).name) for r in requirements}
        assert {name for _, name in _declared()} <= names


class TestLockUse:
    def test_every_make_install_goes_through_the_lock(self) -> None:
        """Each ``pip install`` in the Makefile (test venv, bench venv) applies constraints.txt;
        only ``make lock`` resolves freely, since it is what writes the lock."""
        target = ""
        installs: dict[str, list[str]] = {}
        for line in (REPO / "Makefile").read_text(encoding="utf-8").splitlines():
            if line and not line.startswith(("\t", "#", " ")) and ":" in line:
                target = line.split(":", 1)[0]
            elif line.startswith("\t") and "pip install" in line and "--upgrade pip" not in line:
                installs.setdefault(target, []).append(line.strip())
        assert {"$(STAMP)", "$(BENCH_STAMP)", "lock"} <= set(installs)
        for name, lines in installs.items():
            if name != "lock":
                assert all("-c $(LOCK)" in line for line in lines), (name, lines)
