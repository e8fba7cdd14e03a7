"""Reconcile: the broker's closed trades are the truth; report what the ledger gets wrong.

``compare`` is the pure comparison, ``cycle`` the shell (fetch, read the ledger, record).
Importing this package has no side effects.
"""

from __future__ import annotations

from autolearn.reconcile.compare import (
    BrokerTrade,
    Finding,
    FindingKind,
    Reconciliation,
    Tolerances,
    broker_trade,
    parse_broker_trades,
    reconcile,
)
from autolearn.reconcile.cycle import ReconcileConfig, run_reconcile

__all__ = [
    "BrokerTrade",
    "Finding",
    "FindingKind",
    "ReconcileConfig",
    "Reconciliation",
    "Tolerances",
    "broker_trade",
    "parse_broker_trades",
    "reconcile",
    "run_reconcile",
]
