"""The closed-loop replay on real candles (issue 6).

``run_replay`` drives reference strategies, the entry gates, a paper broker, the trade ledger and
every mechanism's cycle on a simulated clock, through the same code as production. Importing
this package starts nothing.
"""

from __future__ import annotations

from autolearn.replay.broker import ExitCode, Fill, PaperBroker, run_signals
from autolearn.replay.engine import (
    KNOWN_MECHANISMS,
    ReplayConfig,
    ReplayOutcome,
    run_replay,
    slice_candles,
)
from autolearn.replay.ledger import CachedLedger
from autolearn.replay.strategies import REFERENCE_STRATEGIES, Exits, LowvolExit
from autolearn.replay.summary import comparison_rows, summarize_run

__all__ = [
    "KNOWN_MECHANISMS",
    "REFERENCE_STRATEGIES",
    "CachedLedger",
    "ExitCode",
    "Exits",
    "Fill",
    "LowvolExit",
    "PaperBroker",
    "ReplayConfig",
    "ReplayOutcome",
    "comparison_rows",
    "run_replay",
    "run_signals",
    "slice_candles",
    "summarize_run",
]
