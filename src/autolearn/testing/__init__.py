"""Test helpers for bot authors and for autolearn's own tests (as ``structlog.testing`` is for
structlog): ledger row builders here, a local OANDA v20 server in ``autolearn.testing.oanda_v20``.

Builders: ``make_trade(close_at=..., pl_pips=...)`` and
``make_signal(at=..., outcome_pips=...)`` fill every other field with a plausible USD_JPY
``micro``/``MomentumPulse`` value; any field can be overridden by keyword. Ids are unique within
a process (``T0000001``, ``X0000001``, ``S0000002``...), so built trades never collide in a ledger.

Must not: read the clock, the disk or the environment (times are always passed in). Importing
this package loads no HTTP library and no server: ``oanda_v20`` is imported by name.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from autolearn.core.model import ShadowSignal, Side, Trade

__all__ = ["make_signal", "make_trade"]

_ids = itertools.count(1)


def make_trade(*, close_at: datetime, pl_pips: float, **over: Any) -> Trade:
    """A closed long USD_JPY trade of 1000 units, opened 5 minutes before ``close_at``."""
    n = next(_ids)
    fields: dict[str, Any] = {
        "broker_trade_id": f"T{n:07d}",
        "close_tx_id": f"X{n:07d}",
        "instrument": "USD_JPY",
        "pocket": "micro",
        "strategy": "MomentumPulse",
        "side": Side.LONG,
        "units": 1000,
        "entry_price": 150.0,
        "close_price": 150.0 + pl_pips * 0.01,  # USD_JPY: one pip is 0.01
        "entry_at": close_at - timedelta(minutes=5),
        "close_at": close_at,
        "pl_pips": pl_pips,
        "pl_account": pl_pips * 10.0,  # 1000 units: 10 JPY a pip
    }
    fields.update(over)
    return Trade(**fields)


def make_signal(*, at: datetime, outcome_pips: float | None, **over: Any) -> ShadowSignal:
    """A long USD_JPY shadow signal; ``outcome_pips`` None means not yet resolved."""
    n = next(_ids)
    fields: dict[str, Any] = {
        "signal_id": f"S{n:07d}",
        "at": at,
        "instrument": "USD_JPY",
        "pocket": "micro",
        "strategy": "MomentumPulse",
        "side": Side.LONG,
        "price": 150.0,
        "outcome_pips": outcome_pips,
        "outcome_at": None if outcome_pips is None else at + timedelta(minutes=5),
    }
    fields.update(over)
    return ShadowSignal(**fields)
