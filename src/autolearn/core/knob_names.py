"""Strategy names inside knob names: one reversible key per name the ledger can hold.

A policy knob names its strategy as one dotted segment
(``pockets.micro.strategies.<key>.allow_new``), but strategy names are free text: QuantRabbit's
own tags carry ``-`` (``TrendMA-bear``, ``MomentumPulse-long``), and a ledger may hold ``.``,
``/``, spaces or any unicode. The key is the name percent-encoded with ``[A-Za-z0-9_]`` as the
only safe characters: every other character becomes ``%XX`` for each byte of its UTF-8 form
(upper-case hex), ``%`` itself included.

- Plain names (only ``[A-Za-z0-9_]``) are their own key, so existing state keeps working:
  ``TrendMA`` -> ``TrendMA``.
- ``Micro-VWAP`` -> ``Micro%2DVWAP``; ``a.b`` -> ``a%2Eb``; ``モメンタム`` ->
  ``%E3%83%A2%E3%83%A1%E3%83%B3%E3%82%BF%E3%83%A0``.
- Injective and reversible: a plain name has no ``%``, and decoding a key gives the name back.
  Only canonical keys decode (``%41`` for ``A`` or lower-case hex is refused), so every name has
  exactly one key and every key exactly one name.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import re

__all__ = [
    "KEY_SEGMENT",
    "is_strategy_key",
    "strategy_from_key",
    "strategy_key",
    "strategy_knob_prefix",
]

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
# The regex of one key (what a registry ``*`` segment matches): safe characters and %XX bytes.
KEY_SEGMENT = r"(?:[A-Za-z0-9_]|%[0-9A-F]{2})+"
_KEY = re.compile(f"^{KEY_SEGMENT}$")


def strategy_key(name: str) -> str:
    """The knob-name segment of a strategy name (plain names unchanged).

    Raises:
        ValueError: the name is empty (a ledger row always names a strategy).
    """
    if not name:
        raise ValueError("a strategy name must be non-empty")
    return "".join(
        ch if ch in _SAFE else "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
        for ch in name
    )


def strategy_from_key(key: str) -> str:
    """The strategy name a key stands for (the inverse of :func:`strategy_key`).

    Raises:
        ValueError: ``key`` is not the canonical key of any name.
    """
    if not _KEY.match(key):
        raise ValueError(f"not a strategy key: {key!r} (expected [A-Za-z0-9_] and %XX only)")
    out = bytearray()
    i = 0
    while i < len(key):
        if key[i] == "%":
            out.append(int(key[i + 1 : i + 3], 16))
            i += 3
        else:
            out += key[i].encode("ascii")
            i += 1
    try:
        name = out.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not a strategy key: {key!r} (its bytes are not UTF-8)") from exc
    if strategy_key(name) != key:
        raise ValueError(
            f"not a canonical strategy key: {key!r} (canonical: {strategy_key(name)!r})"
        )
    return name


def is_strategy_key(key: str) -> bool:
    """Whether ``key`` is the canonical key of some strategy name."""
    try:
        strategy_from_key(key)
    except ValueError:
        return False
    return True


def strategy_knob_prefix(pocket: str, strategy: str | None) -> str:
    """``pockets.<pocket>.`` or ``pockets.<pocket>.strategies.<key>.`` for a policy knob."""
    base = f"pockets.{pocket}."
    return base + (f"strategies.{strategy_key(strategy)}." if strategy else "")
