"""What ``autolearn status`` says about the QuantRabbit compat exports.

Pure: the ``mechanisms/compat.json`` state and the effective version in, problem lines out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["compat_problems"]


def compat_problems(state: Mapping[str, Any], effective_version: str | None) -> list[str]:
    """Status lines for the compat exports: each failed file, and exports behind the layer."""
    problems = []
    for name, entry in sorted((state.get("failed") or {}).items()):
        if isinstance(entry, dict):
            problems.append(
                f"compat export {name} FAILED ({entry.get('path') or 'no path'}) at version "
                f"{entry.get('version')}: {entry.get('error')}; QuantRabbit's workers still "
                "read the previous file"
            )
    exports = state.get("exports") or {}
    for name, entry in sorted(exports.items()):
        if (
            isinstance(entry, dict)
            and effective_version
            and entry.get("version") != effective_version
            and name not in (state.get("failed") or {})
        ):
            problems.append(
                f"compat export {name} ({entry.get('path')}) is at version {entry.get('version')}, "
                f"the runtime layer at {effective_version}: run `autolearn compat-export`"
            )
    return problems
