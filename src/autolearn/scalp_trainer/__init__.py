"""The scalp self-trainer (opt-in): M1Scalper's own trades -> bounded steps of its knobs.

``decide`` (pure) turns the strategy's trades, state, config and ``now`` into one explained
Decision; ``run_cycle`` (the shell) locks, reads, applies through the state store and records.
The change lifecycle (LKG, change in flight, live verdict, rollback) is every learner's one copy,
``autolearn.core.lifecycle``.
"""

from __future__ import annotations

from autolearn.scalp_trainer.config import (
    ScalpTrainerConfig,
    load_scalp_config,
    parse_frozen_config,
)
from autolearn.scalp_trainer.cycle import run_cycle
from autolearn.scalp_trainer.decide import Decision, Finding, ScalpInput, check_sufficiency, decide
from autolearn.scalp_trainer.rules import Evidence, Target, gather, targets

__all__ = [
    "Decision",
    "Evidence",
    "Finding",
    "ScalpInput",
    "ScalpTrainerConfig",
    "Target",
    "check_sufficiency",
    "decide",
    "gather",
    "load_scalp_config",
    "parse_frozen_config",
    "run_cycle",
    "targets",
]
