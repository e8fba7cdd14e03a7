"""Reconcile: the broker's closed trades are the truth; report what the ledger gets wrong.

``compare`` is the pure comparison, ``cycle`` the shell (fetch, read the ledger, record),
``repair`` fetches the trades a run found missing or different by id and upserts them.
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
from autolearn.reconcile.repair import RepairReport, repair_trades

__all__ = [
    "BrokerTrade",
    "Finding",
    "FindingKind",
    "ReconcileConfig",
    "Reconciliation",
    "RepairReport",
    "Tolerances",
    "broker_trade",
    "parse_broker_trades",
    "reconcile",
    "repair_trades",
    "run_reconcile",
]
