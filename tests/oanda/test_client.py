"""V20Client against a real local v20-speaking HTTP server: paging, retries, errors, secrecy."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from autolearn.errors import BrokerRejected, BrokerUnavailable, ConfigError
from autolearn.oanda.client import LIVE_URL, PRACTICE_URL, RetryPolicy, V20Client
from autolearn.testing.oanda_v20 import Fault


def _ids(page: Any) -> list[str]:
    return [t["id"] for t in page.transactions]


class TestTransactionsSince:
    def test_returns_only_newer_transactions_and_the_account_last_id(
        self, serve, make_client, session, account_id
    ):
        """sinceid answers ids strictly above N plus the account's newest transaction id."""
        server = serve(session["transactions"])
        page = make_client(server).transactions_since(account_id, "4443")
        assert page.transactions and all(int(i) > 4443 for i in _ids(page))
        assert page.last_transaction_id == session["transactions"][-1]["id"]

    def test_pages_are_capped_like_oanda(self, serve, make_client, session, account_id):
        """A page holds at most page_size transactions, so callers must loop."""
        server = serve(session["transactions"], page_size=7)
        page = make_client(server).transactions_since(account_id, "0")
        assert len(page.transactions) == 7
        assert int(_ids(page)[-1]) < int(page.last_transaction_id)

    def test_sends_bearer_token_and_rfc3339_header(self, serve, make_client, account_id):
        """Every request is authorised and asks for the id it was given."""
        server = serve([])
        make_client(server).transactions_since(account_id, "12")
        (request,) = server.requests
        assert request.authorized and request.query == {"id": "12"}

    def test_rejects_a_non_numeric_cursor_before_any_request(self, serve, make_client, account_id):
        """A garbage since-id is a config error, not a request."""
        server = serve([])
        with pytest.raises(ConfigError, match="transaction id"):
            make_client(server).transactions_since(account_id, "12;drop")
        assert server.requests == []

    def test_well_formed_json_of_the_wrong_shape_is_rejected(self, serve, make_client, account_id):
        """A 200 without 'transactions' is a permanent error: retrying will not change it."""
        server = serve([])
        server.script(Fault.http(200, {"unexpected": []}))
        with pytest.raises(BrokerRejected, match="transactions"):
            make_client(server).transactions_since(account_id, "0")
        assert len(server.requests) == 1


class TestRetries:
    def test_429_honours_retry_after_then_succeeds(self, serve, make_client, sleeps, account_id):
        """A 429 with Retry-After: 3 waits exactly 3 s and the retry succeeds."""
        server = serve([])
        server.script(Fault.http(429, {"errorMessage": "Too many"}, {"Retry-After": "3"}))
        client = make_client(server)
        page = client.transactions_since(account_id, "0")
        assert page.last_transaction_id == "0"
        assert sleeps.delays == [3.0]
        assert client.retries == 1 and len(server.requests) == 2

    def test_429_without_retry_after_uses_backoff(self, serve, make_client, sleeps, account_id):
        """Without Retry-After the first backoff is within [base/2, base]."""
        server = serve([])
        server.script(Fault.http(429))
        make_client(server).transactions_since(account_id, "0")
        (delay,) = sleeps.delays
        assert 0.25 <= delay <= 0.5

    def test_retry_after_beyond_the_limit_gives_up_at_once(
        self, serve, make_client, sleeps, account_id
    ):
        """A Retry-After of an hour ends the cycle instead of blocking the timer."""
        server = serve([])
        server.script(Fault.http(429, headers={"Retry-After": "3600"}))
        with pytest.raises(BrokerUnavailable, match="Retry-After 3600s exceeds"):
            make_client(server).transactions_since(account_id, "0")
        assert sleeps.delays == [] and len(server.requests) == 1

    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    def test_5xx_then_success(self, serve, make_client, status, account_id):
        """A server error is transient: one retry later the page arrives."""
        server = serve([])
        server.script(Fault.http(status, {"errorMessage": "Service unavailable"}))
        client = make_client(server)
        assert client.transactions_since(account_id, "0").transactions == ()
        assert client.retries == 1

    def test_timeout_then_success(self, serve, make_client, account_id):
        """A server slower than the 0.2 s timeout is retried, and the fast retry succeeds."""
        server = serve([])
        server.script(Fault.delay(0.6))
        client = make_client(server, timeout_s=0.2)
        assert client.transactions_since(account_id, "0").last_transaction_id == "0"
        assert server.requests[0].fault == "delay" and client.retries >= 1

    def test_truncated_body_then_success(self, serve, make_client, session, account_id):
        """A body cut short of its Content-Length is retried."""
        server = serve(session["transactions"])
        server.script(Fault.truncated())
        client = make_client(server)
        assert len(client.transactions_since(account_id, "0").transactions) == 70
        assert client.retries == 1

    def test_non_json_body_then_success(self, serve, make_client, session, account_id):
        """A correctly framed but cut JSON body (a proxy hiccup) is retried."""
        server = serve(session["transactions"])
        server.script(Fault.not_json())
        client = make_client(server)
        assert len(client.transactions_since(account_id, "0").transactions) == 70

    def test_persistent_failure_ends_in_broker_unavailable(
        self, serve, make_client, sleeps, account_id
    ):
        """After max_attempts 503s the client raises BrokerUnavailable with growing backoff."""
        server = serve([])
        server.script(*[Fault.http(503)] * 4)
        with pytest.raises(BrokerUnavailable, match="after 4 attempt") as info:
            make_client(server).transactions_since(account_id, "0")
        assert "HTTP 503" in str(info.value)
        assert len(server.requests) == 4 and len(sleeps.delays) == 3
        caps = [0.5, 1.0, 2.0]
        assert all(cap / 2 <= d <= cap for d, cap in zip(sleeps.delays, caps, strict=True))

    def test_persistent_garbage_body_ends_in_broker_unavailable(
        self, serve, make_client, account_id
    ):
        """A body that never parses is transient each time and finally BrokerUnavailable."""
        server = serve([])
        server.script(*[Fault.not_json()] * 4)
        with pytest.raises(BrokerUnavailable, match="not JSON"):
            make_client(server).transactions_since(account_id, "0")

    def test_connection_refused_is_unavailable(self, serve, make_client, account_id):
        """A server that is gone is transient: BrokerUnavailable after retries."""
        server = serve([])
        client = make_client(server, retry=RetryPolicy(max_attempts=2, base_delay_s=0))
        server.stop()
        with pytest.raises(BrokerUnavailable, match="ConnectError"):
            client.transactions_since(account_id, "0")


class TestPermanentErrors:
    def test_bad_token_is_rejected_without_retry(self, serve, token, sleeps, account_id):
        """A wrong token is a 401 -> BrokerRejected on the first answer, with a fix hint."""
        server = serve([])
        client = V20Client(token=token + "x", base_url=server.base_url, sleep=sleeps)
        with pytest.raises(BrokerRejected, match=r"HTTP 401.*check OANDA_TOKEN"):
            client.transactions_since(account_id, "0")
        client.close()
        assert len(server.requests) == 1 and sleeps.delays == []

    def test_other_account_is_forbidden(self, serve, make_client):
        """An account the token does not own is a 403 -> BrokerRejected."""
        server = serve([])
        with pytest.raises(BrokerRejected, match="HTTP 403"):
            make_client(server).transactions_since("001-009-9999999-001", "0")

    @pytest.mark.parametrize("status", [400, 404])
    def test_scripted_4xx_is_rejected(self, serve, make_client, status, account_id):
        """400 and 404 are permanent and carry OANDA's errorCode/errorMessage."""
        server = serve([])
        server.script(Fault.http(status, {"errorCode": "X_Y", "errorMessage": "nope"}))
        with pytest.raises(BrokerRejected, match=f"HTTP {status}: X_Y: nope"):
            make_client(server).transactions_since(account_id, "0")

    def test_unknown_trade_is_rejected(self, serve, make_client, account_id):
        """GET trades/{id} of a trade the account never had is 404 NO_SUCH_TRADE."""
        server = serve([])
        with pytest.raises(BrokerRejected, match="NO_SUCH_TRADE"):
            make_client(server).trade(account_id, "123")


class TestTrades:
    def test_trade_by_id_and_by_client_id(self, serve, make_client, session, account_id):
        """A trade is found by TradeID and by @clientID, with its opening fields."""
        server = serve(session["transactions"])
        client = make_client(server)
        trade = client.trade(account_id, "4419")
        assert (trade["price"], trade["initialUnits"], trade["state"]) == (
            "151.652",
            "-500",
            "CLOSED",
        )
        same = client.trade(account_id, "@qr-1761123266218-macro-TrendMAbe")
        assert same["id"] == "4419"

    def test_transaction_by_id(self, serve, make_client, session, account_id):
        """GET transactions/{id}: the opening fill of a trade (its id is the TradeID), or 404."""
        server = serve(session["transactions"])
        client = make_client(server)
        fill = client.transaction(account_id, "4419")
        assert fill["type"] == "ORDER_FILL" and fill["tradeOpened"]["tradeID"] == "4419"
        with pytest.raises(BrokerRejected, match="NO_SUCH_TRANSACTION"):
            client.transaction(account_id, "999999")
        with pytest.raises(ConfigError):
            client.transaction(account_id, "../trades")

    def test_closed_trades_pages_backwards_with_before_id(
        self, serve, make_client, session, account_id
    ):
        """Iterating closed trades with count=5 visits all 14 once, newest first."""
        server = serve(session["transactions"])
        client = make_client(server)
        ids = [t["id"] for t in client.iter_closed_trades(account_id, count=5)]
        assert len(ids) == 14 == len(set(ids))
        assert ids == sorted(ids, key=int, reverse=True)
        assert [r.query.get("beforeID") for r in server.requests][:2] == [None, ids[4]]
        assert all(r.query["state"] == "CLOSED" for r in server.requests)


class TestConfiguration:
    @pytest.mark.parametrize("bad", ["", " zq81x", "zq81x\n", "zq8 1x"])
    def test_bad_tokens_are_config_errors_that_do_not_echo(self, bad):
        """An empty or whitespace-bearing token is refused and never echoed."""
        with pytest.raises(ConfigError) as info:
            V20Client(token=bad)
        if bad.strip():
            assert bad.strip() not in str(info.value)

    def test_account_id_cannot_escape_the_path(self, serve, make_client):
        """An account id with a slash is refused before any request."""
        server = serve([])
        with pytest.raises(ConfigError, match="account id"):
            make_client(server).transactions_since("001/../x", "0")
        assert server.requests == []

    def test_urls_are_the_documented_hosts(self):
        """Practice and live base URLs are OANDA's REST hosts."""
        assert PRACTICE_URL == "https://api-fxpractice.oanda.com"
        assert LIVE_URL == "https://api-fxtrade.oanda.com"


class TestSecrecy:
    @pytest.mark.parametrize(
        "faults",
        [
            [Fault.http(401, {"errorMessage": "bad token Bearer {token}"})],
            [Fault.http(503, {"errorMessage": "echo {token}"})] * 4,
            [Fault.http(429, {"errorMessage": "{token}"}, {"Retry-After": "999"})],
            [Fault.truncated()] * 4,
            [Fault.delay(0.5)] * 2,
        ],
        ids=["401-echo", "503-echo", "429-echo", "truncated", "timeout"],
    )
    def test_token_never_appears_in_errors_logs_or_reprs(
        self, serve, make_client, token, caplog, faults, account_id
    ):
        """Even when the server echoes the token, no exception, log line or repr contains it."""
        server = serve([])
        server.script(*[_with_token(f, token) for f in faults])
        client = make_client(
            server, timeout_s=0.2, retry=RetryPolicy(max_attempts=len(faults), base_delay_s=0)
        )
        caplog.set_level(logging.DEBUG)
        with structlog.testing.capture_logs() as logs, pytest.raises(Exception) as info:
            client.transactions_since(account_id, "0")
        texts = [repr(client), repr(server), caplog.text, repr(logs)]
        exc: BaseException | None = info.value
        while exc is not None:
            texts += [str(exc), repr(exc), repr(exc.args)]
            exc = exc.__cause__ or exc.__context__
        assert isinstance(info.value, BrokerRejected | BrokerUnavailable)
        assert not [t for t in texts if token in t]


def _with_token(fault: Fault, token: str) -> Fault:
    if fault.body is None:
        return fault
    body = {k: str(v).replace("{token}", token) for k, v in fault.body.items()}
    return Fault.http(fault.status, body, fault.headers)


@given(retry=st.integers(1, 40), base=st.floats(0, 10), cap=st.floats(0, 100), seed=st.integers())
def test_backoff_stays_within_half_and_full_cap(retry, base, cap, seed):
    """Backoff is never below half nor above the capped exponential delay."""
    policy = RetryPolicy(base_delay_s=base, max_delay_s=cap)
    delay = policy.backoff_s(retry, random.Random(seed))
    capped = min(cap, base * 2.0 ** (retry - 1))
    assert capped / 2 - 1e-9 <= delay <= capped + 1e-9
