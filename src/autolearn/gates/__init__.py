"""In-worker entry gates: policy knobs, perf guard, stage tracker, re-entry gate.

The bot holds one :class:`Gates` and calls :meth:`Gates.check_entry` before every entry (never
before an exit). Importing this package has no side effects.
"""

from __future__ import annotations

from autolearn.gates.api import Gates
from autolearn.gates.model import GateResult, OpenPosition, Reason, Verdict

__all__ = ["GateResult", "Gates", "OpenPosition", "Reason", "Verdict"]
