"""Counterfactual evaluation: what the bot's signals and trades would have made under other knobs.

Issue 12: signals the bot evaluated (taken or not) are placed on the candles and simulated with
the backtest engine's fill and tie rules (``_kernel``, ``outcomes``); threshold and exit choices
pair candidate and current on the same signals/trades and confirm on held-out days (``entry``,
``exits``); ``mismatch`` checks that the simulation explains the recorded P/L and
``candle_checks`` that the candles can be trusted at all. Reason codes are stable strings the
tuner turns into family freezes.

Pure: numpy and numba; no I/O, no clock.
"""

from __future__ import annotations

from autolearn.counterfactual.candle_checks import check_candles
from autolearn.counterfactual.entry import EntryChoice, admitted, choose_threshold
from autolearn.counterfactual.exits import ExitChoice, choose_exit, resimulate_exits
from autolearn.counterfactual.mismatch import MismatchCheck, check_recorded
from autolearn.counterfactual.outcomes import SignalOutcomes, signal_outcomes, simulate_signals

__all__ = [
    "EntryChoice",
    "ExitChoice",
    "MismatchCheck",
    "SignalOutcomes",
    "admitted",
    "check_candles",
    "check_recorded",
    "choose_exit",
    "choose_threshold",
    "resimulate_exits",
    "signal_outcomes",
    "simulate_signals",
]
