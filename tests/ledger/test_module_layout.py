"""The ledger package's import surface: public names stay where callers import them from.

``sql.py`` was split into ``_schema``/``_engine``/``_rows``/``writer``/``summary``; callers across
the repo (and the bot) import ``SqlLedger``, ``LedgerSummary``, ``TradeWriter`` and
``SCHEMA_VERSION`` from ``autolearn.ledger.sql`` or ``autolearn.ledger``, and ``sql`` and
``writer`` refer to each other, so import order must not matter.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import autolearn.ledger
import autolearn.ledger.sql
import autolearn.ledger.summary
import autolearn.ledger.writer

_MODULES = [
    "autolearn.ledger",
    "autolearn.ledger.sql",
    "autolearn.ledger.writer",
    "autolearn.ledger.summary",
    "autolearn.ledger._schema",
    "autolearn.ledger._engine",
    "autolearn.ledger._rows",
    "autolearn.ledger._migrate",
]


def test_public_names_are_the_same_objects_everywhere() -> None:
    """A public name is one object whether imported from the package, from sql or from its home."""
    pkg, sql = autolearn.ledger, autolearn.ledger.sql
    assert pkg.SqlLedger is sql.SqlLedger
    assert pkg.TradeWriter is sql.TradeWriter is autolearn.ledger.writer.TradeWriter
    assert pkg.LedgerSummary is sql.LedgerSummary is autolearn.ledger.summary.LedgerSummary
    assert pkg.SCHEMA_VERSION == sql.SCHEMA_VERSION == 5  # v5: the shared state tables


@pytest.mark.parametrize("name", _MODULES)
def test_every_all_entry_exists(name: str) -> None:
    """Every name a module lists in ``__all__`` is defined there (star-imports cannot break)."""
    module = importlib.import_module(name)
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert missing == []


def test_sql_keeps_its_historical_all() -> None:
    """``autolearn.ledger.sql`` still exports exactly the four names callers relied on."""
    assert sorted(autolearn.ledger.sql.__all__) == [
        "LedgerSummary",
        "SCHEMA_VERSION",
        "SqlLedger",
        "TradeWriter",
    ]


@pytest.mark.parametrize("first", _MODULES)
def test_any_module_can_be_imported_first(first: str) -> None:
    """In a fresh interpreter, importing any ledger module first leaves no circular-import error."""
    code = (
        f"import {first}\n"
        "from autolearn.ledger.sql import SCHEMA_VERSION, LedgerSummary, SqlLedger, TradeWriter\n"
        "from autolearn.ledger import *  # noqa: F403\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
