"""A local HTTP server that speaks the slice of OANDA v20 that ``V20Client`` reads.

For tests (autolearn's and a bot author's own: README "Testing your bot") and drills: a real
socket on 127.0.0.1 (so the client's httpx stack, timeouts and retries run for real), serving
``transactions/sinceid`` (paged like OANDA, at most ``page_size`` per answer),
``transactions/{id}``, ``trades/{id}`` and ``trades?state=CLOSED`` (trades derived from the
transaction log, plus any given explicitly),
``instruments/{instrument}/candles`` (v20's query rules: ``price`` M/B/A, ``granularity``,
``count`` <= 5000, ``from``/``to``/``includeFirst``; the newest bar is ``complete: false``
unless ``newest_complete``, as while the market is open), checking the bearer token, and
failing on script: HTTP errors with headers (429 + Retry-After, 503...), slow answers, bodies
cut short and non-JSON bodies. It must never be pointed at or mistaken for a broker: it places
nothing, holds no money and knows only the transactions and candles it is given. It needs
only the standard library (no extra): a bot's tests can run it with the bare install.

As a program (the runbook's reconcile drill), it serves a recorded transaction log until
stopped, accepting the token in ``OANDA_TOKEN``::

    python -m autolearn.testing.oanda_v20 --transactions session.json --account ID --url-file F
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from autolearn.core.timestamps import TimestampError, parse_utc, to_epoch_us

__all__ = [
    "FakeV20Server",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "derive_trades",
    "main",
    "v20_candle",
]

PageTransform = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


class FaultKind(StrEnum):
    """How a scripted request fails."""

    STATUS = "status"  # answer with this HTTP status, body and headers
    DELAY = "delay"  # sleep, then answer normally (client timeouts)
    TRUNCATED = "truncated"  # promise Content-Length, send half, close
    NOT_JSON = "not_json"  # a 200 whose body is cut mid-JSON but correctly framed


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """One scripted failure, consumed by the first matching request.

    A request matches when its path contains ``path_contains`` and the server has already
    answered at least ``after_requests`` requests (to fail, say, the third page only).
    """

    kind: FaultKind
    status: int = 200
    body: Mapping[str, object] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    path_contains: str = ""
    after_requests: int = 0

    @classmethod
    def http(
        cls,
        status: int,
        body: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        path_contains: str = "",
        after_requests: int = 0,
    ) -> Fault:
        return cls(
            kind=FaultKind.STATUS,
            status=status,
            body=body,
            headers=dict(headers or {}),
            path_contains=path_contains,
            after_requests=after_requests,
        )

    @classmethod
    def delay(cls, seconds: float, *, path_contains: str = "") -> Fault:
        return cls(kind=FaultKind.DELAY, delay_s=seconds, path_contains=path_contains)

    @classmethod
    def truncated(cls, *, path_contains: str = "") -> Fault:
        return cls(kind=FaultKind.TRUNCATED, path_contains=path_contains)

    @classmethod
    def not_json(cls, *, path_contains: str = "") -> Fault:
        return cls(kind=FaultKind.NOT_JSON, path_contains=path_contains)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedRequest:
    """What the server saw (never the token itself, only whether it matched)."""

    path: str
    query: dict[str, str]
    authorized: bool
    fault: str = ""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeV20Server

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that timed out closes its socket while a DELAY fault still sleeps: the late
        # write fails with a connection error, which is the point of the fault, not a bug.
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError):
            self.fake.errors.append(repr(exc))


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: simple and deterministic

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request stderr lines."""

    def do_GET(self) -> None:
        self.server.fake._handle(self)


class FakeV20Server:
    """A scripted, thread-backed v20 server; use as a context manager.

    Args:
        account_id: the only account it serves (others get 403).
        token: the bearer token it accepts (others get 401).
        transactions: the account's transaction log (any order; ids must be unique).
        trades: explicit v20 Trade objects, overriding those derived from the log.
        page_size: most transactions per ``sinceid`` answer (OANDA: 1000).
        overlap: re-send this many already-delivered transactions at the head of each page.
        page_transform: applied to each page before sending (shuffle, duplicate... in tests).
    """

    def __init__(
        self,
        *,
        account_id: str,
        token: str,
        transactions: Iterable[Mapping[str, Any]] = (),
        trades: Iterable[Mapping[str, Any]] = (),
        page_size: int = 1000,
        overlap: int = 0,
        page_transform: PageTransform | None = None,
    ) -> None:
        self.account_id = account_id
        self.page_size = page_size
        self.overlap = overlap
        self.page_transform = page_transform
        self.errors: list[str] = []
        self._token = token
        self._lock = threading.Lock()
        self._transactions: list[dict[str, Any]] = []
        self._explicit_trades = {str(t["id"]): dict(t) for t in trades}
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        # (instrument, granularity) -> [(open time us, candle without "complete")], sorted
        self._candles: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
        self.newest_complete = False
        self.add_transactions(transactions)

    def __repr__(self) -> str:
        return f"FakeV20Server(account_id={self.account_id!r}, token=<redacted>)"

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeV20Server:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeV20Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeV20Server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- scripting and inspection -------------------------------------------------------------

    def add_transactions(self, transactions: Iterable[Mapping[str, Any]]) -> None:
        """Append to the log (new activity on the account between two imports)."""
        with self._lock:
            self._transactions.extend(dict(t) for t in transactions)
            self._transactions.sort(key=lambda t: int(t["id"]))

    def add_candles(
        self, instrument: str, granularity: str, candles: Iterable[Mapping[str, Any]]
    ) -> None:
        """Add bars (``v20_candle`` values) to a series; a bar at an existing time replaces it.

        The series' newest bar is served ``complete: false`` unless ``newest_complete`` is set
        (the market is closed): adding a newer bar completes the previous one.
        """
        with self._lock:
            series = dict(self._candles.get((instrument, granularity), []))
            for candle in candles:
                bar = {k: v for k, v in candle.items() if k != "complete"}
                series[_time_us(str(bar["time"]))] = bar
            self._candles[(instrument, granularity)] = sorted(series.items())

    def script(self, *faults: Fault) -> None:
        """Queue failures; each is used once, by the first matching request."""
        with self._lock:
            self._faults.extend(faults)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    @property
    def last_transaction_id(self) -> str:
        with self._lock:
            return str(self._transactions[-1]["id"]) if self._transactions else "0"

    # -- request handling -------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        url = urlsplit(handler.path)
        query = dict(parse_qsl(url.query))
        authorized = handler.headers.get("Authorization", "") == f"Bearer {self._token}"
        with self._lock:
            seen = len(self._requests)
            fault = next(
                (
                    f
                    for f in self._faults
                    if f.path_contains in url.path and seen >= f.after_requests
                ),
                None,
            )
            if fault is not None:
                self._faults.remove(fault)
            self._requests.append(
                RecordedRequest(
                    path=url.path,
                    query=query,
                    authorized=authorized,
                    fault=fault.kind.value if fault else "",
                )
            )
        if fault is not None and fault.kind is FaultKind.STATUS:
            body = fault.body if fault.body is not None else {"errorMessage": "scripted"}
            _send(handler, fault.status, body, fault.headers)
            return
        if fault is not None and fault.kind is FaultKind.DELAY:
            time.sleep(fault.delay_s)
        unix = handler.headers.get("Accept-Datetime-Format", "").upper() == "UNIX"
        status, payload = self._route(url.path, query, authorized, unix)
        if fault is not None and fault.kind in (FaultKind.TRUNCATED, FaultKind.NOT_JSON):
            raw = json.dumps(payload).encode()
            cut = raw[: max(1, len(raw) // 2)]
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            length = len(raw) if fault.kind is FaultKind.TRUNCATED else len(cut)
            handler.send_header("Content-Length", str(length))
            handler.end_headers()
            handler.wfile.write(cut)
            handler.close_connection = True
            return
        _send(handler, status, payload, {})

    def _route(
        self, path: str, query: Mapping[str, str], authorized: bool, unix: bool = False
    ) -> tuple[int, Mapping[str, object]]:
        if not authorized:
            return 401, {"errorMessage": "Insufficient authorization to perform request."}
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if len(parts) == 4 and parts[:2] == ["v3", "instruments"] and parts[3] == "candles":
            with self._lock:
                return self._candles_answer(parts[2], query, unix)
        if len(parts) < 4 or parts[:2] != ["v3", "accounts"]:
            return 404, {"errorMessage": f"Unknown endpoint {path}"}
        if parts[2] != self.account_id:
            return 403, {"errorMessage": "The provided request was forbidden."}
        with self._lock:
            if parts[3:] == ["transactions", "sinceid"]:
                return self._since(query)
            if len(parts) == 5 and parts[3] == "transactions":
                return self._transaction(parts[4])
            if parts[3:] == ["trades"]:
                return self._trade_list(query)
            if len(parts) == 5 and parts[3] == "trades":
                return self._trade(parts[4])
        return 404, {"errorMessage": f"Unknown endpoint {path}"}

    def _since(self, query: Mapping[str, str]) -> tuple[int, Mapping[str, object]]:
        since = query.get("id", "")
        if not since.isdigit():
            return 400, {"errorMessage": "Invalid value specified for 'id'"}
        newer = [t for t in self._transactions if int(t["id"]) > int(since)]
        page = newer[: self.page_size]
        if self.overlap:
            older = [t for t in self._transactions if int(t["id"]) <= int(since)]
            page = older[-self.overlap :] + page
        if self.page_transform is not None:
            page = self.page_transform([dict(t) for t in page])
        return 200, {"transactions": page, "lastTransactionID": self._last_id()}

    def _transaction(self, tx_id: str) -> tuple[int, Mapping[str, object]]:
        found = next((t for t in self._transactions if str(t["id"]) == tx_id), None)
        if found is None:
            return 404, {
                "errorCode": "NO_SUCH_TRANSACTION",
                "errorMessage": "The Transaction specified does not exist",
            }
        return 200, {"transaction": found, "lastTransactionID": self._last_id()}

    def _trade(self, spec: str) -> tuple[int, Mapping[str, object]]:
        trades = self._all_trades()
        if spec.startswith("@"):
            found = [t for t in trades.values() if _client_id(t) == spec[1:]]
            trade = found[0] if found else None
        else:
            trade = trades.get(spec)
        if trade is None:
            return 404, {
                "errorCode": "NO_SUCH_TRADE",
                "errorMessage": "The Trade specified does not exist",
            }
        return 200, {"trade": trade, "lastTransactionID": self._last_id()}

    def _trade_list(self, query: Mapping[str, str]) -> tuple[int, Mapping[str, object]]:
        state = query.get("state", "OPEN")
        count = int(query.get("count", "50"))
        before = int(query["beforeID"]) if query.get("beforeID", "").isdigit() else None
        trades = [
            t
            for t in self._all_trades().values()
            if (state == "ALL" or t.get("state") == state)
            and (before is None or int(t["id"]) < before)
        ]
        trades.sort(key=lambda t: int(t["id"]), reverse=True)
        return 200, {"trades": trades[:count], "lastTransactionID": self._last_id()}

    def _candles_answer(
        self, instrument: str, query: Mapping[str, str], unix: bool
    ) -> tuple[int, Mapping[str, object]]:
        """v20's candle query rules, on the stored series (times are bar opens)."""
        if not any(key[0] == instrument for key in self._candles):
            return 400, {"errorMessage": f"Invalid value specified for 'instrument': {instrument}"}
        granularity = query.get("granularity", "S5")
        price = query.get("price", "M")
        if not price or any(p not in "MBA" for p in price):
            return 400, {"errorMessage": f"Invalid value specified for 'price': {price}"}
        try:
            start = _time_us(query["from"]) if "from" in query else None
            end = _time_us(query["to"]) if "to" in query else None
        except ValueError as exc:
            return 400, {"errorMessage": f"Invalid value specified for 'from'/'to': {exc}"}
        if "count" in query and start is not None and end is not None:
            return 400, {"errorMessage": "'count' cannot be specified with both 'from' and 'to'"}
        count = query.get("count", "500")
        if not count.isdigit() or not 1 <= int(count) <= 5000:
            return 400, {"errorMessage": f"Invalid value specified for 'count': {count}"}
        series = self._candles.get((instrument, granularity), [])
        first = query.get("includeFirst", "true") == "true"
        chosen = [
            (t, bar)
            for t, bar in series
            if (start is None or t > start or (first and t == start)) and (end is None or t < end)
        ]
        if start is not None and end is not None and len(chosen) > 5000:
            return 400, {"errorMessage": "Maximum value for 'count' exceeded"}
        if start is not None and end is None:
            chosen = chosen[: int(count)]  # from: the first count bars
        elif start is None:
            chosen = chosen[-int(count) :]  # to, or neither: the count bars before
        newest = series[-1][0] if series else None
        out = []
        for t, bar in chosen:
            candle: dict[str, Any] = {
                "complete": self.newest_complete or t != newest,
                "volume": bar.get("volume", 0),
                "time": _unix_text(t) if unix else bar["time"],
            }
            for letter, name in (("M", "mid"), ("B", "bid"), ("A", "ask")):
                if letter in price and name in bar:
                    candle[name] = bar[name]
            out.append(candle)
        return 200, {"instrument": instrument, "granularity": granularity, "candles": out}

    def _all_trades(self) -> dict[str, dict[str, Any]]:
        return {**derive_trades(self._transactions), **self._explicit_trades}

    def _last_id(self) -> str:
        return str(self._transactions[-1]["id"]) if self._transactions else "0"


def v20_candle(
    at: datetime,
    *,
    mid: tuple[float, float, float, float],
    spread: float,
    volume: int = 10,
    decimals: int = 3,
) -> dict[str, Any]:
    """One bar in v20's wire format: RFC 3339 nanosecond time, price strings, mid/bid/ask.

    ``mid`` is (o, h, l, c); bid and ask sit ``spread / 2`` (price units) below and above it,
    quoted at ``decimals`` digits like the instrument (mid gets one more, as OANDA's does).
    """

    def side(offset: float, digits: int) -> dict[str, str]:
        return {k: f"{v + offset:.{digits}f}" for k, v in zip("ohlc", mid, strict=True)}

    return {
        "time": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z"),
        "volume": volume,
        "mid": side(0.0, decimals + 1),
        "bid": side(-spread / 2, decimals),
        "ask": side(spread / 2, decimals),
    }


def _time_us(text: str) -> int:
    """An RFC 3339 or UNIX-seconds time -> epoch microseconds (raises ValueError)."""
    if text.replace(".", "", 1).isdigit():
        return int(Decimal(text) * 1_000_000)
    try:
        return to_epoch_us(parse_utc(text))
    except TimestampError as exc:
        raise ValueError(str(exc)) from exc


def _unix_text(time_us: int) -> str:
    return f"{time_us // 1_000_000}.{time_us % 1_000_000:06d}000"


def derive_trades(transactions: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """v20 Trade objects implied by the ORDER_FILLs of a log (malformed fills are skipped)."""
    trades: dict[str, dict[str, Any]] = {}
    for tx in sorted(transactions, key=lambda t: int(t["id"])):
        if tx.get("type") != "ORDER_FILL":
            continue
        try:
            _apply_fill(trades, tx)
        except (KeyError, TypeError, ValueError, InvalidOperation):
            continue  # the fake mirrors only well-formed history
    return trades


def _apply_fill(trades: dict[str, dict[str, Any]], tx: Mapping[str, Any]) -> None:
    closes = list(tx.get("tradesClosed") or [])
    if tx.get("tradeReduced"):
        closes.append(tx["tradeReduced"])
    for close in closes:
        trade = trades.get(str(close["tradeID"]))
        if trade is None:
            continue
        current = Decimal(trade["currentUnits"]) + Decimal(close["units"])
        trade["currentUnits"] = str(current)
        trade["realizedPL"] = str(Decimal(trade["realizedPL"]) + Decimal(close["realizedPL"]))
        trade["closingTransactionIDs"] = [*trade["closingTransactionIDs"], str(tx["id"])]
        if current == 0:
            trade.update(state="CLOSED", closeTime=tx["time"], averageClosePrice=close["price"])
    opened = tx.get("tradeOpened")
    if opened:
        trade = {
            "id": str(opened["tradeID"]),
            "instrument": tx["instrument"],
            "price": opened["price"],
            "openTime": tx["time"],
            "initialUnits": opened["units"],
            "initialMarginRequired": opened.get("initialMarginRequired", "0.0000"),
            "state": "OPEN",
            "currentUnits": opened["units"],
            "realizedPL": "0.0000",
            "financing": "0.0000",
            "dividendAdjustment": "0.0000",
            "closingTransactionIDs": [],
        }
        if opened.get("clientExtensions"):
            trade["clientExtensions"] = dict(opened["clientExtensions"])
        trades[trade["id"]] = trade


def _client_id(trade: Mapping[str, Any]) -> str:
    ext = trade.get("clientExtensions")
    return str(ext.get("id", "")) if isinstance(ext, Mapping) else ""


def _send(
    handler: _Handler, status: int, payload: Mapping[str, object], headers: Mapping[str, str]
) -> None:
    raw = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(raw)))
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(raw)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a recorded log on 127.0.0.1 until SIGTERM/SIGINT; exit 78 without ``OANDA_TOKEN``."""
    parser = argparse.ArgumentParser(
        prog="python -m autolearn.testing.oanda_v20",
        description="A local v20 server for drills and tests (never a broker).",
    )
    parser.add_argument(
        "--transactions",
        type=Path,
        required=True,
        help="JSON file: a list of transactions, or an object with a 'transactions' list",
    )
    parser.add_argument("--account", default="001-009-0000000-002", help="the account it serves")
    parser.add_argument("--url-file", type=Path, help="write the base URL here once serving")
    args = parser.parse_args(argv)
    token = os.environ.get("OANDA_TOKEN", "")
    if not token:
        print("oanda_v20: set OANDA_TOKEN (the token it accepts)", file=sys.stderr)
        return 78
    doc = json.loads(args.transactions.read_text(encoding="utf-8"))
    transactions = doc["transactions"] if isinstance(doc, dict) else doc
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with FakeV20Server(account_id=args.account, token=token, transactions=transactions) as server:
        if args.url_file is not None:
            tmp = args.url_file.with_name(args.url_file.name + ".tmp")
            tmp.write_text(server.base_url + "\n", encoding="utf-8")
            tmp.replace(args.url_file)  # readers see the whole URL or nothing
        print(server.base_url, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
