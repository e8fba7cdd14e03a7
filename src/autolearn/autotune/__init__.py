"""Continuous autotune: an Optuna search on recent candles, proposed only when it beats the
incumbent out of sample after accounting for the number of trials.

``walkforward`` (pure folds), ``objective`` (plug-in scores), ``selection`` (deflated Sharpe),
``study`` (Optuna storage and workers), ``decide`` (the pure gate) and ``cycle`` (the shell,
one run per timer tick). Importing this package starts nothing.
"""

from __future__ import annotations

from autolearn.autotune.config import AutotuneConfig, load_autotune_config
from autolearn.autotune.cycle import run_cycle
from autolearn.autotune.decide import Gate, Proposal, bounded_step, gate
from autolearn.autotune.objective import OBJECTIVES, Objective, ObjectiveParams, make_objective
from autolearn.autotune.selection import DeflatedSharpe, deflate, expected_max_sharpe
from autolearn.autotune.study import (
    Evaluation,
    StudySpec,
    default_storage_url,
    evaluate,
    make_spec,
    open_storage,
    run_worker,
    run_workers,
    study_results,
)
from autolearn.autotune.walkforward import Fold, walk_forward

__all__ = [
    "OBJECTIVES",
    "AutotuneConfig",
    "DeflatedSharpe",
    "Evaluation",
    "Fold",
    "Gate",
    "Objective",
    "ObjectiveParams",
    "Proposal",
    "StudySpec",
    "bounded_step",
    "default_storage_url",
    "deflate",
    "evaluate",
    "expected_max_sharpe",
    "gate",
    "load_autotune_config",
    "make_objective",
    "make_spec",
    "open_storage",
    "run_cycle",
    "run_worker",
    "run_workers",
    "study_results",
    "walk_forward",
]
