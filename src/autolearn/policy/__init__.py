"""The policy cycle: per pocket and per strategy, active -> blocked -> probation -> active.

``machine`` (pure state machine), ``decide`` (pure decision over trades and shadow signals),
``cycle`` (the shell run by ``autolearn policy``). Importing this package has no side effects.
"""

from __future__ import annotations

__all__: list[str] = []
