"""Re-entry price distance per instrument (issue 19 item 2): a USD_JPY entry was held against the
strategy's last EUR_USD close (150.00 vs 1.0850: "1.8 pips below the close" never true)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn import testing
from autolearn.core.model import Side, Trade
from autolearn.gates import Gates
from autolearn.gates.aggregates import Aggregates
from autolearn.gates.config import load_gates_config
from autolearn.ledger import CommittedTrade
from autolearn.ledger.sql import SqlLedger

T0 = datetime(2025, 10, 20, 3, 0, tzinfo=UTC)  # 12:00 JST
NOW = T0 + timedelta(minutes=10)  # past the 60 s win cooldown, inside the 4 h distance age


def _usd_jpy_win(close_at: datetime, close: float = 150.00) -> Trade:
    return testing.make_trade(
        close_at=close_at, pl_pips=2.0, entry_price=close - 0.02, close_price=close
    )


def _eur_usd_win(close_at: datetime, close: float = 1.0850) -> Trade:
    return testing.make_trade(
        close_at=close_at,
        pl_pips=2.0,
        instrument="EUR_USD",
        entry_price=close - 0.0002,
        close_price=close,
        pl_account=0.2,
    )


def _gates(tmp_path: Path, trades: list[Trade]) -> Gates:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with SqlLedger.open(url) as ledger:
        ledger.upsert_trades(trades)
    return Gates(ledger=SqlLedger.open(url), config=load_gates_config())


def _check(gates: Gates, price: float, **kw: Any) -> tuple[bool, tuple[str, ...]]:
    v = gates.check_entry("MomentumPulse", "micro", Side.LONG, price, NOW, **kw)
    return v.allowed, v.blocking_codes


def test_a_eur_usd_close_does_not_hold_a_usd_jpy_entry(tmp_path: Path) -> None:
    """The strategy's only close is a EUR_USD win: a USD_JPY entry naming its instrument has
    no close to measure from (allowed); omitted, the old cross-instrument comparison blocks."""
    gates = _gates(tmp_path, [_eur_usd_win(T0)])
    try:
        assert _check(gates, 150.00, instrument="USD_JPY") == (True, ())
        assert _check(gates, 150.00) == (False, ("price_distance",))
        # the EUR_USD close still applies to a EUR_USD entry: 1.8 pips below it is needed
        assert _check(gates, 1.0850, instrument="EUR_USD") == (False, ("price_distance",))
        assert _check(gates, 1.0840, instrument="EUR_USD") == (True, ())
    finally:
        gates.close()


def test_each_instrument_measures_from_its_own_last_close(tmp_path: Path) -> None:
    """A USD_JPY close at 150.00 and a later EUR_USD close: a USD_JPY entry is measured from
    150.00 (at 150.00 blocked, 3 pips below allowed) although the EUR_USD close is newer."""
    gates = _gates(tmp_path, [_usd_jpy_win(T0), _eur_usd_win(T0 + timedelta(minutes=1))])
    try:
        assert _check(gates, 150.00, instrument="USD_JPY") == (False, ("price_distance",))
        assert _check(gates, 149.97, instrument="USD_JPY") == (True, ())
        # omitted: the newest close in any instrument (EUR_USD's), 149.97 is far above it
        assert _check(gates, 149.97) == (False, ("price_distance",))
        key = ("MomentumPulse", Side.LONG)
        assert gates.aggregates.latest_close(*key, "USD_JPY").close_price == 150.00  # type: ignore[union-attr]
        assert gates.aggregates.latest_close(*key).instrument == "EUR_USD"  # type: ignore[union-attr]
        assert gates.aggregates.latest_close(*key, "GBP_USD") is None
    finally:
        gates.close()


def test_a_corrected_close_falls_back_to_the_same_instruments_previous(tmp_path: Path) -> None:
    """A later version of the newest USD_JPY close moves it out of the way (re-dated into the
    past): the last USD_JPY close is the previous USD_JPY one, never the EUR_USD one."""
    aggregates = Aggregates(load_gates_config())
    older = _usd_jpy_win(T0, close=150.00)
    newest = _usd_jpy_win(T0 + timedelta(minutes=2), close=150.50)
    eur = _eur_usd_win(T0 + timedelta(minutes=3))
    aggregates.ingest_committed(
        [CommittedTrade(1, older), CommittedTrade(2, newest), CommittedTrade(3, eur)]
    )
    key = ("MomentumPulse", Side.LONG)
    assert aggregates.latest_close(*key, "USD_JPY").close_price == 150.50  # type: ignore[union-attr]
    moved = replace(newest, close_at=T0 - timedelta(minutes=1), entry_at=T0 - timedelta(minutes=6))
    aggregates.ingest_committed([CommittedTrade(4, moved)])
    assert aggregates.latest_close(*key, "USD_JPY").close_price == 150.00  # type: ignore[union-attr]
    assert aggregates.latest_close(*key, "EUR_USD").close_price == 1.0850  # type: ignore[union-attr]


_INSTRUMENTS = {"USD_JPY": 150.0, "EUR_USD": 1.085, "GBP_USD": 1.27}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(sorted(_INSTRUMENTS)),
            st.integers(0, 600),
            st.sampled_from([Side.LONG, Side.SHORT]),
        ),
        min_size=1,
        max_size=15,
    )
)
def test_latest_close_is_the_newest_of_that_instrument(
    rows: list[tuple[str, int, Side]],
) -> None:
    """For any trades: the last close per (strategy, side, instrument) is the newest of that
    instrument in the ledger order; without an instrument, the newest in any."""
    trades = [
        testing.make_trade(
            close_at=T0 + timedelta(seconds=s),
            pl_pips=1.0,
            instrument=inst,
            side=side,
            entry_price=_INSTRUMENTS[inst],
            close_price=_INSTRUMENTS[inst] + s * 1e-5,
        )
        for inst, s, side in rows
    ]
    aggregates = Aggregates(load_gates_config())
    aggregates.ingest_committed([CommittedTrade(n, t) for n, t in enumerate(trades, start=1)])

    def order(t: Trade) -> tuple[datetime, str, str]:
        return (t.close_at, t.broker_trade_id, t.close_tx_id)

    for side in Side:
        for inst in _INSTRUMENTS:
            mine = [t for t in trades if t.side is side and t.instrument == inst]
            found = aggregates.latest_close("MomentumPulse", side, inst)
            if not mine:
                assert found is None
            else:
                newest = max(mine, key=order)
                assert found is not None
                assert (found.close_at, found.close_price) == (newest.close_at, newest.close_price)
        anywhere = [t for t in trades if t.side is side]
        found = aggregates.latest_close("MomentumPulse", side)
        if anywhere:
            newest = max(anywhere, key=order)
            assert found is not None and found.instrument == newest.instrument
            assert found.close_price == newest.close_price
        else:
            assert found is None
