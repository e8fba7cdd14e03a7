"""Continuous allocation: size an active scope by how sure we are that it makes money.

Blocking is on/off: a marginal pocket flaps between full size and zero, paying the cost of a
block (missed winners) and of an unblock (full-size losers) over and over. Allocation instead
trades it at a size that follows the posterior probability that its expectancy is positive:

    p = P(mu > 0 | trades) = T_{n-1}(mean * sqrt(n) / sd)    (flat prior, Student t)
    target = floor + (1 - floor) * clamp((p - p_floor) / (p_full - p_floor), 0, 1)

with ``floor`` the probation size (a scope the policy trusts least still trades like one on
probation). The size moves toward the target by at most one ``allocation_step`` (the size
knob's grid step) per cycle and only while the target is at least ``allocation_hysteresis``
away, so the size walks slowly and a target that wobbles around it does not move it; a target
at a bound (full size, or the floor) is reached all the way, else a clearly good scope would
rest one hysteresis short of full size. Fewer than ``allocation_min_trades`` trades (or no sd)
hold the size: no evidence is never bad evidence, and a t-probability on a dozen trades of
sd 5 pips swings from 0.2 to 0.8 on noise alone.

Blocking still applies on top (a confidently losing scope is blocked, size 0), so allocation
only decides sizes in ``[floor, 1]`` for active scopes. Opt-in: ``policy.allocation: true``.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from autolearn.core.distributions import t_cdf
from autolearn.policy.config import PolicyConfig

__all__ = ["Allocation", "allocate", "allocation_target", "posterior_positive"]


def posterior_positive(n: int, mean: float, sd: float) -> float:
    """P(expectancy > 0) under a flat prior (Student t, ``n - 1`` df); NaN without evidence.

    A zero sd (every trade equal) is certainty about the sign of a non-zero mean and 0.5 at
    zero.
    """
    if n < 2 or not (math.isfinite(mean) and math.isfinite(sd)):
        return math.nan
    if sd == 0:
        return 1.0 if mean > 0 else (0.0 if mean < 0 else 0.5)
    return t_cdf(mean * math.sqrt(n) / sd, n - 1)


def allocation_target(p: float, cfg: PolicyConfig) -> float:
    """The size that probability ``p`` stands for, in ``[probation_size, 1]``."""
    floor = cfg.probation_size
    share = (p - cfg.allocation_p_floor) / (cfg.allocation_p_full - cfg.allocation_p_floor)
    return floor + (1.0 - floor) * min(1.0, max(0.0, share))


@dataclass(frozen=True, slots=True, kw_only=True)
class Allocation:
    """One cycle's sizing of one scope: the new size, the reason code and the numbers."""

    size_mult: float
    code: str  # "allocation_up" | "allocation_down" | "allocation_held" | "allocation_insufficient"
    detail: str


def _on_grid(value: float, step: float) -> float:
    return round(round(value / step) * step, 6)


def allocate(current: float, n: int, mean: float, sd: float, cfg: PolicyConfig) -> Allocation:
    """Move ``current`` one step toward the target of this evidence, or hold it.

    ``n``, ``mean``, ``sd``: the scope's trades since it entered its state (within the
    lookback). Below ``allocation_min_trades`` (or without an sd) the size is held, only put
    on the step grid and clamped into ``[probation_size, 1]``.
    """
    floor, step = cfg.probation_size, cfg.allocation_step
    held = min(1.0, max(floor, _on_grid(current, step)))  # the knob's grid, then the bounds
    p = posterior_positive(n, mean, sd) if n >= cfg.allocation_min_trades else math.nan
    if math.isnan(p):
        return Allocation(
            size_mult=held,
            code="allocation_insufficient",
            detail=f"n={n} < allocation_min_trades {cfg.allocation_min_trades} (or no sd): "
            f"size held at {held:.2f}",
        )
    target = allocation_target(p, cfg)
    numbers = f"P(mean>0)={p:.3f} target={target:.2f} size={held:.2f}"
    at_bound = target in (1.0, floor) and abs(target - held) > 1e-9
    if abs(target - held) < cfg.allocation_hysteresis and not at_bound:
        return Allocation(
            size_mult=held,
            code="allocation_held",
            detail=f"{numbers}: within hysteresis {cfg.allocation_hysteresis}",
        )
    moved = held + math.copysign(min(step, abs(target - held)), target - held)
    size = min(1.0, max(floor, _on_grid(moved, step)))
    code = "allocation_up" if size > held else "allocation_down"
    return Allocation(size_mult=size, code=code, detail=f"{numbers}: one step to {size:.2f}")
