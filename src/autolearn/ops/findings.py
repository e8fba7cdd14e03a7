"""A finding of ``doctor`` or ``deploy-check``: severity, what is wrong, how to fix it.

Pure values. The exit code of a list of findings is its worst severity: 0 (ok/info),
1 (warning: degraded, works but needs attention), 2 (error: broken or unsafe).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Finding", "Severity", "exit_code"]


class Severity(StrEnum):
    OK = "ok"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def exit_code(self) -> int:
        return {"ok": 0, "info": 0, "warning": 1, "error": 2}[self.value]


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One check's result. ``fix`` is empty only when nothing needs doing."""

    check: str  # stable code, e.g. "git_clean", "state_untracked"
    severity: Severity
    what: str
    fix: str = ""
    source: str = ""  # where the fact came from (a command, a file, the ledger)

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "severity": self.severity.value,
            "what": self.what,
            "fix": self.fix,
            "source": self.source,
        }


def exit_code(findings: Iterable[Finding]) -> int:
    """The worst severity's exit code (0 for no findings)."""
    return max((f.severity.exit_code for f in findings), default=0)
