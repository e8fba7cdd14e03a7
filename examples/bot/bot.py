"""A small runnable bot on autolearn's worker API: knobs, arms, entry gates, tagged orders, ledger.

It replays M1 candles from a HistData file (the bundled EUR/USD July 2018 month by default) on a
simulated clock and trades one toy momentum strategy with a paper broker. Everything autolearn
asks of a bot is here, in the order a real bot does it:

1. ``autolearn.connect(bot_root)``: one ``Worker`` with ``.tuning``, ``.gates``, ``.ledger``;
2. per candidate entry, one unit id (the client order id): every knob of that entry read with
   ``tuning.get(key, unit=order_id)``, and ``tuning.arm(order_id).version`` pinned on the order
   tag (``format_client_tag``) and on the trade;
3. ``gates.check_entry`` before every entry (never before an exit), sized by its multiplier;
4. every signal logged (one JSON line on stdout), a denied one recorded as a shadow signal;
5. every closed trade recorded with ``ledger.record_trade``.

Needs only the bare install (``pip install autolearn``): the standard library reads the candles.

    python examples/bot/bot.py --bot-root /tmp/bot --hours 6
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import autolearn
from autolearn.core.model import ShadowSignal, Side, Trade
from autolearn.oanda.tags import format_client_tag

INSTRUMENT = "EUR_USD"
POCKET = "micro"
STRATEGY = "MomentumPulse"
PIP = 0.0001
UNITS = 1000
LOOKBACK_BARS = 15  # momentum over the last 15 minutes
TP_PIPS, SL_PIPS, MAX_HOLD = 8.0, 6.0, timedelta(minutes=60)  # the bot's own exit rules
CANDLES = Path(__file__).resolve().parents[1] / "data" / "fx" / "DAT_ASCII_EURUSD_M1_201807.csv"
# HistData stamps bars in New York time (autolearn's candle loader makes the same choice).
_NEW_YORK = ZoneInfo("America/New_York")


@dataclass(frozen=True, slots=True)
class Bar:
    at: datetime  # bar open, UTC
    high: float
    low: float
    close: float


@dataclass(frozen=True, slots=True)
class Position:
    order_id: str
    version: str
    side: Side
    entry_price: float
    entry_at: datetime
    units: int


def read_bars(path: Path, start: datetime, end: datetime) -> Iterator[Bar]:
    """HistData ASCII M1 rows ``YYYYMMDD HHMMSS;open;high;low;close;volume`` in [start, end)."""
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.reader(handle, delimiter=";"):
            local = datetime.strptime(row[0], "%Y%m%d %H%M%S").replace(tzinfo=_NEW_YORK)
            at = local.astimezone(UTC)
            if start <= at < end:
                yield Bar(at, float(row[2]), float(row[3]), float(row[4]))


def log(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}, sort_keys=True, default=str), flush=True)


def run(bot_root: Path, candles: Path, start: datetime, hours: float) -> dict[str, int]:
    counts = {"signals": 0, "entries": 0, "denied": 0, "trades": 0}
    closes: list[float] = []
    held: Position | None = None
    with autolearn.connect(bot_root) as worker:
        for bar in read_bars(candles, start, start + timedelta(hours=hours)):
            now = bar.at + timedelta(minutes=1)  # decisions at the bar's close
            if held is not None and _should_exit(held, bar, now):
                worker.ledger.record_trade(_closed(held, bar, now, counts["trades"]))
                log("trade_closed", order_id=held.order_id, config_version=held.version)
                counts["trades"] += 1
                held = None
            closes.append(bar.close)
            if held is not None or len(closes) <= LOOKBACK_BARS:
                continue
            momentum_pips = (bar.close - closes[-1 - LOOKBACK_BARS]) / PIP
            order_id = f"al-{int(now.timestamp() * 1000)}-{POCKET}-{STRATEGY}"
            # One unit per entry: every knob of this entry with the same unit, then its arm.
            min_confidence = worker.tuning.get(
                f"strategies.{STRATEGY}.min_confidence", unit=order_id
            )
            confidence = min(1.0, abs(momentum_pips) / 10.0)
            if confidence < min_confidence:
                continue
            version = worker.tuning.arm(order_id).version
            side = Side.LONG if momentum_pips > 0 else Side.SHORT
            # Flat when we get here, so no open positions to declare.
            verdict = worker.gates.check_entry(STRATEGY, POCKET, side, bar.close, now, ())
            counts["signals"] += 1
            log(
                "signal",
                order_id=order_id,
                at=now.isoformat(),
                side=side.value,
                price=bar.close,
                confidence=round(confidence, 3),
                config_version=version,
                allowed=verdict.allowed,
                reasons=list(verdict.codes),
            )
            if not verdict.allowed:
                counts["denied"] += 1
                worker.ledger.record_shadow_signal(
                    ShadowSignal(
                        signal_id=order_id,
                        at=now,
                        instrument=INSTRUMENT,
                        pocket=POCKET,
                        strategy=STRATEGY,
                        side=side,
                        price=bar.close,
                        sl_pips=SL_PIPS,
                        tp_pips=TP_PIPS,
                        config_version=version,
                        reason=",".join(verdict.blocking_codes),
                    )
                )
                continue
            units = max(1, round(UNITS * verdict.size_multiplier))
            tag = format_client_tag(pocket=POCKET, strategy=STRATEGY, config_version=version)
            # A real bot sends the order here with tradeClientExtensions {id: order_id, tag: tag}.
            log("order_sent", order_id=order_id, tag=tag, units=units)
            held = Position(order_id, version, side, bar.close, now, units)
            counts["entries"] += 1
    return counts


def _should_exit(held: Position, bar: Bar, now: datetime) -> bool:
    sign = 1 if held.side is Side.LONG else -1
    best = (bar.high if sign > 0 else bar.low) - held.entry_price
    worst = (bar.low if sign > 0 else bar.high) - held.entry_price
    return (
        sign * best >= TP_PIPS * PIP
        or sign * worst <= -SL_PIPS * PIP
        or now - held.entry_at >= MAX_HOLD
    )


def _closed(held: Position, bar: Bar, now: datetime, n: int) -> Trade:
    sign = 1 if held.side is Side.LONG else -1
    pl_pips = round(sign * (bar.close - held.entry_price) / PIP, 1)
    return Trade(
        broker_trade_id=f"paper-{n + 1}",
        close_tx_id=f"paper-{n + 1}-close",
        instrument=INSTRUMENT,
        pocket=POCKET,
        strategy=STRATEGY,
        side=held.side,
        units=held.units,
        entry_price=held.entry_price,
        close_price=bar.close,
        entry_at=held.entry_at,
        close_at=now,
        pl_pips=pl_pips,
        pl_account=round(pl_pips * PIP * held.units, 2),  # USD account, EUR/USD
        exit_reason="tp_sl_or_time",
        config_version=held.version,
        client_order_id=held.order_id,
        source="example_bot",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bot-root", type=Path, required=True)
    parser.add_argument("--candles", type=Path, default=CANDLES)
    parser.add_argument("--start", default="2018-07-02T06:00:00+00:00")
    parser.add_argument("--hours", type=float, default=6.0)
    args = parser.parse_args()
    start = datetime.fromisoformat(args.start).astimezone(UTC)
    counts = run(args.bot_root, args.candles, start, args.hours)
    log("run_finished", **counts)


if __name__ == "__main__":
    main()
