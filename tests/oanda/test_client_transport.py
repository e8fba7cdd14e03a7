"""V20Client unit tests on ``httpx.MockTransport``: every answer is scripted, no socket is opened.

The real-socket server (``test_client.py``, the reliability suite) proves the httpx stack and the
timeouts; these pin the client's own rules one answer at a time: what is retried and how long it
waits, what is permanent, how bodies are checked, how pages are walked, what is sent, and that
the token never reaches an error, a log line or a repr.
"""

from __future__ import annotations

import json
import random
import types
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.errors import BrokerRejected, BrokerUnavailable, ConfigError
from autolearn.oanda import client as client_module
from autolearn.oanda.client import RetryPolicy, V20Client

TOKEN = "tok-5d1e0c7a93b24f68-SECRET-c3f9a2e1"
ACCOUNT = "001-009-0000000-002"
BASE = "https://v20.test"
SINCE = f"/v3/accounts/{ACCOUNT}/transactions/sinceid"

Answer = httpx.Response | Exception
Handler = Callable[[httpx.Request], httpx.Response]


class Script:
    """A MockTransport handler answering from a queue (the last answer repeats) and recording
    every request it saw."""

    def __init__(self, *answers: Answer | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return answer(request)


class Sleeps:
    """Stands in for time.sleep: records each backoff delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def ok(body: object) -> httpx.Response:
    return httpx.Response(200, json=body)


def page(*ids: int, last: int | None = None) -> httpx.Response:
    """A ``transactions/sinceid`` answer holding these transaction ids."""
    newest = last if last is not None else max(ids, default=0)
    return ok({"transactions": [{"id": str(i)} for i in ids], "lastTransactionID": str(newest)})


def status(code: int, body: object = None, headers: dict[str, str] | None = None) -> httpx.Response:
    if body is None:
        return httpx.Response(code, headers=headers)
    return httpx.Response(code, json=body, headers=headers)


@pytest.fixture(name="sleeps")
def fixture_sleeps() -> Sleeps:
    """The backoff delays the client asked for, in order."""
    return Sleeps()


@pytest.fixture(name="connect")
def fixture_connect(sleeps: Sleeps) -> Iterator[Callable[..., V20Client]]:
    """``connect(script, **kwargs)``: a V20Client whose transport is the script."""
    made: list[V20Client] = []

    def connect(script: Script, **kwargs: Any) -> V20Client:
        kwargs.setdefault("retry", RetryPolicy(max_attempts=4, base_delay_s=0.5))
        client = V20Client(
            token=TOKEN,
            base_url=BASE,
            transport=httpx.MockTransport(script),
            sleep=sleeps,
            rng=random.Random(3),
            **kwargs,
        )
        made.append(client)
        return client

    yield connect
    for client in made:
        client.close()


class TestWhatIsSent:
    def test_headers_path_and_query(self, connect: Callable[..., V20Client]) -> None:
        """A bearer token, RFC 3339 times, JSON, and the cursor as the ``id`` parameter."""
        script = Script(page(13, 14))
        result = connect(script).transactions_since(ACCOUNT, "12")
        (request,) = script.requests
        assert request.method == "GET" and request.url.path == SINCE
        assert dict(request.url.params) == {"id": "12"}
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.headers["Accept-Datetime-Format"] == "RFC3339"
        assert request.headers["Accept"] == "application/json"
        assert [t["id"] for t in result.transactions] == ["13", "14"]  # type: ignore[index]
        assert result.last_transaction_id == "14"

    def test_a_client_id_specifier_is_kept_in_the_path(
        self, connect: Callable[..., V20Client]
    ) -> None:
        """``@clientID`` reaches ``trades/@...`` unescaped; the trade object is returned."""
        script = Script(ok({"trade": {"id": "4419"}}))
        trade = connect(script).trade(ACCOUNT, "@qr-1761123266218-macro-TrendMA")
        assert trade == {"id": "4419"}
        assert (
            script.requests[0].url.path
            == f"/v3/accounts/{ACCOUNT}/trades/@qr-1761123266218-macro-TrendMA"
        )

    @pytest.mark.parametrize(
        ("call", "problem"),
        [
            (lambda c: c.transactions_since("001/../x", "0"), "account id"),
            (lambda c: c.transactions_since(ACCOUNT, "-1"), "transaction id"),
            (lambda c: c.trade(ACCOUNT, "12/../../orders"), "trade specifier"),
            (lambda c: c.transaction(ACCOUNT, "../trades"), "TransactionID"),
            (lambda c: c.closed_trades(ACCOUNT, count=501), "1..500"),
            (lambda c: c.closed_trades(ACCOUNT, before_id="x"), "before_id"),
            (lambda c: c.candles("eurusd", granularity="M1"), "instrument"),
            (lambda c: c.candles("EUR_USD", granularity="M3"), "granularity"),
            (lambda c: c.candles("EUR_USD", granularity="M1", price="BM"), "price"),
            (lambda c: c.candles("EUR_USD", granularity="M1", count=5001), "1..5000"),
            (
                lambda c: c.candles("EUR_USD", granularity="M1", from_time=datetime(2025, 1, 1)),
                "naive",
            ),
            (
                lambda c: c.candles(
                    "EUR_USD",
                    granularity="M1",
                    count=10,
                    from_time=datetime(2025, 1, 1, tzinfo=UTC),
                    to_time=datetime(2025, 1, 2, tzinfo=UTC),
                ),
                "not all three",
            ),
        ],
    )
    def test_bad_arguments_are_refused_before_any_request(
        self, connect: Callable[..., V20Client], call: Callable[[V20Client], object], problem: str
    ) -> None:
        """Anything that would change the URL's meaning is a ConfigError, nothing is sent."""
        script = Script(ok({}))
        with pytest.raises(ConfigError, match=problem):
            call(connect(script))
        assert script.requests == []

    def test_candle_query_in_v20_terms(self, connect: Callable[..., V20Client]) -> None:
        """``from`` in UTC with nanoseconds, ``includeFirst=false``, no ``count`` with a range."""
        script = Script(ok({"instrument": "EUR_USD", "granularity": "M5", "candles": []}))
        client = connect(script)
        start = datetime(2025, 1, 2, 12, 4, 5, 123456, tzinfo=timezone(timedelta(hours=9)))
        client.candles(
            "EUR_USD", granularity="M5", price="BA", count=3, from_time=start, include_first=False
        )
        client.candles(
            "EUR_USD",
            granularity="M5",
            count=None,
            from_time=start,
            to_time=start + timedelta(hours=1),
        )
        first, second = (dict(r.url.params) for r in script.requests)
        assert first == {
            "price": "BA",
            "granularity": "M5",
            "count": "3",
            "from": "2025-01-02T03:04:05.123456000Z",
            "includeFirst": "false",
        }
        assert "count" not in second and second["to"] == "2025-01-02T04:04:05.123456000Z"

    def test_a_redirect_is_not_followed(self, connect: Callable[..., V20Client]) -> None:
        """A 302 elsewhere is refused: the bearer token is never sent to another host."""
        script = Script(status(302, headers={"Location": "https://elsewhere.test/steal"}))
        with pytest.raises(BrokerRejected, match="HTTP 302"):
            connect(script).transactions_since(ACCOUNT, "0")
        assert [r.url.host for r in script.requests] == ["v20.test"]


class TestRetries:
    @pytest.mark.parametrize("code", [429, 500, 502, 503, 504])
    def test_transient_statuses_are_retried(
        self, connect: Callable[..., V20Client], sleeps: Sleeps, code: int
    ) -> None:
        """One 429/5xx, then the page: two requests, one backoff within [base/2, base]."""
        script = Script(status(code, {"errorMessage": "busy"}), page(1))
        client = connect(script)
        assert client.transactions_since(ACCOUNT, "0").last_transaction_id == "1"
        assert (client.requests, client.retries, len(script.requests)) == (2, 1, 2)
        (delay,) = sleeps.delays
        assert 0.25 <= delay <= 0.5

    def test_retry_after_is_honoured_exactly(
        self, connect: Callable[..., V20Client], sleeps: Sleeps
    ) -> None:
        """429 with ``Retry-After: 7`` waits 7 s, not the (shorter) backoff."""
        script = Script(status(429, headers={"Retry-After": "7"}), page(1))
        connect(script).transactions_since(ACCOUNT, "0")
        assert sleeps.delays == [7.0]

    @pytest.mark.parametrize(
        "value", ["Wed, 21 Oct 2015 07:28:00 GMT", "soon", "-3", "inf", "nan", ""]
    )
    def test_an_unusable_retry_after_falls_back_to_backoff(
        self, connect: Callable[..., V20Client], sleeps: Sleeps, value: str
    ) -> None:
        """The HTTP-date form (needs a clock), junk, negative or infinite: the usual backoff."""
        script = Script(status(429, headers={"Retry-After": value}), page(1))
        connect(script).transactions_since(ACCOUNT, "0")
        (delay,) = sleeps.delays
        assert 0.25 <= delay <= 0.5

    def test_retry_after_only_counts_on_429(
        self, connect: Callable[..., V20Client], sleeps: Sleeps
    ) -> None:
        """A 503 carrying Retry-After: 50 still backs off normally (only 429 is a quota)."""
        script = Script(status(503, headers={"Retry-After": "50"}), page(1))
        connect(script).transactions_since(ACCOUNT, "0")
        assert sleeps.delays[0] <= 0.5

    def test_retry_after_beyond_the_limit_ends_the_attempt(
        self, connect: Callable[..., V20Client], sleeps: Sleeps
    ) -> None:
        """Retry-After above ``max_retry_after_s`` is BrokerUnavailable at once, no sleep."""
        script = Script(status(429, headers={"Retry-After": "61"}), page(1))
        with pytest.raises(BrokerUnavailable, match="Retry-After 61s exceeds the 60s limit"):
            connect(script).transactions_since(ACCOUNT, "0")
        assert sleeps.delays == [] and len(script.requests) == 1

    def test_persistent_failure_backs_off_exponentially_then_gives_up(
        self, connect: Callable[..., V20Client], sleeps: Sleeps
    ) -> None:
        """max_attempts 503s: that many requests, doubling capped delays, BrokerUnavailable."""
        script = Script(status(503))
        client = connect(script, retry=RetryPolicy(max_attempts=5, base_delay_s=1, max_delay_s=3))
        with pytest.raises(BrokerUnavailable, match=r"after 5 attempt\(s\): HTTP 503") as info:
            client.transactions_since(ACCOUNT, "0")
        assert "skip this cycle" in str(info.value)
        assert len(script.requests) == 5 and client.retries == 4
        caps = [1.0, 2.0, 3.0, 3.0]
        assert all(c / 2 <= d <= c for d, c in zip(sleeps.delays, caps, strict=True))

    def test_a_single_attempt_policy_never_sleeps(
        self, connect: Callable[..., V20Client], sleeps: Sleeps
    ) -> None:
        """``max_attempts=1``: the first failure is final."""
        script = Script(status(500), page(1))
        with pytest.raises(BrokerUnavailable, match="after 1 attempt"):
            connect(script, retry=RetryPolicy(max_attempts=1)).transactions_since(ACCOUNT, "0")
        assert sleeps.delays == []

    @pytest.mark.parametrize(
        ("error", "problem"),
        [
            (httpx.ConnectError("connection refused"), "ConnectError: connection refused"),
            (httpx.ReadTimeout("read timed out"), r"timeout \(ReadTimeout\)"),
            (httpx.ConnectTimeout("connect timed out"), r"timeout \(ConnectTimeout\)"),
            (httpx.RemoteProtocolError("peer closed connection"), "RemoteProtocolError"),
            (httpx.ReadError("reset by peer"), "ReadError: reset by peer"),
        ],
    )
    def test_transport_errors_are_transient(
        self, connect: Callable[..., V20Client], error: Exception, problem: str
    ) -> None:
        """Connection, timeout and protocol errors are retried, then BrokerUnavailable."""
        script = Script(error)
        client = connect(script, retry=RetryPolicy(max_attempts=2, base_delay_s=0))
        with pytest.raises(BrokerUnavailable, match=problem):
            client.transactions_since(ACCOUNT, "0")
        assert len(script.requests) == 2
        recovered = Script(error, page(5))
        assert connect(recovered).transactions_since(ACCOUNT, "0").last_transaction_id == "5"

    def test_each_retry_is_logged_with_its_delay(self, connect: Callable[..., V20Client]) -> None:
        """One ``oanda_request_retried`` warning per retry: path, attempt, problem, delay."""
        script = Script(status(429, headers={"Retry-After": "2"}), status(502), page(1))
        with structlog.testing.capture_logs() as logs:
            connect(script).transactions_since(ACCOUNT, "0")
        retried = [e for e in logs if e["event"] == "oanda_request_retried"]
        assert [(e["attempt"], e["problem"]) for e in retried] == [(1, "HTTP 429"), (2, "HTTP 502")]
        assert retried[0]["delay_s"] == 2.0 and retried[0]["path"] == SINCE


@given(
    code=st.integers(300, 599).filter(lambda c: c not in {429, 500, 502, 503, 504}),
)
@settings(max_examples=40, deadline=None)
def test_every_other_non_200_status_is_permanent_on_the_first_answer(code: int) -> None:
    """Whatever the status outside 429/500/502/503/504, one request and BrokerRejected."""
    script = Script(status(code))
    sleeps = Sleeps()
    with (
        V20Client(
            token=TOKEN, base_url=BASE, transport=httpx.MockTransport(script), sleep=sleeps
        ) as client,
        pytest.raises(BrokerRejected, match=f"HTTP {code}"),
    ):
        client.transactions_since(ACCOUNT, "0")
    assert len(script.requests) == 1 and sleeps.delays == []


class TestPermanentErrors:
    @pytest.mark.parametrize("code", [401, 403])
    def test_auth_failures_carry_the_fix(
        self, connect: Callable[..., V20Client], sleeps: Sleeps, code: int
    ) -> None:
        """401/403 are BrokerRejected with OANDA's code and a hint to check the token."""
        body = {"errorCode": "INSUFFICIENT_AUTHORIZATION", "errorMessage": "denied"}
        script = Script(status(code, body))
        with pytest.raises(BrokerRejected) as info:
            connect(script).transactions_since(ACCOUNT, "0")
        assert str(info.value) == (
            f"OANDA GET {SINCE}: HTTP {code}: INSUFFICIENT_AUTHORIZATION: denied "
            "(check OANDA_TOKEN and the account id)"
        )
        assert len(script.requests) == 1 and sleeps.delays == []

    def test_404_names_oanda_error_code(self, connect: Callable[..., V20Client]) -> None:
        """A 404 (no such trade) is permanent and says why, without the token hint."""
        script = Script(status(404, {"errorCode": "NO_SUCH_TRADE", "errorMessage": "gone"}))
        with pytest.raises(BrokerRejected) as info:
            connect(script).trade(ACCOUNT, "123")
        assert str(info.value).endswith("HTTP 404: NO_SUCH_TRADE: gone")

    @pytest.mark.parametrize(
        "body", [b"<html>Bad gateway</html>", b"[1, 2]", b'{"errorCode": ""}', b"\xff\xfe"]
    )
    def test_an_error_body_that_is_not_v20_adds_no_detail(
        self, connect: Callable[..., V20Client], body: bytes
    ) -> None:
        """HTML, a list, empty fields or bytes that are not UTF-8: just the status."""
        script = Script(httpx.Response(400, content=body))
        with pytest.raises(BrokerRejected) as info:
            connect(script).transactions_since(ACCOUNT, "0")
        assert str(info.value) == f"OANDA GET {SINCE}: HTTP 400"

    def test_a_long_error_message_is_shortened(self, connect: Callable[..., V20Client]) -> None:
        """A broker message is cut to 300 characters: an error line stays one line."""
        script = Script(status(400, {"errorMessage": "x" * 5000}))
        with pytest.raises(BrokerRejected) as info:
            connect(script).transactions_since(ACCOUNT, "0")
        assert len(str(info.value)) < 400


class TestBodies:
    @pytest.mark.parametrize(
        "body",
        [b'{"transactions": [', b"", b"not json", b'{"a": 1}}', b"\xff\xfe{}"],
        ids=["cut", "empty", "text", "trailing", "not-utf8"],
    )
    def test_a_200_that_does_not_parse_is_retried(
        self, connect: Callable[..., V20Client], body: bytes
    ) -> None:
        """A body cut short or mangled (a proxy hiccup) is transient: the retry succeeds."""
        script = Script(httpx.Response(200, content=body), page(9))
        client = connect(script)
        assert client.transactions_since(ACCOUNT, "0").last_transaction_id == "9"
        assert client.retries == 1

    def test_a_body_that_never_parses_ends_unavailable(
        self, connect: Callable[..., V20Client]
    ) -> None:
        """Always garbage: BrokerUnavailable saying how many bytes came (truncated?)."""
        script = Script(httpx.Response(200, content=b'{"transactions": ['))
        with pytest.raises(BrokerUnavailable, match=r"not JSON \(18 bytes, truncated\?\)"):
            connect(script).transactions_since(ACCOUNT, "0")
        assert len(script.requests) == 4

    @pytest.mark.parametrize(
        ("call", "body", "problem"),
        [
            (lambda c: c.transactions_since(ACCOUNT, "0"), [1, 2], "body is list, not object"),
            (lambda c: c.transactions_since(ACCOUNT, "0"), "x", "body is str, not object"),
            (
                lambda c: c.transactions_since(ACCOUNT, "0"),
                {"transactions": []},
                "lastTransactionID",
            ),
            (
                lambda c: c.transactions_since(ACCOUNT, "0"),
                {"transactions": {}, "lastTransactionID": "1"},
                "'transactions' list",
            ),
            (lambda c: c.trade(ACCOUNT, "1"), {"trade": []}, "'trade' object"),
            (lambda c: c.transaction(ACCOUNT, "1"), {}, "'transaction' object"),
            (lambda c: c.closed_trades(ACCOUNT), {"trades": [{"id": "1"}, 2]}, "'trades' list"),
            (lambda c: c.candles("EUR_USD", granularity="M1"), {"candles": None}, "'candles' list"),
            (
                lambda c: c.candles("EUR_USD", granularity="M1"),
                {"instrument": "USD_JPY", "candles": []},
                "answered instrument 'USD_JPY', asked EUR_USD",
            ),
            (
                lambda c: c.candles("EUR_USD", granularity="M1"),
                {"granularity": "H1", "candles": []},
                "answered granularity 'H1', asked M1",
            ),
        ],
    )
    def test_well_formed_json_of_the_wrong_shape_is_permanent(
        self,
        connect: Callable[..., V20Client],
        call: Callable[[V20Client], object],
        body: object,
        problem: str,
    ) -> None:
        """Parsable but not what v20 sends: BrokerRejected on the first answer (no retry)."""
        script = Script(ok(body))
        with pytest.raises(BrokerRejected, match=problem):
            call(connect(script))
        assert len(script.requests) == 1

    def test_transactions_stay_raw(self, connect: Callable[..., V20Client]) -> None:
        """Junk inside the list is passed on untouched: the mapper reports it per transaction."""
        script = Script(ok({"transactions": [{"id": "1"}, "junk", None], "lastTransactionID": "3"}))
        result = connect(script).transactions_since(ACCOUNT, "0")
        assert result.transactions == ({"id": "1"}, "junk", None)

    def test_a_body_slower_than_the_deadline_is_transient(
        self, connect: Callable[..., V20Client], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A body trickled past ``deadline_s`` is cut (a fake clock: each chunk costs 4 s)."""
        clock = iter(range(0, 1000, 4))
        monkeypatch.setattr(
            client_module, "time", types.SimpleNamespace(monotonic=lambda: next(clock))
        )

        def trickle() -> Iterator[bytes]:
            yield from (b'{"transactions": [], ', b'"lastTransactionID": ', b'"1"}')

        script = Script(httpx.Response(200, content=trickle()), page(2))
        client = connect(script, timeout_s=2.0, deadline_s=6.0)
        assert client.transactions_since(ACCOUNT, "0").last_transaction_id == "2"
        assert client.retries == 1


class TestPaging:
    def _closed(self, ids: list[int]) -> httpx.Response:
        return ok({"trades": [{"id": str(i)} for i in ids]})

    def test_closed_trades_walk_back_with_the_smallest_id(
        self, connect: Callable[..., V20Client]
    ) -> None:
        """Pages of ``count``: each next ``beforeID`` is the smallest id seen; a short page ends."""
        script = Script(self._closed([9, 8, 7]), self._closed([6, 5, 4]), self._closed([3]))
        ids = [t["id"] for t in connect(script).iter_closed_trades(ACCOUNT, count=3)]
        assert ids == [str(i) for i in range(9, 2, -1)]
        params = [dict(r.url.params) for r in script.requests]
        assert [p.get("beforeID") for p in params] == [None, "7", "4"]
        assert all(p["state"] == "CLOSED" and p["count"] == "3" for p in params)

    def test_a_full_last_page_costs_one_empty_request(
        self, connect: Callable[..., V20Client]
    ) -> None:
        """A page exactly ``count`` long may not be the last: one more (empty) page says so."""
        script = Script(self._closed([4, 3]), self._closed([]))
        assert len(list(connect(script).iter_closed_trades(ACCOUNT, count=2))) == 2
        assert len(script.requests) == 2

    def test_a_server_that_does_not_move_backwards_cannot_loop_it(
        self, connect: Callable[..., V20Client]
    ) -> None:
        """The same full page again (beforeID ignored): stop instead of paging forever."""
        script = Script(self._closed([5, 4]))
        ids = [t["id"] for t in connect(script).iter_closed_trades(ACCOUNT, count=2)]
        assert ids == ["5", "4", "5", "4"] and len(script.requests) == 2

    def test_trades_without_numeric_ids_end_the_walk(
        self, connect: Callable[..., V20Client]
    ) -> None:
        """A full page with no usable id gives no cursor: yielded, then stop."""
        script = Script(ok({"trades": [{"id": "x"}, {}]}))
        assert len(list(connect(script).iter_closed_trades(ACCOUNT, count=2))) == 2
        assert len(script.requests) == 1


class TestSecrecy:
    FRAGMENT = TOKEN[3:20]  # a proxy that quoted the header to a limit

    @pytest.mark.parametrize(
        "answers",
        [
            [status(401, {"errorMessage": f"bad header Bearer {TOKEN}"})],
            [status(400, {"errorCode": TOKEN, "errorMessage": "echo"})],
            [status(503, {"errorMessage": f"upstream saw {TOKEN}"})],
            [status(404, {"errorMessage": f"no route for ...{FRAGMENT}"})],
            [status(429, {"errorMessage": TOKEN}, {"Retry-After": "999"})],
            [httpx.ConnectError(f"proxy refused Authorization: Bearer {TOKEN}")],
            [httpx.RemoteProtocolError(f"garbage after {FRAGMENT}")],
            [httpx.Response(200, content=f'{{"token": "{TOKEN}'.encode())],
        ],
        ids=["401", "400-code", "503", "404-fragment", "429", "connect", "protocol", "cut-body"],
    )
    def test_the_token_reaches_no_error_log_or_repr(
        self, connect: Callable[..., V20Client], answers: list[Answer]
    ) -> None:
        """Even echoed by the broker or a proxy, whole or in part, the token is never shown."""
        client = connect(Script(*answers), retry=RetryPolicy(max_attempts=2, base_delay_s=0))
        with (
            structlog.testing.capture_logs() as logs,
            pytest.raises((BrokerRejected, BrokerUnavailable)) as info,
        ):
            client.transactions_since(ACCOUNT, "0")
        texts = [repr(client), json.dumps(logs, default=str)]
        exc: BaseException | None = info.value
        while exc is not None:
            texts += [str(exc), repr(exc), repr(exc.args)]
            exc = exc.__cause__ or exc.__context__
        assert not [t for t in texts if self.FRAGMENT in t or TOKEN in t]

    def test_a_malformed_token_is_not_echoed(self) -> None:
        """A token with a newline is refused without quoting it (it is still a secret)."""
        with pytest.raises(ConfigError) as info:
            V20Client(token=TOKEN + "\n")
        assert TOKEN not in str(info.value)


def test_the_transport_is_the_only_network_seam() -> None:
    """With an injected transport nothing else is contacted: the handler sees the base URL."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url.copy_with(query=None)))
        return ok({"transaction": {"id": "7"}})

    with V20Client(token=TOKEN, base_url=BASE + "/", transport=httpx.MockTransport(handler)) as c:
        assert c.transaction(ACCOUNT, "7") == {"id": "7"}
    assert seen == [f"{BASE}/v3/accounts/{ACCOUNT}/transactions/7"]
