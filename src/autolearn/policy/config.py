"""Thresholds of the policy cycle (the ``policy:`` section of ``gates.yaml``).

Units: ``block_below``, ``unblock_above`` and ``probation_max_loss`` are in the configured
metrics units (the file's top-level ``units``, shared with the perf guard so both read the same
P/L); shadow outcomes are recorded by the bot in pips, so their threshold is in pips.

Pure: values only (loading lives in ``autolearn.gates.config``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

__all__ = ["PolicyConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyConfig:
    """Evidence rules and the hysteresis between blocking and unblocking.

    Block when ``n >= min_trades`` and the *upper* bound of the expectancy interval is below
    ``block_below`` (confidently losing). Leave probation only on stricter evidence: Wald's
    sequential test accepting a mean of ``unblock_above`` (> ``block_below``) over at least
    ``probation_trades`` trades (``autolearn.policy.machine.probation_log_likelihood_ratio``).

    Shadow signals (only those of the last ``shadow_window`` since the block began): a blocked
    scope is unblocked early only when their always-valid confidence sequence (the judge's:
    ``shadow_alpha``, ``shadow_mixture_scale`` in units of their own sd;
    ``autolearn.core.judge.mean_sequence``) lies above 0 pips and their mean reaches
    ``shadow_unblock_above_pips``, because the policy looks every 15 minutes; it is kept blocked
    past its end (up to ``max_block``) while their ``confidence`` t-interval lies below 0.
    """

    lookback: timedelta = timedelta(days=14)
    min_trades: int = 12
    confidence: float = 0.9
    block_below: float = 0.0
    unblock_above: float = 0.5
    block_for: timedelta = timedelta(hours=12)
    block_backoff: float = 2.0  # each further strike multiplies the block duration
    max_block: timedelta = timedelta(days=7)
    probation_size: float = 0.5
    # Leaving probation: Wald's SPRT of mean = unblock_above against mean = 2 * block_below -
    # unblock_above. probation_alpha: P(a scope at the lower mean passes); probation_beta:
    # P(a scope at unblock_above fails). Measured at sd 5 (tests/policy/test_machine.py).
    probation_trades: int = 20  # no pass before this many trades (the sample sd settles)
    probation_fail_min: int = 5  # no SPRT failure before this many
    probation_alpha: float = 0.025
    probation_beta: float = 0.05
    probation_max_loss: float = 20.0
    # ...and only when that loss is also beyond this many sd * sqrt(n) of the probation's own
    # trades: a break-even-or-better scope's ordinary swings do not end its probation.
    probation_loss_sd: float = 2.5
    shadow_min_signals: int = 30
    shadow_unblock_above_pips: float = 0.3
    shadow_alpha: float = 0.05
    shadow_mixture_scale: float = 0.2
    shadow_window: timedelta = timedelta(days=7)
    per_strategy: bool = True
    # Continuous allocation (opt-in; ``autolearn.policy.allocation``): an active scope's size
    # follows P(expectancy > 0) between probation_size (at p <= allocation_p_floor) and 1 (at
    # p >= allocation_p_full), one allocation_step per cycle, only while the target is at least
    # allocation_hysteresis away. Blocks still apply on top.
    allocation: bool = False
    allocation_min_trades: int = 30
    allocation_p_floor: float = 0.5
    allocation_p_full: float = 0.9
    allocation_step: float = 0.05
    allocation_hysteresis: float = 0.1

    def __post_init__(self) -> None:
        problems = []
        if not 0.5 <= self.confidence < 1:
            problems.append(f"confidence: 0.5 <= confidence < 1 must hold, got {self.confidence}")
        if not self.unblock_above > self.block_below:
            problems.append(
                f"unblock_above ({self.unblock_above}) must be > block_below "
                f"({self.block_below}): the hysteresis that stops flapping"
            )
        if self.min_trades < 2 or self.probation_fail_min < 2 or self.shadow_min_signals < 2:
            problems.append("min_trades, probation_fail_min, shadow_min_signals must be >= 2")
        for name in ("probation_alpha", "probation_beta"):
            value = getattr(self, name)
            if not 0 < value < 0.5:
                problems.append(f"{name}: 0 < x < 0.5 must hold, got {value}")
        if self.probation_trades < 1:
            problems.append(f"probation_trades must be >= 1, got {self.probation_trades}")
        if not 0 < self.probation_size <= 1:
            problems.append(f"probation_size: 0 < x <= 1 must hold, got {self.probation_size}")
        if self.block_backoff < 1 or not math.isfinite(self.block_backoff):
            problems.append(f"block_backoff must be >= 1, got {self.block_backoff}")
        if self.probation_max_loss <= 0:
            problems.append(f"probation_max_loss must be > 0, got {self.probation_max_loss}")
        if self.block_for <= timedelta(0) or self.max_block < self.block_for:
            problems.append("0 < block_for <= max_block must hold")
        problems += self._shadow_problems()
        problems += self._allocation_problems()
        if problems:
            raise ValueError("; ".join(problems))

    def _shadow_problems(self) -> list[str]:
        problems = []
        if not 0 < self.shadow_alpha < 1:
            problems.append(f"shadow_alpha: 0 < x < 1 must hold, got {self.shadow_alpha}")
        if not 0 < self.shadow_mixture_scale <= 10:
            problems.append(
                f"shadow_mixture_scale: 0 < x <= 10 must hold, got {self.shadow_mixture_scale}"
            )
        if self.shadow_window <= timedelta(0):
            problems.append(f"shadow_window must be > 0, got {self.shadow_window}")
        if self.probation_loss_sd < 0 or not math.isfinite(self.probation_loss_sd):
            problems.append(f"probation_loss_sd must be >= 0, got {self.probation_loss_sd}")
        return problems

    def _allocation_problems(self) -> list[str]:
        problems = []
        if not 0 <= self.allocation_p_floor < self.allocation_p_full <= 1:
            problems.append(
                "0 <= allocation_p_floor < allocation_p_full <= 1 must hold, got "
                f"{self.allocation_p_floor}, {self.allocation_p_full}"
            )
        if self.allocation_min_trades < 2:
            problems.append(f"allocation_min_trades must be >= 2, got {self.allocation_min_trades}")
        if not 0 < self.allocation_step <= 1:
            problems.append(f"allocation_step: 0 < x <= 1 must hold, got {self.allocation_step}")
        if not 0 <= self.allocation_hysteresis < 1 - self.probation_size + 1e-9:
            problems.append(
                "allocation_hysteresis: 0 <= x <= 1 - probation_size must hold, got "
                f"{self.allocation_hysteresis}"
            )
        return problems
