"""OANDA v20 REST client: the read-only endpoints the importers and reconcile need.

An adapter (imperative shell) on ``httpx.Client`` with an injectable ``transport``, ``sleep``
and ``rng`` so tests drive it against a real local server without waiting. It maps every failure
to ``autolearn.errors``: 429, 5xx, timeouts, connection errors and truncated or non-JSON bodies
are retried with exponential backoff and jitter and end in ``BrokerUnavailable`` (skip the
cycle); 4xx answers and well-formed JSON of the wrong shape are ``BrokerRejected`` (a human must
look). It never places, modifies or closes anything, never reads the environment (the CLI reads
``OANDA_TOKEN`` and passes it in) and never lets the token reach a log line, an exception, a
repr or a report: every message built from broker text goes through ``_redact``.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from autolearn.adapters.logs import get_logger, redact_secret
from autolearn.errors import BrokerRejected, BrokerUnavailable, ConfigError

__all__ = [
    "LIVE_URL",
    "MAX_CANDLES",
    "PRACTICE_URL",
    "JsonObject",
    "RetryPolicy",
    "TransactionPage",
    "V20Client",
]

PRACTICE_URL = "https://api-fxpractice.oanda.com"
LIVE_URL = "https://api-fxtrade.oanda.com"

JsonObject = dict[str, object]

_log = get_logger(__name__)  # structlog loads on the first line logged

# Account ids look like 001-009-13679149-002; trade specifiers are a TradeID or @<clientID>.
# Checked before they reach a URL path so a typo cannot address another endpoint.
_ACCOUNT_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_TRADE_SPEC_RE = re.compile(r"^(?:[0-9]{1,19}|@[^\s/?#]{1,128})$")
_TX_ID_RE = re.compile(r"^[0-9]{1,19}$")
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# v20 InstrumentName (EUR_USD, XAU_USD, DE30_EUR...) and CandlestickGranularity.
_INSTRUMENT_RE = re.compile(r"^[A-Z0-9]{2,10}_[A-Z0-9]{2,10}$")
_GRANULARITIES = frozenset(
    {"S5", "S10", "S15", "S30", "M1", "M2", "M4", "M5", "M10", "M15", "M30", "H1", "H2"}
    | {"H3", "H4", "H6", "H8", "H12", "D", "W", "M"}
)
_PRICE_RE = re.compile(r"^(?=[MBA]{1,3}$)M?B?A?$")
MAX_CANDLES = 5000  # v20's most candles per request


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How hard to try before declaring the broker unavailable.

    ``max_attempts`` counts the first try. Backoff before retry ``n`` (1-based) is
    ``min(max_delay_s, base_delay_s * 2 ** (n - 1))`` with equal jitter (half fixed, half
    random), so concurrent hosts spread out but never retry instantly. A 429 ``Retry-After``
    in seconds is honoured exactly; one longer than ``max_retry_after_s`` ends the attempt at
    once (waiting minutes inside a timer cycle is worse than skipping the cycle).
    """

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_retry_after_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts}")
        for name in ("base_delay_s", "max_delay_s", "max_retry_after_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"RetryPolicy.{name} must be finite and >= 0, got {value!r}")

    def backoff_s(self, retry: int, rng: random.Random) -> float:
        """Delay before retry number ``retry`` (1-based)."""
        capped = min(self.max_delay_s, self.base_delay_s * 2.0 ** (retry - 1))
        return capped / 2.0 + rng.uniform(0.0, capped / 2.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionPage:
    """One answer of ``transactions/sinceid``: raw transactions plus the account's newest id.

    Transactions are kept as raw JSON values (possibly junk): validating them is the mapper's
    job, so one malformed transaction is reported instead of failing the whole page.
    """

    transactions: tuple[object, ...]
    last_transaction_id: str


class _Transient(Exception):
    """Internal: one attempt failed in a way worth retrying."""

    def __init__(self, problem: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.retry_after_s = retry_after_s


class V20Client:
    """Read-only OANDA v20 REST client (transactions, trades, closed trades, candles).

    Args:
        token: the personal access token; sent as a bearer header, never shown anywhere.
        base_url: ``PRACTICE_URL`` (default) or ``LIVE_URL``; tests pass a local server.
        timeout_s: per-operation timeout (connect, each read, write and pool).
        deadline_s: total time one request may take, body included (default 3 x
            ``timeout_s``): a body trickled a byte at a time never trips a read timeout.
        retry: backoff policy for transient failures.
        transport: optional ``httpx.BaseTransport`` (proxies, recording, tests).
        sleep: called with each backoff delay in seconds (tests pass a recorder).
        rng: jitter source (tests pass a seeded ``random.Random``).
    """

    def __init__(
        self,
        *,
        token: str,
        base_url: str = PRACTICE_URL,
        timeout_s: float = 10.0,
        deadline_s: float | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not token or token != token.strip() or any(c in token for c in "\r\n\t "):
            # The value itself is never echoed: it is a secret even when malformed.
            raise ConfigError(
                "OANDA token is empty or contains whitespace: set OANDA_TOKEN to the "
                "personal access token from the OANDA hub"
            )
        if not base_url.startswith(("https://", "http://")):
            raise ConfigError(f"OANDA base URL must start with https:// or http://: {base_url!r}")
        if not math.isfinite(timeout_s) or timeout_s <= 0:
            raise ConfigError(f"OANDA timeout_s must be > 0, got {timeout_s!r}")
        deadline = 3 * timeout_s if deadline_s is None else deadline_s
        if not math.isfinite(deadline) or deadline <= 0:
            raise ConfigError(f"OANDA deadline_s must be > 0, got {deadline_s!r}")
        self._deadline_s = deadline
        self._token = token
        self._base_url = base_url.rstrip("/")
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._http = httpx.Client(
            base_url=self._base_url,
            headers={
                "Authorization": f"Bearer {token}",
                # Ask for RFC 3339 times (nanoseconds, Z) rather than UNIX seconds.
                "Accept-Datetime-Format": "RFC3339",
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            follow_redirects=False,
        )
        self.requests = 0
        self.retries = 0

    def __repr__(self) -> str:
        return f"V20Client(base_url={self._base_url!r}, token=<redacted>)"

    def __enter__(self) -> V20Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- endpoints ------------------------------------------------------------------------

    def transactions_since(self, account_id: str, since_id: str) -> TransactionPage:
        """``GET /v3/accounts/{id}/transactions/sinceid?id=N``: transactions with id > N.

        OANDA returns at most 1000 per call; the caller loops until it reaches
        ``last_transaction_id``.
        """
        if not _TX_ID_RE.match(since_id):
            raise ConfigError(f"transaction id must be a non-negative integer, got {since_id!r}")
        path = f"/v3/accounts/{_account(account_id)}/transactions/sinceid"
        body = self._get_json(path, {"id": since_id})
        transactions = body.get("transactions")
        last_id = body.get("lastTransactionID")
        if not isinstance(transactions, list) or not isinstance(last_id, str):
            raise BrokerRejected(
                f"OANDA GET {path}: body lacks a 'transactions' list or a "
                f"'lastTransactionID' string (keys: {sorted(body)[:10]})"
            )
        return TransactionPage(transactions=tuple(transactions), last_transaction_id=last_id)

    def trade(self, account_id: str, trade_specifier: str) -> JsonObject:
        """``GET /v3/accounts/{id}/trades/{tradeSpecifier}``: one trade, open or closed."""
        if not _TRADE_SPEC_RE.match(trade_specifier):
            raise ConfigError(
                f"trade specifier must be a TradeID or @clientID, got {trade_specifier!r}"
            )
        spec = quote(trade_specifier, safe="@")
        path = f"/v3/accounts/{_account(account_id)}/trades/{spec}"
        trade = self._get_json(path, None).get("trade")
        if not isinstance(trade, dict):
            raise BrokerRejected(f"OANDA GET {path}: body lacks a 'trade' object")
        return trade

    def transaction(self, account_id: str, transaction_id: str) -> JsonObject:
        """``GET /v3/accounts/{id}/transactions/{transactionID}``: one transaction by id."""
        if not _TX_ID_RE.match(transaction_id):
            raise ConfigError(f"transaction id must be a TransactionID, got {transaction_id!r}")
        path = f"/v3/accounts/{_account(account_id)}/transactions/{transaction_id}"
        transaction = self._get_json(path, None).get("transaction")
        if not isinstance(transaction, dict):
            raise BrokerRejected(f"OANDA GET {path}: body lacks a 'transaction' object")
        return transaction

    def closed_trades(
        self, account_id: str, *, before_id: str | None = None, count: int = 500
    ) -> list[JsonObject]:
        """``GET /v3/accounts/{id}/trades?state=CLOSED``: newest first, ids < ``before_id``."""
        if not 1 <= count <= 500:
            raise ConfigError(f"count must be in 1..500 (OANDA maximum), got {count}")
        params = {"state": "CLOSED", "count": str(count)}
        if before_id is not None:
            if not _TX_ID_RE.match(before_id):
                raise ConfigError(f"before_id must be a TradeID, got {before_id!r}")
            params["beforeID"] = before_id
        path = f"/v3/accounts/{_account(account_id)}/trades"
        trades = self._get_json(path, params).get("trades")
        if not isinstance(trades, list) or not all(isinstance(t, dict) for t in trades):
            raise BrokerRejected(f"OANDA GET {path}: body lacks a 'trades' list of objects")
        return list(trades)

    def iter_closed_trades(
        self, account_id: str, *, count: int = 500, before_id: str | None = None
    ) -> Iterator[JsonObject]:
        """Every closed trade, newest first, paging with ``beforeID`` = smallest id seen."""
        while True:
            page = self.closed_trades(account_id, before_id=before_id, count=count)
            ids = [int(str(t.get("id"))) for t in page if _TX_ID_RE.match(str(t.get("id")))]
            yield from page
            if len(page) < count or not ids:
                return
            if before_id is not None and min(ids) >= int(before_id):
                return  # the server did not move backwards: stop rather than loop
            before_id = str(min(ids))

    def candles(
        self,
        instrument: str,
        *,
        granularity: str,
        price: str = "MBA",
        count: int | None = MAX_CANDLES,
        from_time: datetime | None = None,
        to_time: datetime | None = None,
        include_first: bool = True,
    ) -> JsonObject:
        """``GET /v3/instruments/{instrument}/candles``: the raw body (``candles`` checked a list).

        ``price`` is any of ``M``, ``B``, ``A`` in that order (``MBA``: mid, bid and ask). With
        ``from_time`` the answer is the ``count`` bars from there (``include_first=False``
        leaves out the bar opening exactly at it: page after the last one stored); with
        ``to_time`` too, ``count`` must be None (v20 refuses all three). Candles stay raw JSON
        (validating them is the importer's job, per bar).
        """
        if not _INSTRUMENT_RE.match(instrument):
            raise ConfigError(f"instrument must look like EUR_USD, got {instrument!r}")
        if granularity not in _GRANULARITIES:
            raise ConfigError(
                f"granularity must be one of {sorted(_GRANULARITIES)}, got {granularity!r}"
            )
        if not _PRICE_RE.match(price):
            raise ConfigError(f"price must be M, B, A or a combination in that order: {price!r}")
        params = {"price": price, "granularity": granularity}
        if count is not None:
            if not 1 <= count <= MAX_CANDLES:
                raise ConfigError(f"count must be in 1..{MAX_CANDLES} (OANDA maximum), got {count}")
            if from_time is not None and to_time is not None:
                raise ConfigError("candles: give count, or from_time and to_time, not all three")
            params["count"] = str(count)
        if from_time is not None:
            params["from"] = _rfc3339(from_time)
            params["includeFirst"] = "true" if include_first else "false"
        if to_time is not None:
            params["to"] = _rfc3339(to_time)
        path = f"/v3/instruments/{instrument}/candles"
        body = self._get_json(path, params)
        candles = body.get("candles")
        if not isinstance(candles, list):
            raise BrokerRejected(
                f"OANDA GET {path}: body lacks a 'candles' list (keys: {sorted(body)[:10]})"
            )
        for name, wanted in (("instrument", instrument), ("granularity", granularity)):
            if body.get(name, wanted) != wanted:
                raise BrokerRejected(
                    f"OANDA GET {path}: answered {name} "
                    f"{self._redact(repr(body.get(name))[:60])}, asked {wanted}"
                )
        return body

    # -- transport, retries and error mapping ------------------------------------------------

    def _get_json(self, path: str, params: Mapping[str, str] | None) -> JsonObject:
        problem = ""
        for attempt in range(1, self._retry.max_attempts + 1):
            try:
                return self._attempt(path, params)
            except _Transient as exc:
                problem = exc.problem
                if attempt == self._retry.max_attempts:
                    break
                delay = self._retry.backoff_s(attempt, self._rng)
                if exc.retry_after_s is not None:
                    if exc.retry_after_s > self._retry.max_retry_after_s:
                        problem += (
                            f"; Retry-After {exc.retry_after_s:g}s exceeds the "
                            f"{self._retry.max_retry_after_s:g}s limit"
                        )
                        break
                    delay = exc.retry_after_s
                self.retries += 1
                _log.warning(
                    "oanda_request_retried",
                    path=path,
                    attempt=attempt,
                    problem=problem,
                    delay_s=round(delay, 3),
                )
                self._sleep(delay)
        raise BrokerUnavailable(
            f"OANDA GET {path} failed after {attempt} attempt(s): {problem}; "
            "skip this cycle and retry later"
        )

    def _attempt(self, path: str, params: Mapping[str, str] | None) -> JsonObject:
        self.requests += 1
        try:
            response, content = self._fetch(path, params)
        except httpx.TimeoutException as exc:
            raise _Transient(f"timeout ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            # Connection refused/reset and bodies cut short (RemoteProtocolError) land here.
            raise _Transient(f"{type(exc).__name__}: {self._redact(str(exc))}") from exc
        status = response.status_code
        if status in _RETRY_STATUSES:
            retry_after = _retry_after_s(response) if status == 429 else None
            raise _Transient(f"HTTP {status}{self._detail(content)}", retry_after_s=retry_after)
        if status != 200:
            hint = " (check OANDA_TOKEN and the account id)" if status in (401, 403) else ""
            raise BrokerRejected(f"OANDA GET {path}: HTTP {status}{self._detail(content)}{hint}")
        try:
            body = json.loads(content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Transient(f"body is not JSON ({len(content)} bytes, truncated?)") from exc
        if not isinstance(body, dict):
            raise BrokerRejected(f"OANDA GET {path}: body is {type(body).__name__}, not object")
        return body

    def _fetch(self, path: str, params: Mapping[str, str] | None) -> tuple[httpx.Response, bytes]:
        """The response and its whole body, within ``deadline_s`` from the first byte sent."""
        started = time.monotonic()
        chunks: list[bytes] = []
        with self._http.stream("GET", path, params=dict(params) if params else None) as response:
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                if time.monotonic() - started > self._deadline_s:
                    raise _Transient(
                        f"deadline: the response took over {self._deadline_s:g}s "
                        f"({sum(map(len, chunks))} bytes so far)"
                    )
        return response, b"".join(chunks)

    def _detail(self, content: bytes) -> str:
        """`` errorCode: errorMessage`` from a v20 error body, redacted and shortened."""
        try:
            body = json.loads(content)
        except (ValueError, UnicodeDecodeError):
            return ""
        if not isinstance(body, dict):
            return ""
        parts = [str(body[k]) for k in ("errorCode", "errorMessage") if body.get(k)]
        return (": " + self._redact(": ".join(parts))[:300]) if parts else ""

    def _redact(self, text: str) -> str:
        # A proxy or a broker error may echo the Authorization header back at us.
        # Fragments too: a body cut short (or a field quoted to a limit) keeps a prefix.
        return redact_secret(text, self._token)


def _rfc3339(at: datetime) -> str:
    """UTC with nanoseconds, as v20 writes its own times (``2025-01-02T03:04:05.000000000Z``)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ConfigError(f"candle times must be UTC-aware, got naive {at.isoformat()!r}")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def _account(account_id: str) -> str:
    if not _ACCOUNT_RE.match(account_id):
        raise ConfigError(
            f"OANDA account id must look like 001-009-1234567-001, got {account_id!r}"
        )
    return account_id


def _retry_after_s(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds; the HTTP-date form falls back to backoff (needs a clock)."""
    raw = response.headers.get("Retry-After", "").strip()
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None
