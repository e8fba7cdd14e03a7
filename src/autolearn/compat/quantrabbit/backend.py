"""The one ``autolearn.gates.Gates`` behind the order-path shims of a worker process.

The shims (``perf_guard``, ``stage_tracker``, ``reentry_gate``) keep the original's signatures,
so they cannot take a ``Gates`` argument: they share one process-wide backend, opened lazily
from the same settings as every autolearn command (``AUTOLEARN_BOT_ROOT``,
``AUTOLEARN_STATE_DIR``, ``AUTOLEARN_LEDGER_URL``, ``AUTOLEARN_REGISTRY``, and
``AUTOLEARN_GATES_CONFIG`` for the gates' tracked config). A test or an embedding bot passes
its own with :func:`configure`.

New trades are read from the ledger at most every ``refresh_s`` (the gates' config); a ledger
that cannot be read answers per the gates' ``on_ledger_error`` (``ledger_error`` is set).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autolearn.gates.api import Gates

__all__ = ["Backend", "backend", "configure", "now_utc"]


def now_utc(now: datetime | None) -> datetime:
    """``now`` as UTC-aware (the original's callers pass naive UTC or nothing)."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        return now.replace(tzinfo=UTC)  # the original's convention: naive means UTC
    return now.astimezone(UTC)


@dataclass(slots=True)
class Backend:
    """A ``Gates`` plus the knob reader the shims check the ``gates.*.enabled`` switches with."""

    gates: Gates
    knobs: Callable[[str, Any], Any]
    clock: Callable[[], float] = time.monotonic
    _refreshed_at: float = field(default=float("-inf"))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self, now: datetime) -> None:
        """Read new ledger trades if ``refresh_s`` has passed (never raises: see ``Gates``)."""
        with self._lock:
            tick = self.clock()
            if tick - self._refreshed_at < self.gates.config.refresh_s:
                return
            self._refreshed_at = tick
        self.gates.refresh(now)

    def enabled(self, switch: str) -> bool:
        return bool(self.knobs(f"gates.{switch}.enabled", True))


_BACKEND: Backend | None = None
_OPEN_LOCK = threading.Lock()


def configure(value: Backend | None) -> None:
    """Use ``value`` for every shim call of this process (None: open from settings next time)."""
    global _BACKEND
    with _OPEN_LOCK:
        _BACKEND = value


def backend() -> Backend:
    """The process's backend, opened from the settings on first use."""
    global _BACKEND
    with _OPEN_LOCK:
        if _BACKEND is None:
            from autolearn.runtime import Tuning
            from autolearn.settings import Settings

            current = Settings.resolve()
            registry = current.registry()
            shared = current.shared_state()  # AUTOLEARN_STATE_URL: the hosts' one state
            tuning = Tuning(current.state_dir, registry, bot_root=current.bot_root, shared=shared)
            named = os.environ.get("AUTOLEARN_GATES_CONFIG")
            config = Path(named) if named else None
            if config is None and (current.bot_root / "config" / "gates.yaml").exists():
                config = current.bot_root / "config" / "gates.yaml"
            gates = Gates.open(
                current.ledger_url,
                current.state_dir,
                registry,
                config,
                tuning=tuning,
                account=current.account,
                shared=shared,
            )
            _BACKEND = Backend(gates=gates, knobs=tuning.get)
        return _BACKEND
