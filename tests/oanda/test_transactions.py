"""The pure mapping from v20 transactions to Trade rows: numbers, states, junk, order, openings."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autolearn.core.model import Side, TradeState
from autolearn.oanda.openings import Opening, dump_openings, load_openings, opening_from_trade
from autolearn.oanda.tags import ClientTags
from autolearn.oanda.transactions import map_transactions, missing_openings


def _by_key(result):
    return {(t.broker_trade_id, t.close_tx_id): t for t in result.trades}


class TestPartialThenFinalClose:
    def test_hand_checked_rows(self, partial):
        """Reduce 400 @+3.0 pips then close 600 @-2.0 pips; a 2-trade closeout; tags applied."""
        result = map_transactions(partial["transactions"], {})
        rows = _by_key(result)
        assert result.rejected == ()
        m_close, closeout, cfg = (
            "MARKET_ORDER_TRADE_CLOSE",
            "MARKET_ORDER_MARGIN_CLOSEOUT",
            "2025-10-23.1",
        )
        partial_, closed = TradeState.PARTIAL, TradeState.CLOSED
        expected = {
            # key: (state, side, units, entry, close, pips, pl, reason, pocket, strategy, cfg)
            ("9001", "9008"): (partial_, Side.LONG, 400, 152.400, 152.430, 3.0, 12.0,
                               m_close, "micro", "MicroVWAPRevert", cfg),
            ("9001", "9012"): (closed, Side.LONG, 600, 152.400, 152.380, -2.0, -12.0,
                               "STOP_LOSS_ORDER", "micro", "MicroVWAPRevert", cfg),
            ("9003", "9010"): (closed, Side.SHORT, 300, 152.450, 152.520, -7.0, -21.0,
                               closeout, "scalp_fast", "fast_scalp", ""),
            ("9005", "9010"): (closed, Side.SHORT, 200, 152.470, 152.520, -5.0, -10.0,
                               closeout, "manual", "unknown", ""),
        }  # fmt: skip
        assert set(rows) == set(expected)
        for key, want in expected.items():
            t = rows[key]
            got = (t.state, t.side, t.units, t.entry_price, t.close_price, t.pl_pips,
                   t.pl_account, t.broker_close_reason, t.pocket, t.strategy,
                   t.config_version)  # fmt: skip
            assert got[:5] == want[:5] and got[7:] == want[7:], key
            assert got[5] == pytest.approx(want[5], abs=1e-9)
            assert got[6] == pytest.approx(want[6], abs=1e-9)

    def test_financing_is_not_added_to_realized_pl(self, partial):
        """The final close carries financing -0.03, but pl_account is realizedPL alone."""
        rows = _by_key(map_transactions(partial["transactions"], {}))
        assert rows[("9001", "9012")].pl_account == -12.0

    def test_times_keep_microseconds_and_utc(self, partial):
        """Entry/close times come from the fills, nanoseconds truncated, UTC-aware."""
        t = _by_key(map_transactions(partial["transactions"], {}))[("9001", "9012")]
        assert t.entry_at == datetime(2025, 10, 23, 2, 30, 37, 368381, tzinfo=UTC)
        assert t.close_at == datetime(2025, 10, 23, 2, 59, 3, 351566, tzinfo=UTC)
        assert t.client_order_id == "al-1761186637368-micro-MicroVWAPRevert"

    def test_fully_closed_openings_are_forgotten_partial_ones_kept(self, partial):
        """After a partial reduce the opening is kept; after the full close it is dropped."""
        txs = partial["transactions"]
        upto_reduce = [t for t in txs if int(t["id"]) <= 9008]
        assert "9001" in map_transactions(upto_reduce, {}).openings
        assert map_transactions(txs, {}).openings == {}

    def test_non_fill_transactions_are_ignored_not_rejected(self, partial):
        """MARKET_ORDER and DAILY_FINANCING produce no rows and no rejections."""
        result = map_transactions(partial["transactions"], {})
        assert result.ignored == 2 and result.processed == 8


class TestRealSession:
    def test_rows_match_quantrabbits_own_ledger(self, session):
        """Each of the 14 real trades maps to QuantRabbit's trades.db row (pocket, pips, P/L)."""
        rows = _by_key(map_transactions(session["transactions"], {}))
        assert len(rows) == len(session["expected"]) == 14
        for want in session["expected"]:
            t = rows[(want["broker_trade_id"], want["close_tx_id"])]
            assert t.pocket == want["pocket"]
            assert t.side is (Side.LONG if want["units_signed"] > 0 else Side.SHORT)
            assert t.units == abs(want["units_signed"])
            assert (t.entry_price, t.close_price) == (want["entry_price"], want["close_price"])
            assert t.pl_pips == pytest.approx(want["pl_pips"], abs=1e-6)
            assert t.pl_account == pytest.approx(want["realized_pl"], abs=1e-9)
            assert t.broker_close_reason == want["close_reason"]
            assert t.entry_at == datetime.fromisoformat(want["entry_time"])
            assert t.close_at == datetime.fromisoformat(want["close_time"])
            assert t.state is TradeState.CLOSED and t.source == "oanda"

    def test_strategy_comes_from_the_quantrabbit_client_id(self, session):
        """qr-<ms>-<worker>-<strategy> ids give the strategy segment."""
        rows = _by_key(map_transactions(session["transactions"], {}))
        assert rows[("4419", "4443")].strategy == "TrendMAbe"
        assert rows[("4427", "4634")].strategy == "BBRSIlong"


class TestOrderAndDuplicates:
    @given(seed=st.integers(0, 2**32 - 1), dup=st.integers(0, 20))
    @settings(
        max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    def test_shuffled_and_duplicated_pages_give_the_same_rows(self, session, seed, dup):
        """Any permutation of the log with repeated transactions maps to the same rows."""
        rng = random.Random(seed)
        txs = copy.deepcopy(session["transactions"])
        txs += [copy.deepcopy(rng.choice(txs)) for _ in range(dup)]
        rng.shuffle(txs)
        baseline = map_transactions(session["transactions"], {})
        result = map_transactions(txs, {})
        assert result.trades == baseline.trades
        assert result.duplicates == dup and result.rejected == ()

    def test_ids_at_or_below_the_cursor_are_skipped(self, session):
        """Transactions at or below after_id were processed before and are counted duplicates."""
        result = map_transactions(session["transactions"], {}, after_id="4443")
        assert all(int(t.close_tx_id) > 4443 for t in result.trades)
        assert result.duplicates == sum(int(t["id"]) <= 4443 for t in session["transactions"])

    def test_last_id_is_the_highest_id_including_rejected(self, partial):
        """The cursor moves to the highest id in the page, even when that one is rejected."""
        txs = copy.deepcopy(partial["transactions"])
        txs[-1]["time"] = "2025-10-23T02:59:03"  # naive: rejected
        result = map_transactions(txs, {})
        assert result.last_id == "9012"
        assert [r.tx_id for r in result.rejected] == ["9012"]


class TestMalformed:
    @pytest.mark.parametrize(
        ("mutate", "reason"),
        [
            (lambda tx: tx.pop("time"), "time: expected an RFC 3339 string"),
            (lambda tx: tx.update(time="2025-10-23T02:59:03.351566"), "naive timestamp"),
            (
                lambda tx: tx["tradesClosed"][0].update(price="152.3x0"),
                "tradesClosed[0].price: not a decimal",
            ),
            (lambda tx: tx["tradesClosed"][0].update(price="NaN"), "not finite"),
            (lambda tx: tx["tradesClosed"][0].update(price=152.38), "expected a decimal string"),
            (lambda tx: tx["tradesClosed"][0].pop("realizedPL"), "realizedPL: expected a decimal"),
            (lambda tx: tx["tradesClosed"][0].update(units="-600.5"), "whole number"),
            (lambda tx: tx["tradesClosed"][0].update(tradeID="77"), "tradeID 77: opening unknown"),
            (lambda tx: tx["tradesClosed"][0].update(tradeID=None), "not a positive integer id"),
            (lambda tx: tx.update(instrument="EUR_USD"), "differs from the opening"),
            (lambda tx: tx.update(time="2025-10-23T01:00:00Z"), "before entry_at"),
            (lambda tx: tx.update(tradesClosed={"tradeID": "9001"}), "expected a list"),
            (lambda tx: tx.pop("type"), "type: None"),
        ],
    )
    def test_is_reported_with_id_and_reason_and_does_not_stop_the_page(
        self, partial, mutate, reason
    ):
        """A broken final close is rejected with a precise reason; every other row still maps."""
        txs = copy.deepcopy(partial["transactions"])
        mutate(txs[-1])
        result = map_transactions(txs, {})
        (rejected,) = result.rejected
        assert rejected.tx_id == "9012" and reason in rejected.reason
        assert len(result.trades) == 3 and result.last_id == "9012"

    def test_rejected_transaction_leaves_openings_untouched(self, partial):
        """A rejected close does not forget its opening (all or nothing per transaction)."""
        txs = copy.deepcopy(partial["transactions"])
        txs[-1]["tradesClosed"][0]["price"] = "bad"
        assert "9001" in map_transactions(txs, {}).openings

    def test_non_objects_and_bad_ids_are_rejected_by_position(self):
        """Items that are not objects or have no usable id are reported by list position."""
        result = map_transactions(["x", {"id": "-3", "type": "ORDER_FILL"}, None], {})
        assert [r.tx_id for r in result.rejected] == ["#0", "#1", "#2"]
        assert result.last_id is None

    def test_lookup_failure_is_quoted_in_the_reason(self, partial):
        """When GET trades/{id} failed, the rejected close says why."""
        close = partial["transactions"][-1]
        result = map_transactions([close], {}, lookup_failures={"9001": "GET trades/9001: 404"})
        assert "opening unknown (GET trades/9001: 404)" in result.rejected[0].reason


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


def _mostly(valid, junk=_JSONISH):
    """Valid values most of the time, so generated fills reach the deep mapping paths."""
    return st.integers(0, 9).flatmap(lambda i: junk if i == 0 else valid)


_BAD_NUMBER = st.one_of(
    st.sampled_from(["NaN", "Infinity", "-0", "1e999999", "9" * 30, "", " 1 ", "1e-999999", "1.5"]),
    _JSONISH,
)
_UNITS = _mostly(st.from_regex(r"-?[1-9][0-9]{0,3}", fullmatch=True), _BAD_NUMBER)
_PRICE = _mostly(st.from_regex(r"[1-9][0-9]{0,2}\.[0-9]{1,3}", fullmatch=True), _BAD_NUMBER)
_TRADE_ID = _mostly(st.sampled_from(["1", "2", "3"]))
_REDUCE = st.fixed_dictionaries(
    {"tradeID": _TRADE_ID, "units": _UNITS, "price": _PRICE, "realizedPL": _PRICE},
    optional={"financing": _PRICE, "clientExtensions": _JSONISH},
)
_TIME = _mostly(
    st.sampled_from(
        ["2025-10-23T02:30:37.368381123Z", "2025-10-23T03:00:00Z", "2025-10-23T02:00:00+09:00"]
    ),
    st.one_of(
        st.sampled_from(
            [
                "2025-10-23T02:30:37",
                "9999-12-31T23:59:59-23:59",
                "0001-01-01T00:00:00+23:59",
                "2025-13-45T99:00:00Z",
            ]
        ),
        _JSONISH,
    ),
)
_FILL = st.fixed_dictionaries(
    {
        "id": _mostly(st.integers(1, 30).map(str), st.one_of(st.integers(-2, 30), _JSONISH)),
        "type": _mostly(st.just("ORDER_FILL"), st.sampled_from(["MARKET_ORDER", ""])),
        "time": _TIME,
        "instrument": _mostly(st.just("USD_JPY")),
    },
    optional={"reason": _JSONISH, "clientOrderID": _JSONISH},
).flatmap(
    # Each fill either opens, closes (several), reduces, or carries junk in those fields.
    lambda base: st.one_of(
        st.fixed_dictionaries({"tradeOpened": _mostly(_REDUCE)}),
        st.fixed_dictionaries({"tradesClosed": _mostly(st.lists(_mostly(_REDUCE), max_size=3))}),
        st.fixed_dictionaries({"tradeReduced": _mostly(_REDUCE)}),
        st.dictionaries(st.sampled_from(["tradeOpened", "tradesClosed", "tradeReduced"]), _JSONISH),
    ).map(lambda extra: {**base, **extra})
)


@given(raw=st.lists(st.one_of(_FILL, _JSONISH), max_size=12))
@settings(max_examples=300, deadline=None)
def test_junk_never_raises_and_every_item_is_accounted_for(raw):
    """Arbitrary junk transactions never raise out of the mapper; each lands somewhere."""
    result = map_transactions(raw, {})
    missing_openings(raw, {})
    assert result.processed + len([r for r in result.rejected if r.tx_id.startswith("#")]) + (
        result.duplicates
    ) == len(raw)
    for trade in result.trades:
        assert trade.units > 0 and trade.close_at >= trade.entry_at


class TestOpenings:
    def test_missing_openings_lists_closes_opened_before_the_page(self, session):
        """Closes whose opening precedes the cursor are exactly the ones needing GET trades."""
        need = missing_openings(session["transactions"], {}, after_id="4430")
        assert need == ["4419", "4427"]

    def test_opening_from_a_v20_trade_object(self):
        """GET trades/{id} fields (price, openTime, initialUnits, extensions) make an Opening."""
        opening = opening_from_trade(
            {
                "id": "4419",
                "instrument": "USD_JPY",
                "price": "151.652",
                "openTime": "2025-10-22T08:54:26.374512137Z",
                "initialUnits": "-500",
                "clientExtensions": {
                    "id": "qr-1761123266218-macro-TrendMAbe",
                    "tag": "pocket=macro",
                },
            }
        )
        assert opening.side is Side.SHORT and opening.price == Decimal("151.652")
        assert opening.tags.pocket == "macro" and opening.tags.strategy == "TrendMAbe"

    @given(
        units=st.integers(-(10**9), 10**9).filter(bool),
        price=st.decimals(min_value=Decimal("0.001"), max_value=Decimal("99999"), places=5),
        pocket=st.sampled_from(["macro", "manual"]),
        strategy=st.text(min_size=1, max_size=20),
        micros=st.integers(0, 10**15),
    )
    def test_openings_cursor_round_trips(self, units, price, pocket, strategy, micros):
        """dump_openings then load_openings gives back the same openings, exactly."""
        opening = Opening(
            trade_id="42",
            instrument="USD_JPY",
            price=price,
            opened_at=datetime.fromtimestamp(micros / 1e6, tz=UTC).replace(
                microsecond=micros % 10**6
            ),
            units=units,
            tags=ClientTags(
                pocket=pocket, strategy=strategy, config_version="c;1", client_order_id="x=y"
            ),
        )
        loaded, problems = load_openings(dump_openings({"42": opening}))
        assert problems == [] and loaded == {"42": opening}

    @pytest.mark.parametrize("text", ["{", "[]", '{"5": 3}', '{"5": {"price": "x"}}'])
    def test_a_corrupt_openings_cursor_is_dropped_with_a_note(self, text):
        """A damaged cursor is never fatal: openings are re-fetched and the problem is noted."""
        loaded, problems = load_openings(text)
        assert loaded == {} and problems
