"""When each mechanism runs: cadence, boot delay, timeout and resource limits.

One table used by the unit renderer (timers), by ``status`` (a run is late after 1.5 cadences,
stopped after 2) and by the metrics. Pure values only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType

__all__ = ["SCHEDULES", "Schedule", "schedule_for", "unit_base"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """How one mechanism is run by systemd (a oneshot service started by a monotonic timer)."""

    mechanism: str
    command: tuple[str, ...]  # the autolearn sub-command and its arguments
    cadence: timedelta
    on_boot: timedelta
    timeout: timedelta  # TimeoutStartSec: a hung run is killed before the next one is due
    accuracy: timedelta = timedelta(seconds=30)
    randomized_delay: timedelta = timedelta(seconds=20)
    resources: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not timedelta(0) < self.timeout < self.cadence:
            # a timeout past the cadence would let a hung run swallow the next slot silently
            raise ValueError(
                f"{self.mechanism}: 0 < timeout ({self.timeout}) < cadence ({self.cadence}) "
                "must hold"
            )


_AUTOTUNE_LIMITS = MappingProxyType(
    {
        # autotune is a CPU-heavy search on the trading VM: it must never starve the bot
        "Nice": "10",
        "CPUQuota": "50%",
        "MemoryMax": "2G",
        "IOSchedulingClass": "idle",
    }
)

SCHEDULES: Mapping[str, Schedule] = MappingProxyType(
    {
        s.mechanism: s
        for s in (
            Schedule(
                mechanism="tuner",
                command=("tune",),
                cadence=timedelta(minutes=10),
                on_boot=timedelta(minutes=5),
                timeout=timedelta(minutes=8),
            ),
            Schedule(
                mechanism="policy",
                command=("policy",),
                cadence=timedelta(minutes=15),
                on_boot=timedelta(minutes=3),
                timeout=timedelta(minutes=12),
            ),
            Schedule(
                mechanism="scalp_trainer",
                command=("scalp-train",),
                cadence=timedelta(hours=3),
                on_boot=timedelta(minutes=15),
                timeout=timedelta(hours=1),
                accuracy=timedelta(minutes=1),
                randomized_delay=timedelta(minutes=2),
            ),
            Schedule(
                mechanism="autotune",
                command=("autotune",),
                cadence=timedelta(hours=1),
                on_boot=timedelta(minutes=10),
                timeout=timedelta(minutes=50),
                accuracy=timedelta(minutes=1),
                randomized_delay=timedelta(minutes=2),
                resources=_AUTOTUNE_LIMITS,
            ),
        )
    }
)


def schedule_for(mechanism: str) -> Schedule:
    """The schedule of ``mechanism``; ``KeyError`` names the known ones."""
    try:
        return SCHEDULES[mechanism]
    except KeyError:
        raise KeyError(f"unknown mechanism {mechanism!r} (known: {', '.join(SCHEDULES)})") from None


def unit_base(mechanism: str) -> str:
    """``autolearn-scalp-trainer`` for ``scalp_trainer`` (unit names read better with dashes)."""
    return "autolearn-" + mechanism.replace("_", "-")
