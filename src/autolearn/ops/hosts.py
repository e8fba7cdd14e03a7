"""What each host serves, compared with the shared state's version (``status`` with shared state).

Every worker reading shared state says which version it serves (``state_hosts``: on each change
and every minute). A live process serving another version than the shared one, once workers had
time to refresh since the switch, is a problem: that host's bot trades on a config nobody chose
(issue 19 item 3: two hosts each said "healthy" while serving two versions). Pure: the shell
reads the rows and passes ``now``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from autolearn.core.timestamps import format_utc

__all__ = ["LIVE_WITHIN", "REFRESH_GRACE", "HostStatus", "ServedVersion", "compare_hosts"]

# a process that said nothing for this long is gone (a heartbeat comes every minute)
LIVE_WITHIN = timedelta(minutes=3)
# after a switch, workers have this long to serve the new version (they refresh every second)
REFRESH_GRACE = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class ServedVersion:
    """One process's last heartbeat: the version it served, when."""

    host: str
    process: str
    role: str
    version: str
    seen_at: datetime


@dataclass(frozen=True, slots=True)
class HostStatus:
    """One host: the versions its live processes serve."""

    host: str
    live: int  # processes heard from within LIVE_WITHIN
    versions: tuple[str, ...]  # what the live ones serve (sorted)
    last_seen: datetime
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "live_processes": self.live,
            "versions": list(self.versions),
            "last_seen": format_utc(self.last_seen),
            "problem": self.problem,
        }


def compare_hosts(
    served: Sequence[ServedVersion],
    version: str | None,
    switched_at: datetime | None,
    now: datetime,
) -> tuple[HostStatus, ...]:
    """Every host that reported, with a problem where a live process serves the wrong version.

    ``version`` is the shared state's current version (None: unreadable: nothing is compared),
    ``switched_at`` when it became current (None: unknown, counted as long ago).
    """
    by_host: dict[str, list[ServedVersion]] = {}
    for row in served:
        by_host.setdefault(row.host, []).append(row)
    settled = switched_at is None or now - switched_at >= REFRESH_GRACE
    out = []
    for host, rows in sorted(by_host.items()):
        live = [r for r in rows if now - r.seen_at <= LIVE_WITHIN]
        versions = tuple(sorted({r.version for r in live}))
        wrong = sorted({r.process for r in live if r.version != version})
        problem = None
        if version is not None and settled and wrong:
            stale = sorted({r.version for r in live if r.version != version})
            problem = (
                f"host {host} serves {', '.join(stale)}, not the shared {version} "
                f"({len(wrong)} of {len(live)} live processes: {', '.join(wrong[:5])}); "
                "its workers cannot read the shared state (see their `degraded` log)"
            )
        out.append(HostStatus(host, len(live), versions, max(r.seen_at for r in rows), problem))
    return tuple(out)
