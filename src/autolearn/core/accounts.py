"""The account key: which bot a ledger row belongs to (issue 19 item 2).

OANDA's trade and transaction ids are unique per account only, so every bot-written row is
keyed by its bot's account as well. ``''`` is a ledger's one bot (every row written before the
key existed); a second bot on the same ledger names itself, e.g. with its OANDA account id.
One rule, read by the settings (``AUTOLEARN_ACCOUNT``) and by the ledger (``account=``).
"""

from __future__ import annotations

__all__ = ["MAX_ACCOUNT_LEN", "account_problem"]

MAX_ACCOUNT_LEN = 64
_ACCOUNT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def account_problem(account: object) -> str | None:
    """Why ``account`` is no account key (None: it is one).

    0 to 64 of ``[A-Za-z0-9._-]``: OANDA's ids (``101-004-1234567-001``) and a bot's name fit;
    a space, a path or a quote is refused where it is read, not stored as a key nobody can
    type back.
    """
    if not isinstance(account, str):
        return f"an account key is text, got {type(account).__name__}"
    if len(account) > MAX_ACCOUNT_LEN or not set(account) <= _ACCOUNT_CHARS:
        return (
            f"{account[:80]!r}: an account key is 0 to {MAX_ACCOUNT_LEN} letters, digits, '.', "
            "'_' or '-' (e.g. the OANDA account id 101-004-1234567-001, or a bot name)"
        )
    return None
