"""What the importer remembers about a trade between its opening and its final close.

Pure: no I/O, no clock. An ``Opening`` is built from the ``tradeOpened`` of an ``ORDER_FILL``
(by the mapper) or from a v20 Trade object (``GET trades/{id}``, for trades opened before our
first transaction). Between runs the openings of trades not yet fully closed are kept as one
small JSON object in the ``oanda:<account>:open_trades`` cursor; a damaged entry is dropped
with a note, never fatal, because the opening can always be fetched again from OANDA.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from autolearn.core.model import Side
from autolearn.core.timestamps import format_utc
from autolearn.oanda._fields import (
    Malformed,
    int_id,
    read_id,
    read_instrument,
    read_price,
    read_tags,
    read_time,
    read_units,
    show,
)
from autolearn.oanda.tags import DEFAULT_POCKET, DEFAULT_STRATEGY, ClientTags

__all__ = ["Opening", "dump_openings", "load_openings", "opening_from_trade"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Opening:
    """How a broker trade was opened: what a later close needs to become a ``Trade``."""

    trade_id: str
    instrument: str
    price: Decimal
    opened_at: datetime
    units: int  # signed initial units: + long, - short
    tags: ClientTags = field(default_factory=ClientTags)

    @property
    def side(self) -> Side:
        return Side.LONG if self.units > 0 else Side.SHORT


def opening_from_trade(trade: Mapping[str, object]) -> Opening:
    """The opening of a trade from ``GET trades/{id}`` (``price``, ``openTime``, ``initialUnits``).

    Raises:
        ValueError: a field is missing or malformed (the message names it).
    """
    return Opening(
        trade_id=read_id(trade, "id", "trade"),
        instrument=read_instrument(trade, "trade"),
        price=read_price(trade, "price", "trade"),
        opened_at=read_time(trade, "openTime", "trade"),
        units=read_units(trade, "initialUnits", "trade"),
        tags=read_tags(trade.get("clientExtensions"), ""),
    )


def dump_openings(openings: Mapping[str, Opening]) -> str:
    """Openings as the compact JSON stored in the ``open_trades`` cursor."""
    return json.dumps(
        {
            trade_id: {
                "instrument": o.instrument,
                "price": str(o.price),
                "openTime": format_utc(o.opened_at),
                "units": str(o.units),
                "pocket": o.tags.pocket,
                "strategy": o.tags.strategy,
                "cfg": o.tags.config_version,
                "clientID": o.tags.client_order_id,
            }
            for trade_id, o in sorted(openings.items(), key=lambda kv: int_id(kv[0]))
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def load_openings(text: str | None) -> tuple[dict[str, Opening], list[str]]:
    """Parse the ``open_trades`` cursor; bad entries are dropped and described, never fatal.

    Dropping is safe: a close whose opening is missing is completed with ``GET trades/{id}``.
    """
    if not text:
        return {}, []
    try:
        data = json.loads(text)
    except ValueError as exc:
        return {}, [f"open_trades cursor is not JSON ({exc}); openings will be re-fetched"]
    if not isinstance(data, dict):
        return {}, ["open_trades cursor is not a JSON object; openings will be re-fetched"]
    openings: dict[str, Opening] = {}
    problems: list[str] = []
    for key, entry in data.items():
        try:
            if not isinstance(entry, dict):
                raise Malformed("entry is not an object")
            opening = _opening_from_json(key, entry)
        except (ValueError, ArithmeticError) as exc:
            problems.append(f"open_trades[{show(key)}] dropped: {exc}; it will be re-fetched")
            continue
        openings[opening.trade_id] = opening
    return openings, problems


def _opening_from_json(key: str, entry: Mapping[str, object]) -> Opening:
    texts = {k: entry.get(k) for k in ("pocket", "strategy", "cfg", "clientID")}
    if not all(isinstance(v, str) for v in texts.values()):
        raise Malformed(f"pocket/strategy/cfg/clientID must be strings: {show(texts)}")
    return Opening(
        trade_id=read_id({"id": key}, "id", "open_trades"),
        instrument=read_instrument(entry, "open_trades"),
        price=read_price(entry, "price", "open_trades"),
        opened_at=read_time(entry, "openTime", "open_trades"),
        units=read_units(entry, "units", "open_trades"),
        tags=ClientTags(
            pocket=str(texts["pocket"]) or DEFAULT_POCKET,
            strategy=str(texts["strategy"]) or DEFAULT_STRATEGY,
            config_version=str(texts["cfg"]),
            client_order_id=str(texts["clientID"]),
        ),
    )
