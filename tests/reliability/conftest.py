"""Fixtures of the reliability suite: the shared drivers module, a bot checkout, a zygote.

The drivers live in ``_drivers.py`` (also run by ``bench/bench_reliability.py``); tests cannot
import each other under ``--import-mode=importlib``, so the module is loaded here by path and
handed out as the ``drivers`` fixture.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data"
_NAME = "autolearn_reliability_drivers"


def _load_drivers() -> ModuleType:
    if _NAME in sys.modules:
        return sys.modules[_NAME]
    spec = importlib.util.spec_from_file_location(_NAME, HERE / "_drivers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(name="drivers", scope="session")
def fixture_drivers() -> ModuleType:
    """The shared drivers module (zygote, bot builder, invariant checker, campaigns)."""
    return _load_drivers()


@pytest.fixture(name="zygote", scope="session")
def fixture_zygote(drivers: ModuleType) -> Iterator[Any]:
    """One pre-imported interpreter forking real CLI runs for the whole session."""
    with drivers.Zygote() as zygote:
        yield zygote


@pytest.fixture(name="bot")
def fixture_bot(drivers: ModuleType, tmp_path: Path) -> Any:
    """A fresh bot checkout (git, tracked registry, ignored logs/, seeded ledger)."""
    return drivers.make_bot(tmp_path / "bot")


@pytest.fixture(name="qr_csv", scope="session")
def fixture_qr_csv() -> Path:
    """300 real QuantRabbit CSV rows (tests/data/PROVENANCE.md)."""
    return DATA / "quantrabbit" / "trades_latest.part-0001-0300.csv"


@pytest.fixture(name="qr_db", scope="session")
def fixture_qr_db() -> Path:
    """The real QuantRabbit trades.db copy (tests/data/PROVENANCE.md)."""
    return DATA / "quantrabbit" / "trades_home.db"


@pytest.fixture(name="figures", scope="session")
def fixture_figures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Measured figures of each family; written to figures.json and printed at the end."""
    out: dict[str, Any] = {}
    yield out
    if out:
        import json

        path = tmp_path_factory.getbasetemp() / "reliability-figures.json"
        path.write_text(json.dumps(out, indent=1, sort_keys=True))
        print(f"\nreliability figures ({path}):")
        for family, numbers in sorted(out.items()):
            print(f"  {family}: {json.dumps(numbers, sort_keys=True)}")
