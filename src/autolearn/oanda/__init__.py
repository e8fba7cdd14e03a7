"""OANDA v20: a read-only REST client and the transactions importer that feeds the ledger.

``client`` talks HTTP and maps failures to ``autolearn.errors``; ``tags`` is the client
extensions convention (pocket, strategy, config version); ``transactions`` maps fills to
``Trade`` rows and runs the resumable import; ``fake_server`` is a local v20-speaking HTTP
server for tests and the demo. Importing this package has no side effects.
"""

from __future__ import annotations

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
