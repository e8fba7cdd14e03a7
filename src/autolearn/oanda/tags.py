"""How a trade carries its pocket, strategy and config version through OANDA.

Pure: no I/O, no clock. Parses (and, for the bot's writer side, formats) OANDA
``clientExtensions`` ``{id, tag, comment}``. OANDA limits each of the three to 128 characters.

Convention (paste into the README)
----------------------------------
When the bot opens a trade it sets the order's ``tradeClientExtensions`` (OANDA copies them onto
the trade and into ``tradeOpened.clientExtensions`` of the fill)::

    tag     = "pocket=<pocket>;strategy=<strategy>;cfg=<config_version>"
    id      = a unique client id, e.g. "al-<epoch_ms>-<pocket>-<strategy>"
    comment = free text for humans (ignored by autolearn)

- keys are lower case, pairs are separated by ``;``, order is free, unknown keys are ignored
  (so new keys can be added without breaking older importers);
- values use ``A-Z a-z 0-9 _ . : + -`` only (no ``;``, ``=`` or spaces) and the whole tag must
  fit in 128 characters: ``format_client_tag`` checks both;
- ``cfg`` is the config version the trade was opened under (what rollback compares).

Fallbacks, in order, for trades opened by QuantRabbit or by hand:

1. tag ``pocket=<p>`` (QuantRabbit) gives the pocket; the tag always wins over the id, because
   QuantRabbit's id segment names the *worker* and disagrees with the tag on real trades
   (e.g. id ``qr-1761123266662-macro-BBRSIlong`` with tag ``pocket=micro``);
2. id ``qr-<epoch_ms>-<pocket>-<strategy>`` gives the strategy (and the pocket when the tag has
   none and the segment is a known pocket); ``qr-<pocket>-<ts>-<strategy>`` likewise;
3. id ``qr-fast-*`` / ``qs-fast-*`` means pocket ``scalp``, strategy ``fast_scalp``;
4. otherwise pocket ``manual`` and strategy ``unknown``; config version empty.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "DEFAULT_POCKET",
    "DEFAULT_STRATEGY",
    "MAX_CLIENT_FIELD_CHARS",
    "ClientTags",
    "format_client_tag",
    "parse_client_extensions",
]

MAX_CLIENT_FIELD_CHARS = 128  # OANDA rejects a 129-character client id/tag/comment
DEFAULT_POCKET = "manual"
DEFAULT_STRATEGY = "unknown"

# Pockets QuantRabbit's client ids are known to carry (original-system.md, glossary "pocket").
_KNOWN_POCKETS = frozenset({"macro", "micro", "scalp", "scalp_fast", "event", "hybrid", "manual"})
_VALUE_RE = re.compile(r"^[A-Za-z0-9_.:+-]+$")
_QR_MS_FIRST = re.compile(r"^qr-(?P<ms>[0-9]{10,})-(?P<pocket>[A-Za-z_]+)-(?P<strategy>[^\s]+)$")
_QR_POCKET_FIRST = re.compile(r"^qr-(?P<pocket>[A-Za-z_]+)-(?P<ts>[0-9]+)-(?P<strategy>[^\s]+)$")
_QR_FAST = re.compile(r"^q[rs]-fast-")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientTags:
    """What the client extensions of a trade say about it."""

    pocket: str = DEFAULT_POCKET
    strategy: str = DEFAULT_STRATEGY
    config_version: str = ""
    client_order_id: str = ""


def format_client_tag(*, pocket: str, strategy: str, config_version: str = "") -> str:
    """The ``clientExtensions.tag`` for a new trade (the bot's writer side of the convention).

    Raises:
        ValueError: a value has a forbidden character or the tag exceeds 128 characters.
    """
    pairs = [("pocket", pocket), ("strategy", strategy)]
    if config_version:
        pairs.append(("cfg", config_version))
    for key, value in pairs:
        if not _VALUE_RE.match(value):
            raise ValueError(
                f"client tag {key}={value!r}: use only A-Z a-z 0-9 _ . : + - (no ; = or spaces)"
            )
    tag = ";".join(f"{key}={value}" for key, value in pairs)
    if len(tag) > MAX_CLIENT_FIELD_CHARS:
        raise ValueError(
            f"client tag is {len(tag)} characters, OANDA allows {MAX_CLIENT_FIELD_CHARS}: "
            "shorten the strategy name or the config version"
        )
    return tag


def parse_client_extensions(
    extensions: Mapping[str, object] | None, *, fallback_id: str = ""
) -> ClientTags:
    """Pocket, strategy and config version from ``{id, tag, comment}``; never raises.

    ``fallback_id`` is the fill's ``clientOrderID``, used when the extensions carry no id.
    Junk (non-strings, over-long values) is ignored, not fatal: the trade still lands, under
    ``manual``/``unknown``, which the learning loops treat as not-ours.
    """
    ext = extensions if isinstance(extensions, Mapping) else {}
    tag = _text(ext.get("tag"))
    client_id = _text(ext.get("id")) or _text(fallback_id)
    pairs = _tag_pairs(tag)
    id_pocket, id_strategy = _from_client_id(client_id)
    return ClientTags(
        pocket=pairs.get("pocket", "").lower() or id_pocket or DEFAULT_POCKET,
        strategy=pairs.get("strategy", "") or id_strategy or DEFAULT_STRATEGY,
        config_version=pairs.get("cfg", ""),
        client_order_id=client_id,
    )


def _text(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_CLIENT_FIELD_CHARS:
        return ""
    return value.strip()


def _tag_pairs(tag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for part in tag.split(";"):
        key, sep, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if sep and key and _VALUE_RE.match(value) and key not in pairs:
            pairs[key] = value
    return pairs


def _from_client_id(client_id: str) -> tuple[str, str]:
    """(pocket or "", strategy or "") from a QuantRabbit client order id."""
    if _QR_FAST.match(client_id):
        return "scalp", "fast_scalp"
    for pattern in (_QR_MS_FIRST, _QR_POCKET_FIRST):
        match = pattern.match(client_id)
        if match:
            pocket = match.group("pocket").lower()
            strategy = match.group("strategy")
            return (pocket if pocket in _KNOWN_POCKETS else ""), strategy
    return "", ""
