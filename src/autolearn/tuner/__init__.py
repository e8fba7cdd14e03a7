"""The online tuner: propose -> guard -> apply -> history -> judge/rollback, every 10 minutes.

``decide`` (pure) turns trades, state, config and ``now`` into one explained Decision;
``run_cycle`` (the shell) locks, reads, applies through the state store and records it.
"""

from __future__ import annotations

from autolearn.tuner.config import OnFail, TunerConfig, load_tuner_config, parse_tuner_config
from autolearn.tuner.cycle import run_cycle
from autolearn.tuner.decide import Decision, TuneInput, decide, finalize_state
from autolearn.tuner.proposers import PROPOSERS
from autolearn.tuner.state import FamilyState, InFlight, TunerState

__all__ = [
    "PROPOSERS",
    "Decision",
    "FamilyState",
    "InFlight",
    "OnFail",
    "TuneInput",
    "TunerConfig",
    "TunerState",
    "decide",
    "finalize_state",
    "load_tuner_config",
    "parse_tuner_config",
    "run_cycle",
]
