"""A hostile v20 feed: trickled bodies, poison ids, the token echoed back (issue 13)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from autolearn.adapters import logs
from autolearn.errors import BrokerRejected, BrokerUnavailable
from autolearn.oanda._fields import show
from autolearn.oanda.client import RetryPolicy, V20Client
from autolearn.oanda.transactions import ingest_transactions, last_tx_cursor

from .conftest import ACCOUNT, TOKEN, MemorySink

NOW = datetime(2025, 10, 23, 3, 0, tzinfo=UTC)
# A realistic v20 token: 32 hex, dash, 32 hex.
LONG_TOKEN = "0f3c9a1e7d2b4c58a9e1b77c01234567-89abcdef0123456789abcdef01234567"


class _Trickle(httpx.SyncByteStream):
    """A body sent one byte per ``pause_s`` (no read ever waits long enough to time out)."""

    def __init__(self, body: bytes, pause_s: float) -> None:
        self.body = body
        self.pause_s = pause_s

    def __iter__(self) -> Iterator[bytes]:
        for i in range(len(self.body)):
            time.sleep(self.pause_s)
            yield self.body[i : i + 1]


def _client(handler: httpx.MockTransport, **kw: object) -> V20Client:
    return V20Client(
        token=TOKEN,
        base_url="http://v20.test",
        transport=handler,
        retry=RetryPolicy(max_attempts=1),
        sleep=lambda _s: None,
        **kw,  # type: ignore[arg-type]
    )


def _fragments(text: str, secret: str, k: int = logs.FRAGMENT_CHARS) -> list[str]:
    return [secret[i : i + k] for i in range(len(secret) - k + 1) if secret[i : i + k] in text]


class TestDeadline:
    def test_trickled_body_hits_the_total_deadline(self) -> None:
        """A body at one byte per 50 ms stops at the 0.5 s deadline, not after 2+ s."""
        body = json.dumps({"transactions": [], "lastTransactionID": "1"}).encode()
        transport = httpx.MockTransport(
            lambda request: httpx.Response(200, stream=_Trickle(body, 0.05))
        )
        client = _client(transport, timeout_s=10.0, deadline_s=0.5)
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match="deadline") as caught:
            client.transactions_since(ACCOUNT, "0")
        assert time.monotonic() - started < 1.5
        assert caught.value.exit_code == 75


class TestCursor:
    def test_cursor_moves_past_a_page_of_malformed_ids(self) -> None:
        """The only new transaction has a malformed id: reported once, then passed for good."""
        page = {"transactions": [{"id": "12x", "type": "ORDER_FILL"}], "lastTransactionID": "12"}
        requests: list[str] = []

        def handler(request: httpx.Request) -> httpx.Response:
            requests.append(request.url.params["id"])
            since = int(request.url.params["id"])
            body = page if since < 12 else {"transactions": [], "lastTransactionID": "12"}
            return httpx.Response(200, json=body)

        sink = MemorySink()
        sink.set_cursor(last_tx_cursor(ACCOUNT), "11")
        first = ingest_transactions(_client(httpx.MockTransport(handler)), ACCOUNT, sink, now=NOW)
        assert len(first.rejected) == 1
        assert sink.cursors[last_tx_cursor(ACCOUNT)] == "12"
        again = ingest_transactions(_client(httpx.MockTransport(handler)), ACCOUNT, sink, now=NOW)
        assert again.rejected == () and requests[-1] == "12"


class TestTokenRedaction:
    @pytest.fixture(autouse=True)
    def _secret(self) -> Iterator[None]:
        logs.register_secret(LONG_TOKEN)
        yield
        logs._SECRETS.discard(LONG_TOKEN)

    @pytest.mark.parametrize(
        "text",
        [
            LONG_TOKEN,
            LONG_TOKEN[:56],
            "id " + LONG_TOKEN[:57] + "...",
            LONG_TOKEN[10:40] + " and " + LONG_TOKEN[-20:],
            json.dumps({"reason": f"time: {LONG_TOKEN[:30]}"}),
        ],
    )
    def test_whole_and_truncated_forms_are_redacted(self, text: str) -> None:
        """The token, any 12+ character piece of it, anywhere in a line, becomes ***."""
        out = logs.redact(text)
        assert _fragments(out, LONG_TOKEN) == [] and "***" in out

    def test_field_values_are_quoted_short(self) -> None:
        """A rejected field value is quoted at most 24 characters (with its length)."""
        quoted = show(LONG_TOKEN)
        assert len(quoted) < 40 and f"({len(repr(LONG_TOKEN))} chars)" in quoted

    def test_ingest_report_keeps_no_token_piece(self) -> None:
        """A page with the token in `id` and in `time`: the report and log lines hide it."""
        fill = {"id": "13", "type": "ORDER_FILL", "time": LONG_TOKEN, "instrument": "USD_JPY"}
        page = {
            "transactions": [{"id": LONG_TOKEN, "type": "ORDER_FILL"}, fill],
            "lastTransactionID": "13",
        }
        transport = httpx.MockTransport(lambda request: httpx.Response(200, json=page))
        client = V20Client(
            token=LONG_TOKEN,
            base_url="http://v20.test",
            transport=transport,
            retry=RetryPolicy(max_attempts=1),
        )
        report = ingest_transactions(client, ACCOUNT, MemorySink(), now=NOW, max_pages=1)
        assert len(report.rejected) == 2
        assert _fragments(logs.redact(report.format()), LONG_TOKEN) == []

    def test_403_body_with_a_partial_token_is_redacted(self) -> None:
        """A 403 body quoting part of the token does not reach the error message."""
        body = {"errorMessage": f"bad token {LONG_TOKEN[:50]}"}
        transport = httpx.MockTransport(lambda request: httpx.Response(403, json=body))
        client = V20Client(
            token=LONG_TOKEN,
            base_url="http://v20.test",
            transport=transport,
            retry=RetryPolicy(max_attempts=1),
        )
        with pytest.raises(BrokerRejected) as caught:
            client.transactions_since(ACCOUNT, "0")
        assert _fragments(str(caught.value), LONG_TOKEN) == []
