"""OANDA v20: a read-only REST client and the transactions importer that feeds the ledger.

``client`` talks HTTP and maps failures to ``autolearn.errors``; ``tags`` is the client
extensions convention (pocket, strategy, config version); ``transactions`` maps fills to
``Trade`` rows and runs the resumable import (the local v20-speaking HTTP server for tests is
``autolearn.testing.oanda_v20``; ``fake_server`` is its old name, kept as a shim). Importing
this package has no side effects and imports no HTTP library: a bot's worker uses
``autolearn.oanda.tags`` with the bare install (httpx comes with the ``oanda`` extra), so the
re-exports below load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autolearn.oanda.client import LIVE_URL, PRACTICE_URL, RetryPolicy, V20Client
    from autolearn.oanda.transactions import OandaIngestReport, ingest_transactions

__all__ = [
    "LIVE_URL",
    "PRACTICE_URL",
    "OandaIngestReport",
    "RetryPolicy",
    "V20Client",
    "ingest_transactions",
]

_HOMES = {
    "LIVE_URL": "client",
    "PRACTICE_URL": "client",
    "RetryPolicy": "client",
    "V20Client": "client",
    "OandaIngestReport": "transactions",
    "ingest_transactions": "transactions",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'autolearn.oanda' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"autolearn.oanda.{home}"), name)
