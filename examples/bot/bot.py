"""A small runnable bot on autolearn's worker API: knobs, arms, entry gates, signal log, ledger.

It trades one toy momentum strategy with a paper broker on a simulated clock, over M1 candles
from a HistData file (the bundled EUR/USD July 2018 month by default) or polled from a v20
server's ``GET /v3/instruments/{instrument}/candles`` (``--oanda-url``; the local fake server in
tests). Everything autolearn asks of a bot is here, in the order a real bot does it:

1. ``autolearn.connect(bot_root)``: one ``Worker`` with ``.tuning``, ``.gates``, ``.ledger``;
2. per candidate entry, one unit id (the client order id): every knob of that entry read with
   ``tuning.get(key, unit=order_id)``, and ``tuning.arm(order_id).version`` pinned on the
   signal, the order tag (``format_client_tag``) and the trade;
3. ``gates.check_entry`` before every entry (never before an exit), sized by its multiplier;
4. every signal it evaluates logged with ``ledger.record_signal(EntrySignal(...))``, taken or
   not: its scores (the registry's ``score`` of the entry threshold, here ``confidence``), its
   unit id, why it was not taken (``threshold``, ``position_open``, ``gate:<code>``,
   ``size_zero``) and, once the fill names it, the trade a taken one opened; a gate-denied one
   also as a shadow signal (the evidence that lets a blocked strategy recover);
5. every closed trade recorded with ``ledger.record_trade``.

Candidates are computed at the loosest threshold the registry allows (``lower`` for
``admits: above``) and admitted by their score against the unit's value, so the signal log holds
every signal a value in range could admit: what the learner's counterfactual replays.

Reading the bundled file needs only the bare install (``pip install autolearn``); polling a v20
server needs the ``[oanda]`` extra (httpx) and the token in ``OANDA_TOKEN``.

    python examples/bot/bot.py --bot-root /tmp/bot --hours 6
    OANDA_TOKEN=... python examples/bot/bot.py --bot-root /tmp/bot --oanda-url http://127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import autolearn
from autolearn.core.knobs import KnobSpec
from autolearn.core.model import EntrySignal, ShadowSignal, Side, Trade
from autolearn.core.timestamps import parse_utc
from autolearn.oanda.tags import format_client_tag
from autolearn.worker import Worker

INSTRUMENT = "EUR_USD"
POCKET = "micro"
STRATEGY = "MomentumPulse"
THRESHOLD = f"strategies.{STRATEGY}.min_confidence"  # admits: above, score: confidence
PIP = 0.0001
UNITS = 1000
LOOKBACK_BARS = 15  # momentum over the last 15 minutes
TP_PIPS, SL_PIPS, MAX_HOLD = 8.0, 6.0, timedelta(minutes=60)  # the bot's own exit rules
CANDLES = Path(__file__).resolve().parents[1] / "data" / "fx" / "DAT_ASCII_EURUSD_M1_201807.csv"
# HistData stamps bars in New York time (autolearn's candle loader makes the same choice).
_NEW_YORK = ZoneInfo("America/New_York")
_PAGE = 500  # candles per poll (v20 allows up to 5000)


@dataclass(frozen=True, slots=True)
class Bar:
    at: datetime  # bar open, UTC
    open: float
    high: float
    low: float
    close: float


@dataclass(frozen=True, slots=True)
class Position:
    order_id: str
    trade_id: str  # what the (paper) fill names the trade
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
                yield Bar(at, *(float(v) for v in row[1:5]))


def poll_bars(base_url: str, token: str, start: datetime, end: datetime) -> Iterator[Bar]:
    """Complete M1 mid bars in [start, end) from v20's candles endpoint, one poll at a time.

    Each poll asks for the bars after the last complete one it has (``from`` + ``includeFirst=
    false``) and keeps only ``complete`` ones: the newest bar is still forming while the market
    is open. A live bot sleeps until the next bar closes and polls again; this example stops when
    the server has no newer complete bar (a fake server's feed is exhausted).
    """
    from autolearn.oanda.client import V20Client  # the [oanda] extra (httpx): only this mode

    cursor, include_first = start, True
    with V20Client(token=token, base_url=base_url) as client:
        while cursor < end:
            body = client.candles(
                INSTRUMENT,
                granularity="M1",
                price="M",
                count=_PAGE,
                from_time=cursor,
                include_first=include_first,
            )
            raw = body.get("candles")
            candles = raw if isinstance(raw, list) else []  # V20Client.candles checks it
            bars = [_v20_bar(c) for c in candles if isinstance(c, Mapping) and c.get("complete")]
            bars = [b for b in bars if b.at < end]
            if not bars:
                return
            yield from bars
            cursor, include_first = bars[-1].at, False


def _v20_bar(candle: Mapping[str, object]) -> Bar:
    mid = candle["mid"]
    if not isinstance(mid, Mapping):
        raise ValueError(f"v20 candle at {candle.get('time')!r} has no mid prices")
    at = parse_utc(str(candle["time"]))
    return Bar(at, *(float(mid[k]) for k in "ohlc"))


def log(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}, sort_keys=True, default=str), flush=True)


class Bot:
    """One strategy, one position at most, a paper broker that fills at the bar's close."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.threshold: KnobSpec = worker.registry.spec(THRESHOLD)
        if self.threshold.score is None or self.threshold.admits != "above":
            raise SystemExit(f"{THRESHOLD} must be an 'admits: above' entry threshold")
        self.counts = dict.fromkeys(("signals", "taken", "entries", "denied", "trades"), 0)
        self.closes: list[float] = []
        self.held: Position | None = None

    def on_bar(self, bar: Bar) -> None:
        """Exit first (exits never ask the gates), then evaluate this bar's candidate entry."""
        now = bar.at + timedelta(minutes=1)  # decisions at the bar's close
        if self.held is not None and _should_exit(self.held, bar, now):
            self.worker.ledger.record_trade(_closed(self.held, bar, now))
            log("trade_closed", order_id=self.held.order_id, config_version=self.held.version)
            self.counts["trades"] += 1
            self.held = None
        self.closes.append(bar.close)
        if len(self.closes) > LOOKBACK_BARS:
            self._evaluate(bar, now)

    def _evaluate(self, bar: Bar, now: datetime) -> None:
        momentum_pips = (bar.close - self.closes[-1 - LOOKBACK_BARS]) / PIP
        confidence = round(min(1.0, abs(momentum_pips) / 10.0), 4)
        loosest = self.threshold.lower if self.threshold.lower is not None else 0.0
        if momentum_pips == 0 or confidence < loosest:
            return  # no value in range would admit it: not a candidate
        order_id = f"al-{int(now.timestamp() * 1000)}-{POCKET}-{STRATEGY}"
        # One unit per entry: every knob of this entry with the same unit, then its arm.
        min_confidence = self.worker.tuning.get(THRESHOLD, unit=order_id)
        version = self.worker.tuning.arm(order_id).version
        side = Side.LONG if momentum_pips > 0 else Side.SHORT
        scores = {str(self.threshold.score): confidence, "momentum_pips": round(momentum_pips, 1)}
        signal = EntrySignal(
            signal_id=order_id,
            at=now,
            instrument=INSTRUMENT,
            pocket=POCKET,
            strategy=STRATEGY,
            side=side,
            price=bar.close,
            sl_pips=SL_PIPS,
            tp_pips=TP_PIPS,
            timeout_s=MAX_HOLD.total_seconds(),
            scores=scores,
            unit_id=order_id,
            taken=True,
            config_version=version,
        )
        self.counts["signals"] += 1
        if confidence < min_confidence:  # the registry's "admits: above"
            self._not_taken(signal, "threshold")
        elif self.held is not None:
            self._not_taken(signal, "position_open")
        else:
            self._ask_gates(signal, now)

    def _ask_gates(self, signal: EntrySignal, now: datetime) -> None:
        # Flat when we get here, so no open positions to declare.
        verdict = self.worker.gates.check_entry(
            STRATEGY, POCKET, signal.side, signal.price, now, ()
        )
        units = round(UNITS * verdict.size_multiplier)
        if not verdict.allowed:
            self._not_taken(signal, f"gate:{verdict.blocking_codes[0]}", verdict.codes)
            self.counts["denied"] += 1
            self.worker.ledger.record_shadow_signal(_shadow(signal, verdict.blocking_codes))
            return
        if units < 1:
            self._not_taken(signal, "size_zero", verdict.codes)
            return
        self.worker.ledger.record_signal(signal)  # at the decision, before the order goes out
        self._log_signal(signal, verdict.codes)
        tag = format_client_tag(
            pocket=POCKET, strategy=STRATEGY, config_version=signal.config_version
        )
        # A real bot sends the order here with tradeClientExtensions {id: order_id, tag: tag}
        # and learns the trade id from the fill; the paper broker fills at once.
        log("order_sent", order_id=signal.signal_id, tag=tag, units=units)
        self.counts["entries"] += 1
        trade_id = f"paper-{int(now.timestamp())}"  # unique: one position at a time
        self.worker.ledger.record_signal(replace(signal, broker_trade_id=trade_id))
        self.counts["taken"] += 1
        self.held = Position(
            signal.signal_id,
            trade_id,
            signal.config_version,
            signal.side,
            signal.price,
            now,
            units,
        )

    def _not_taken(self, signal: EntrySignal, why: str, codes: Iterable[str] = ()) -> None:
        signal = replace(signal, taken=False, not_taken=why)
        self.worker.ledger.record_signal(signal)
        self._log_signal(signal, codes)

    def _log_signal(self, signal: EntrySignal, codes: Iterable[str]) -> None:
        log(
            "signal",
            order_id=signal.signal_id,
            at=signal.at.isoformat(),
            side=signal.side.value,
            price=signal.price,
            scores=dict(signal.scores),
            config_version=signal.config_version,
            taken=signal.taken,
            not_taken=signal.not_taken,
            reasons=list(codes),
        )


def run(bot_root: Path, bars: Iterable[Bar]) -> dict[str, int]:
    """Trade ``bars`` in order on the bot checkout ``bot_root``; the counts of what happened."""
    with autolearn.connect(bot_root) as worker:
        bot = Bot(worker)
        for bar in bars:
            bot.on_bar(bar)
    return bot.counts


def _shadow(signal: EntrySignal, codes: tuple[str, ...]) -> ShadowSignal:
    # Same id as the signal-log row: the ledger's copy of shadows into the log then lands on
    # the row the bot recorded (with its scores) instead of duplicating it.
    return ShadowSignal(
        signal_id=signal.signal_id,
        at=signal.at,
        instrument=INSTRUMENT,
        pocket=POCKET,
        strategy=STRATEGY,
        side=signal.side,
        price=signal.price,
        sl_pips=SL_PIPS,
        tp_pips=TP_PIPS,
        config_version=signal.config_version,
        reason=",".join(codes),
    )


def _should_exit(held: Position, bar: Bar, now: datetime) -> bool:
    sign = 1 if held.side is Side.LONG else -1
    best = (bar.high if sign > 0 else bar.low) - held.entry_price
    worst = (bar.low if sign > 0 else bar.high) - held.entry_price
    return (
        sign * best >= TP_PIPS * PIP
        or sign * worst <= -SL_PIPS * PIP
        or now - held.entry_at >= MAX_HOLD
    )


def _closed(held: Position, bar: Bar, now: datetime) -> Trade:
    sign = 1 if held.side is Side.LONG else -1
    pl_pips = round(sign * (bar.close - held.entry_price) / PIP, 1)
    return Trade(
        broker_trade_id=held.trade_id,
        close_tx_id=f"{held.trade_id}-close",
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
    parser.add_argument("--candles", type=Path, default=CANDLES, help="a HistData M1 file")
    parser.add_argument(
        "--oanda-url", help="poll this v20 server's candles instead (token in OANDA_TOKEN)"
    )
    parser.add_argument("--start", default="2018-07-02T06:00:00+00:00")
    parser.add_argument("--hours", type=float, default=6.0)
    args = parser.parse_args()
    start = datetime.fromisoformat(args.start).astimezone(UTC)
    end = start + timedelta(hours=args.hours)
    if args.oanda_url:
        token = os.environ.get("OANDA_TOKEN", "")
        if not token:
            sys.exit("bot: --oanda-url needs the token in OANDA_TOKEN")
        bars = poll_bars(args.oanda_url, token, start, end)
    else:
        bars = read_bars(args.candles, start, end)
    counts = run(args.bot_root, bars)
    log("run_finished", **counts)


if __name__ == "__main__":
    main()
