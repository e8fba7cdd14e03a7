"""The options the mechanism commands share (``tune``, ``policy``, ``scalp-train``, ``autotune``).

``--shadow`` decides and records but applies nothing; ``--now`` (shadow runs only) decides as
of another UTC time, e.g. to explain what a mechanism would have done on an old ledger. A live
run always uses the clock: the mechanism's pace limits and verdict deadlines are real time.

Must not: register commands or run a mechanism (each command's module does).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from autolearn.cli._common import utcnow
from autolearn.core.timestamps import TimestampError, parse_utc
from autolearn.errors import InputError

__all__ = ["NowOpt", "ShadowOpt", "run_time"]

ShadowOpt = Annotated[bool, typer.Option("--shadow", help="Decide and record, apply nothing")]
NowOpt = Annotated[str | None, typer.Option(help="With --shadow: decide as of this UTC time")]


def run_time(now: str | None, shadow: bool) -> datetime:
    """The run's ``now``: the clock, or ``--now`` for a shadow run (else ``InputError``)."""
    if now is None:
        return utcnow()
    if not shadow:
        raise InputError("--now is for --shadow runs only (a live run uses the clock)")
    try:
        return parse_utc(now)
    except TimestampError as exc:
        raise InputError(f"--now: {exc}") from exc
