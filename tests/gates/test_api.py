"""``Gates.check_entry`` against real SQLite ledgers and state: combination, refresh, failures."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autolearn.adapters.state import StateStore
from autolearn.core.knobs import Owner
from autolearn.core.model import Side, Trade
from autolearn.errors import ConfigError
from autolearn.gates import Gates, OpenPosition, Verdict
from autolearn.gates.config import GatesConfig, LedgerErrorMode, load_gates_config
from autolearn.importers.quantrabbit import import_path
from autolearn.ledger.sql import SqlLedger
from autolearn.settings import load_registry

T0 = datetime(2025, 10, 20, 0, 0, tzinfo=UTC)
DATA = Path(__file__).resolve().parents[1] / "data" / "quantrabbit"


class Clock:
    """A hand-driven monotonic clock."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(name="paths")
def fixture_paths(tmp_path: Path) -> tuple[str, Path]:
    return f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path / "state"


def _open(paths: tuple[str, Path], clock: Callable[[], float] | None = None, **kw) -> Gates:
    url, state = paths
    return Gates.open(url, state, load_registry(None), clock=clock or Clock(), **kw)


def test_policy_knobs_block_and_size(paths: tuple[str, Path]) -> None:
    """allow_new false from the state store blocks; size_mult multiplies the verdict's size."""
    url, state = paths
    SqlLedger.open(url).close()
    store = StateStore(state, load_registry(None))
    store.apply(
        Owner.POLICY,
        {"pockets.micro.allow_new": False, "pockets.scalp.strategies.M1Scalper.size_mult": 0.5},
        T0,
    )
    gates = _open(paths)
    v = gates.check_entry("MomentumPulse", "micro", Side.LONG, 150.0, T0)
    assert not v.allowed and "policy_pocket_blocked" in v.blocking_codes
    v = gates.check_entry("M1Scalper", "scalp", "short", 150.0, T0)
    assert v.allowed and v.size_multiplier == 0.5


def test_new_trades_are_read_at_most_every_refresh_s(
    paths: tuple[str, Path], make_trade: Callable[..., Trade]
) -> None:
    """A trade written after the first check is seen once refresh_s has passed on the clock."""
    url, _ = paths
    ledger = SqlLedger.open(url)
    clock = Clock()
    gates = _open(paths, clock, refresh_s=5.0)
    now = T0 + timedelta(hours=1)
    assert gates.check_entry("S", "micro", Side.LONG, 150.0, now).allowed
    ledger.upsert_trades([make_trade(close_at=T0, pl_pips=-1.0, strategy="S", close_price=150.0)])
    clock.t = 4.0
    assert gates.check_entry("S", "micro", Side.LONG, 150.0, T0 + timedelta(seconds=10)).allowed
    clock.t = 5.0
    v = gates.check_entry("S", "micro", Side.LONG, 150.0, T0 + timedelta(seconds=10))
    assert not v.allowed and v.blocking_codes == ("cooldown",)


def test_watermark_survives_a_rebuilt_database(
    tmp_path: Path, make_trade: Callable[..., Trade]
) -> None:
    """Bug 'row-id watermark': a restored DB with new row ids neither hides nor doubles trades."""
    url = f"sqlite:///{tmp_path / 'l.db'}"
    trades = [
        make_trade(close_at=T0 + timedelta(minutes=i), pl_pips=1.0, strategy="S") for i in range(20)
    ]
    ledger = SqlLedger.open(url)
    ledger.upsert_trades(trades)
    ledger.close()
    gates = Gates.open(url, tmp_path / "s", load_registry(None), clock=Clock(), refresh_s=0.0)
    now = T0 + timedelta(hours=1)
    gates.check_entry("S", "micro", Side.LONG, 150.0, now)
    assert gates.aggregates.trades_seen == 20
    (tmp_path / "l.db").unlink()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"l.db{suffix}").unlink(missing_ok=True)
    gates.close()
    rebuilt = SqlLedger.open(url)
    new = make_trade(close_at=T0 + timedelta(minutes=30), pl_pips=-1.0, strategy="S")
    rebuilt.upsert_trades([new, *reversed(trades)])  # different row ids, same ledger order
    gates.check_entry("S", "micro", Side.LONG, 150.0, now)
    assert gates.aggregates.trades_seen == 21
    w = gates.aggregates.window("micro", "S", timedelta(days=3), now)
    assert w.stats.n == 21 and w.stats.losses == 1


def test_naive_now_is_a_verdict_not_a_crash(
    paths: tuple[str, Path], make_trade: Callable[..., Trade]
) -> None:
    """Bug 'naive/aware crash': with a cooldown in place a naive now is a denial, not a crash."""
    url, _ = paths
    SqlLedger.open(url).upsert_trades(
        [make_trade(close_at=T0 + timedelta(minutes=i), pl_pips=-2.0) for i in range(3)]
    )
    gates = _open(paths)
    v = gates.check_entry("MomentumPulse", "micro", Side.LONG, 150.0, datetime(2025, 10, 20, 0, 5))
    assert isinstance(v, Verdict) and not v.allowed and v.codes == ("invalid_input",)
    jst = timezone(timedelta(hours=9))
    v = gates.check_entry(
        "MomentumPulse", "micro", Side.LONG, 150.0, (T0 + timedelta(minutes=5)).astimezone(jst)
    )
    assert not v.allowed and "loss_streak_cooldown" in v.blocking_codes


def test_window_edges_compare_real_timestamps(
    paths: tuple[str, Path], make_trade: Callable[..., Trade]
) -> None:
    """Bug 'string-compared windows': a trade 1 s outside the 3-day lookback is not counted."""
    url, _ = paths
    now = T0 + timedelta(days=4)
    inside = make_trade(
        close_at=now - timedelta(days=3) + timedelta(seconds=1), pl_pips=1.0, strategy="S"
    )
    # Same instant written with a +09:00 offset: a string compare would misplace it.
    outside = make_trade(
        close_at=(now - timedelta(days=3, seconds=1)).astimezone(timezone(timedelta(hours=9))),
        pl_pips=1.0,
        strategy="S",
    )
    SqlLedger.open(url).upsert_trades([inside, outside])
    gates = _open(paths)
    gates.check_entry("S", "micro", Side.LONG, 150.0, now)
    assert gates.aggregates.window("micro", "S", timedelta(days=3), now).stats.n == 1


def test_unreadable_ledger_blocks_by_default_and_can_fail_open(tmp_path: Path) -> None:
    """A ledger that is not a database denies with ledger_unreadable, or allows when configured."""
    bad = tmp_path / "ledger.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    gates = Gates.open(f"sqlite:///{bad}", tmp_path / "s", load_registry(None), clock=Clock())
    v = gates.check_entry("S", "micro", Side.LONG, 150.0, T0)
    assert not v.allowed and v.codes == ("ledger_unreadable",)
    open_cfg = GatesConfig(on_ledger_error=LedgerErrorMode.ALLOW)
    lenient = Gates(ledger=None, config=open_cfg, ledger_opener=lambda: gates_fail(bad))
    v = lenient.check_entry("S", "micro", Side.LONG, 150.0, T0)
    assert v.allowed and "ledger_unreadable" in v.codes


def gates_fail(path: Path) -> SqlLedger:
    return SqlLedger.open(f"sqlite:///{path}")


class ExplodingLedger:
    """A ledger whose reads raise something unexpected."""

    def trades(self, **_: object) -> list[Trade]:
        raise RuntimeError("boom")

    def trades_after(self, *_: object, **__: object) -> list[Trade]:
        raise RuntimeError("boom")


def _exploding_knobs(key: str, default: object) -> object:
    raise RuntimeError(f"knob store broken reading {key}")


def test_internal_errors_never_escape() -> None:
    """An unexpected exception inside becomes a gate_error denial (or an allow when configured)."""
    ledger = ListLedger([])
    gates = Gates(ledger=ledger, config=GatesConfig(), knobs=_exploding_knobs)  # type: ignore[arg-type]
    v = gates.check_entry("S", "micro", Side.LONG, 150.0, T0)
    assert not v.allowed and v.codes == ("gate_error",)
    lenient = Gates(
        ledger=ledger,  # type: ignore[arg-type]
        config=GatesConfig(on_gate_error=LedgerErrorMode.ALLOW),
        knobs=_exploding_knobs,
    )
    assert lenient.check_entry("S", "micro", Side.LONG, 150.0, T0).allowed


def test_unexpected_read_error_denies_every_entry_as_ledger_unreadable() -> None:
    """Any exception from the ledger read denies every call with ledger_unreadable, not just one."""
    clock = Clock()
    gates = Gates(ledger=ExplodingLedger(), config=GatesConfig(refresh_s=5.0), clock=clock)  # type: ignore[arg-type]
    for tick in (0.0, 1.0, 4.9, 5.0, 11.0):  # within refresh_s of a failed read, and after
        clock.t = tick
        v = gates.check_entry("S", "micro", Side.LONG, 150.0, T0)
        assert not v.allowed and v.codes == ("ledger_unreadable",), (tick, v)
        assert "RuntimeError: boom" in (v.reasons[0].detail or "")
    lenient = Gates(
        ledger=ExplodingLedger(),  # type: ignore[arg-type]
        config=GatesConfig(on_ledger_error=LedgerErrorMode.ALLOW),
    )
    v = lenient.check_entry("S", "micro", Side.LONG, 150.0, T0)
    assert v.allowed and "ledger_unreadable" in v.codes


def test_undecodable_ledger_row_fails_closed_until_a_refresh_succeeds(
    paths: tuple[str, Path], make_trade: Callable[..., Trade]
) -> None:
    """A stored row that no longer validates denies every entry until it is fixed and re-read."""
    url, _ = paths
    ledger = SqlLedger.open(url)
    ledger.upsert_trades(
        [
            make_trade(close_at=T0, pl_pips=-1.0, strategy="S", close_price=150.0),
            make_trade(
                close_at=T0 - timedelta(minutes=5),
                pl_pips=1.0,
                strategy="X",
                broker_trade_id="bad",
                close_price=150.0,
            ),
        ]
    )
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # what another writer or an older version might have left
        conn.execute(
            sa.text(
                "UPDATE trades SET entry_at_us = close_at_us + 1000000 "
                "WHERE broker_trade_id = 'bad'"
            )
        )
    clock = Clock()
    gates = _open(paths, clock, refresh_s=5.0)
    now = T0 + timedelta(seconds=10)
    for tick in (0.0, 1.0, 6.0):
        clock.t = tick
        v = gates.check_entry("S", "micro", Side.LONG, 150.0, now)
        assert not v.allowed and v.codes == ("ledger_unreadable",), (tick, v)
        assert "'bad'" in (v.reasons[0].detail or "")
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM trades WHERE broker_trade_id = 'bad'"))
    engine.dispose()
    clock.t = 6.5  # within refresh_s of the last failed read: still denied
    assert gates.check_entry("S", "micro", Side.LONG, 150.0, now).codes == ("ledger_unreadable",)
    clock.t = 11.0
    v = gates.check_entry("S", "micro", Side.LONG, 150.0, now)
    assert gates.ledger_error is None
    assert not v.allowed and v.blocking_codes == ("cooldown",)  # S's loss 10 s ago is now seen
    ledger.close()
    gates.close()


class ListLedger:
    """An in-memory ledger over a fixed list (ledger order)."""

    def __init__(self, trades: list[Trade]) -> None:
        self._t = sorted(trades, key=lambda t: (t.close_at, t.broker_trade_id, t.close_tx_id))

    def trades(self, **_: object) -> list[Trade]:
        return list(self._t)

    def trades_after(self, watermark, limit=None) -> list[Trade]:
        return [
            t
            for t in self._t
            if watermark is None or (t.close_at, t.broker_trade_id, t.close_tx_id) > watermark
        ]


texts = st.text(min_size=1, max_size=8)
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def trades_st(draw: st.DrawFn) -> Trade:
    close = T0 + timedelta(seconds=draw(st.integers(-(10**6), 10**6)))
    entry = draw(st.floats(0.001, 1e5))
    return Trade(
        broker_trade_id=draw(texts),
        close_tx_id=draw(st.text(max_size=4)),
        instrument=draw(st.sampled_from(["USD_JPY", "EUR_USD", "X"])),
        pocket=draw(texts),
        strategy=draw(texts),
        side=draw(st.sampled_from(list(Side))),
        units=draw(st.integers(1, 10**9)),
        entry_price=entry,
        close_price=draw(st.floats(0.001, 1e5)),
        entry_at=close - timedelta(seconds=draw(st.integers(0, 10**5))),
        close_at=close,
        pl_pips=draw(finite),
        pl_account=draw(finite),
        broker_close_reason=draw(
            st.sampled_from(["", "STOP_LOSS_ORDER", "MARKET_ORDER_MARGIN_CLOSEOUT"])
        ),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(trades_st(), max_size=25),
    texts,
    texts,
    st.sampled_from(list(Side)),
    st.one_of(finite, st.just(math.nan)),
    st.integers(-(10**6), 10**6),
)
def test_no_exception_on_any_ledger_content(
    trades: list[Trade], strategy: str, pocket: str, side: Side, price: float, offset: int
) -> None:
    """Whatever the ledger holds and whatever is asked, check_entry returns a Verdict."""
    gates = Gates(ledger=ListLedger(trades), config=GatesConfig(refresh_s=0.0))  # type: ignore[arg-type]
    now = T0 + timedelta(seconds=offset)
    pos = [OpenPosition(strategy=strategy, pocket=pocket, side=side, units=1, entry_price=1.0)]
    for s, p in ((strategy, pocket), *((t.strategy, t.pocket) for t in trades[:3])):
        v = gates.check_entry(s, p, side, price, now, pos)
        assert isinstance(v, Verdict) and v.size_multiplier >= 0
        assert not v.allowed or "gate_error" not in v.codes


def test_config_rejects_unknown_keys_and_bad_values(tmp_path: Path) -> None:
    """Every problem of a tracked gates.yaml is listed with its dotted path."""
    path = tmp_path / "gates.yaml"
    path.write_text(
        "perf_guard: {pf_minn: 1, mode: panic, pockets: {micro: {win_min: x}}}\n"
        "stage: {cooldown_s: {micro: fast}}\npolicy: {unblock_above: -1}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_gates_config(path)
    text = str(err.value)
    for expected in (
        "perf_guard.rules.pf_minn: unknown key",
        "perf_guard.rules.mode: expected one of 'block', 'reduce', 'warn', got 'panic'",
        "stage.cooldown_s.micro",
        "hysteresis",
    ):
        assert expected in text


def test_tracked_file_then_runtime_overrides(
    tmp_path: Path, make_trade: Callable[..., Trade]
) -> None:
    """Runtime overrides (state dir) win over the tracked file, which is never written."""
    url = f"sqlite:///{tmp_path / 'l.db'}"
    SqlLedger.open(url).upsert_trades([make_trade(close_at=T0, pl_pips=1.0, strategy="S")])
    tracked = tmp_path / "gates.yaml"
    tracked.write_text("reentry: {defaults: {cooldown_win_s: 100}}\n")
    before = tracked.read_bytes()
    store = StateStore(tmp_path / "s", load_registry(None))
    store.write_mechanism(
        "gates", {"overrides": {"reentry": {"strategies": {"S": {"cooldown_win_s": 20}}}}}
    )
    gates = Gates.open(url, tmp_path / "s", load_registry(None), tracked, clock=Clock())
    assert gates.config.reentry_rule("Other").cooldown_win_s == 100
    at = T0 + timedelta(seconds=30)
    assert gates.check_entry("S", "micro", Side.LONG, 149.9, at).allowed
    v = gates.check_entry("S-bear", "micro", Side.LONG, 149.9, T0 + timedelta(seconds=10))
    assert v.blocking_codes == ("cooldown",)  # same base strategy "S": its 20 s cooldown
    assert tracked.read_bytes() == before


def test_real_quantrabbit_trades_through_the_gates(tmp_path: Path) -> None:
    """Real Oct-2025 trades: verdicts carry the window's numbers and the stage's close-time ends."""
    url = f"sqlite:///{tmp_path / 'l.db'}"
    ledger = SqlLedger.open(url)
    for name in ("trades_home.db", "trades_latest.part-0001-0300.csv"):
        ledger.upsert_trades(import_path(DATA / name).accepted)
    now = ledger.last_close_at() + timedelta(minutes=1)
    gates = Gates.open(url, tmp_path / "s", load_registry(None), clock=Clock())
    v = gates.check_entry("unknown", "macro", Side.LONG, 151.0, now)
    window = [
        t
        for t in ledger.trades(closed_since=now - timedelta(days=3), pocket="macro")
        if t.strategy == "unknown"
    ]
    perf = [r for r in v.reasons if r.gate.value == "perf_guard"]
    assert perf and all(f"n={len(window)}" in r.detail for r in perf)
    wins = sum(t.pl_pips > 0 for t in window) / len(window)
    assert wins < 0.40 and "failfast" in v.blocking_codes  # independent: the data's win rate
    stage = [r for r in v.reasons if r.code == "loss_streak_cooldown"]
    last_long = max(t.close_at for t in window if t.side is Side.LONG)
    assert stage and (last_long + timedelta(seconds=900)).isoformat() in stage[0].detail
    # TrendMA (14 trades, profitable) is in warm-up: not blocked by the perf guard.
    v = gates.check_entry("TrendMA", "macro", Side.SHORT, 151.0, now)
    assert "failfast" not in v.codes and "perf_low" not in v.codes
