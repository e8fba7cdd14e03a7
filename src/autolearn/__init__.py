"""autolearn: the safe auto-learning control plane of a live FX trading bot.

A bot's worker starts with ``autolearn.connect(bot_root)`` (``autolearn.worker``). Importing the
package has no side effects and loads nothing else: ``connect`` and ``Worker`` are imported on
first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autolearn.worker import Worker, connect

__all__ = ["Worker", "__version__", "connect"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("Worker", "connect"):
        from autolearn import worker

        return getattr(worker, name)
    raise AttributeError(f"module 'autolearn' has no attribute {name!r}")
