"""Real records round-trip: every line the real cycles append reads as a RunRecord and back.

Each mechanism runs through its real ``run_cycle`` (real StateStore, real SQLite ledger) into
its own history: live applies, holds and freezes, shadow and frozen runs, lock_busy, judged
rollbacks, operator actions. ``RunRecord.from_json(line).to_json()`` must equal the line.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autolearn.adapters.history import HistoryFile
from autolearn.adapters.state import StateStore
from autolearn.autotune import AutotuneConfig
from autolearn.autotune import run_cycle as run_autotune
from autolearn.backtest import load_candles
from autolearn.cli import main
from autolearn.core.model import Side, Trade
from autolearn.core.run_record import RunRecord
from autolearn.core.timestamps import from_epoch_us
from autolearn.errors import BrokerUnavailable
from autolearn.gates.config import load_gates_config
from autolearn.ledger.sql import SqlLedger
from autolearn.policy.cycle import operator_unblock, run_policy
from autolearn.reconcile.cycle import ReconcileConfig, run_reconcile
from autolearn.scalp_trainer import ScalpTrainerConfig
from autolearn.scalp_trainer import run_cycle as run_scalp
from autolearn.settings import load_registry
from autolearn.testing import make_trade
from autolearn.tuner import TunerConfig
from autolearn.tuner import run_cycle as run_tuner

REGISTRY = load_registry(None)
T0 = datetime(2025, 10, 20, tzinfo=UTC)
KNOB = "strategies.MomentumPulse.min_confidence"
PRESET = 0.65
CANDLES = (
    Path(__file__).parents[1]
    / "data/fx/histdata-paskl-fxot/DAT_ASCII_EURUSD_M1_201807.part-0001-1500.csv"
)


def _env(root: Path) -> tuple[StateStore, SqlLedger]:
    return StateStore(root / "state", REGISTRY), SqlLedger.open(f"sqlite:///{root / 'ledger.db'}")


def _lines(store: StateStore) -> list[dict[str, Any]]:
    """The records as appended: a repeat is stored as a delta line, ``read()`` expands it."""
    files = store.history.path.parent.glob("history*.jsonl")  # the segments, rotated or not
    raw = [line for path in files for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(raw) == len(store.history.read().records)  # one line per record, folded or not
    return store.history.read().records


def _assert_round_trips(store: StateStore) -> list[RunRecord]:
    """Every history line round-trips exactly; ``read_runs`` finds nothing malformed."""
    lines = _lines(store)
    assert lines, "the scenario wrote no record"
    for number, doc in enumerate(lines, start=1):
        assert RunRecord.from_json(doc).to_json() == doc, f"line {number}: {doc}"
    read = store.history.read_runs()
    assert read.malformed == [] and read.corrupt_lines == [] and not read.torn_last_line
    assert [r.to_json() for r in read.runs] == lines
    return read.runs


def _tuner_trades(store: StateStore, rng: random.Random, t0: datetime) -> list[Trade]:
    """Ten minutes of MomentumPulse trades whose P/L gets worse when the knob is tightened."""
    version = store.read_effective().version
    mean = -0.8 if float(store.current_values()[KNOB]) <= PRESET else -2.0
    out = []
    for i in range(5):
        entry = t0 + timedelta(seconds=110 * i)
        pips = round(rng.gauss(mean, 2.0), 3)
        out.append(
            make_trade(
                close_at=entry + timedelta(seconds=45),
                pl_pips=pips,
                pl_account=pips * 10.0,
                entry_at=entry,
                config_version=version,
            )
        )
    return out


def test_tuner_records(tmp_path: Path) -> None:
    """Tuner: freezes and holds, applies, judged rollbacks, shadow, frozen and lock_busy runs."""
    store, ledger = _env(tmp_path)
    rng = random.Random(0)
    now = T0
    config = TunerConfig()
    for _ in range(72):  # twelve simulated hours, a run every ten minutes
        ledger.upsert_trades(_tuner_trades(store, rng, now))
        now += timedelta(minutes=10)
        run_tuner(store, ledger, config, now)
    run_tuner(store, ledger, config, now + timedelta(minutes=1), shadow=True)
    store.set_control("tuner", {"frozen": True, "reason": "test", "at": "x"})
    run_tuner(store, ledger, config, now + timedelta(minutes=2))
    with store.lock("tuner"):
        run_tuner(store, ledger, config, now + timedelta(minutes=3))
    runs = _assert_round_trips(store)
    decisions = {r.decision for r in runs}
    assert {"shadow", "frozen", "lock_busy"} <= decisions
    assert any(r.applied for r in runs), decisions
    assert any(not r.is_flat_verdict and r.verdicts for r in runs), "no judged record"


def _scalps(n: int, *, win_rate: float, start: datetime, version: str, prefix: str) -> list[Trade]:
    rng = random.Random(1)
    out = []
    for i in range(n):
        entry = start + timedelta(minutes=10 * i)
        win = rng.random() < win_rate
        pips = round((2.0 if win else -8.0) + rng.uniform(-0.2, 0.2), 3)
        out.append(
            Trade(
                broker_trade_id=f"{prefix}{i}",
                close_tx_id=f"C{prefix}{i}",
                instrument="EUR_USD",
                pocket="scalp",
                strategy="M1Scalper",
                side=Side.LONG,
                units=10_000,
                entry_price=1.1,
                close_price=round(1.1 + pips * 0.0001, 6),
                entry_at=entry,
                close_at=entry + timedelta(minutes=5 if win else 9),
                pl_pips=pips,
                pl_account=pips,
                broker_close_reason="TAKE_PROFIT_ORDER" if win else "STOP_LOSS_ORDER",
                config_version=version,
            )
        )
    return out


def test_scalp_trainer_records(tmp_path: Path) -> None:
    """Scalp trainer: shadow, a live apply, its judged rollback, a freeze on thin data."""
    store, ledger = _env(tmp_path)
    now = datetime(2025, 10, 23, 3, tzinfo=UTC)
    base = store.base_version()
    ledger.upsert_trades(
        _scalps(300, win_rate=0.75, start=now - timedelta(days=2), version=base, prefix="T")
    )
    config = ScalpTrainerConfig()
    run_scalp(store, ledger, config, now, shadow=True)
    first = run_scalp(store, ledger, config, now)
    worse = _scalps(
        80,
        win_rate=0.0,
        start=now + timedelta(minutes=1),
        version=str(first["version_after"]),
        prefix="W",
    )
    ledger.upsert_trades(worse)
    run_scalp(store, ledger, config, now + timedelta(hours=14))
    thin = StateStore(tmp_path / "thin", REGISTRY)
    run_scalp(thin, ledger, config, now - timedelta(days=3))
    runs = _assert_round_trips(store)
    assert {"shadow", "apply", "rollback"} <= {r.decision for r in runs}
    assert [r.decision for r in _assert_round_trips(thin)] == ["freeze"]


def test_autotune_records(tmp_path: Path) -> None:
    """Autotune: a live apply after a study, a hold while it is judged, a stale-candles hold."""
    store, ledger = _env(tmp_path)
    bars = load_candles(CANDLES)
    config = AutotuneConfig(
        folds=2,
        embargo_bars=10,
        min_trades=5,
        n_trials=10,
        max_candle_age=timedelta(days=1),
        min_dsr=0.0,
        min_oos_improvement=-math.inf,
    )
    now = from_epoch_us(int(bars.time_us[-1])) + timedelta(hours=1)
    run_autotune(store, ledger, config, bars, CANDLES, now)
    run_autotune(store, ledger, config, bars, CANDLES, now + timedelta(hours=1))
    run_autotune(store, ledger, config, bars, CANDLES, now + timedelta(days=30))
    runs = _assert_round_trips(store)
    assert [r.decision for r in runs] == ["apply", "hold", "hold"]
    assert runs[0].applied and "study" in runs[0].metrics and runs[1].in_flight


def _losing(start: datetime, n: int = 16) -> list[Trade]:
    pattern = [-2.0, -1.5, -2.5, 0.6, -1.8, -2.2, -1.2, 0.4]
    return [
        make_trade(close_at=start + timedelta(minutes=20 * i), pl_pips=pattern[i % 8])
        for i in range(n)
    ]


def test_policy_records(tmp_path: Path) -> None:
    """Policy: shadow, a block applied, a hold, an operator unblock, lock_busy."""
    store, ledger = _env(tmp_path)
    config = load_gates_config()
    ledger.upsert_trades(_losing(T0))
    t1 = T0 + timedelta(hours=6)
    run_policy(ledger=ledger, store=store, config=config, now=t1, shadow=True)
    run_policy(ledger=ledger, store=store, config=config, now=t1)
    run_policy(ledger=ledger, store=store, config=config, now=t1 + timedelta(minutes=10))
    operator_unblock(
        store=store, scope="micro", reason="checked", now=t1 + timedelta(hours=1), config=config
    )
    with store.lock("policy"):
        run_policy(ledger=ledger, store=store, config=config, now=t1 + timedelta(hours=2))
    runs = _assert_round_trips(store)
    assert {"shadow", "apply", "operator_unblock", "lock_busy"} <= {r.decision for r in runs}
    assert any(r.other_verdicts for r in runs)  # the policy's skipped list, kept as read


class _Broker:
    def __init__(self, trades: list[dict[str, object]], *, down: bool = False) -> None:
        self.trades, self.down = trades, down

    def iter_closed_trades(
        self, account_id: str, *, count: int = 500, before_id: str | None = None
    ) -> Iterator[dict[str, object]]:
        if self.down:
            raise BrokerUnavailable("503 after 5 attempt(s)")
        yield from self.trades

    def trade(self, account_id: str, trade_specifier: str) -> dict[str, object]:
        raise BrokerUnavailable("not reached")


def test_reconcile_records(tmp_path: Path) -> None:
    """Reconcile: clean, mismatch (an unreadable broker trade), broker_unavailable, lock_busy."""
    store, ledger = _env(tmp_path)
    now = datetime(2025, 10, 23, tzinfo=UTC)

    def run(broker: _Broker, at: datetime) -> None:
        run_reconcile(
            store=store,
            broker=broker,
            ledger=ledger,
            account_id="001-001-0000001-001",
            config=ReconcileConfig(),
            now=at,
        )

    run(_Broker([]), now)
    run(_Broker([{"id": "7", "state": "CLOSED"}]), now + timedelta(hours=1))
    with pytest.raises(BrokerUnavailable):
        run(_Broker([], down=True), now + timedelta(hours=2))
    with store.lock("reconcile"):
        run(_Broker([]), now + timedelta(hours=3))
    runs = _assert_round_trips(store)
    assert [r.decision for r in runs] == ["clean", "mismatch", "broker_unavailable", "lock_busy"]
    assert runs[1].extra["findings_total"] >= 1


def test_operator_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Operator set, rollback, freeze and unfreeze through the CLI."""
    monkeypatch.setenv("AUTOLEARN_BOT_ROOT", str(tmp_path))
    for name in ("AUTOLEARN_STATE_DIR", "AUTOLEARN_REGISTRY", "AUTOLEARN_LEDGER_URL"):
        monkeypatch.delenv(name, raising=False)
    knob = "exit.lowvol.upper_bound_max_sec"
    store = StateStore(tmp_path / "logs" / "tuning", REGISTRY)
    base = store.base_version()
    assert main(["set", knob, "4.0", "--reason", "widen"]) == 0
    assert main(["set", knob, "99", "--reason", "out of bounds"]) == 65  # refused, recorded
    assert main(["rollback", "--to", base, "--reason", "undo"]) == 0
    assert main(["freeze", "tuner", "--reason", "incident"]) == 0
    assert main(["unfreeze", "tuner", "--reason", "resolved"]) == 0
    runs = _assert_round_trips(store)
    assert [r.decision for r in runs] == [
        "set",
        "set",
        "rollback",
        "operator_freeze",
        "operator_unfreeze",
    ]
    assert runs[2].restored_snapshot is True and runs[2].target_version == base


class TestReadRuns:
    def test_a_malformed_record_is_skipped_and_named(self, tmp_path: Path) -> None:
        """A record of the wrong shape is listed with its line and field; the others are read."""
        history = HistoryFile(tmp_path / "history.jsonl")
        history.append({"run_id": "a", "decision": "hold"})
        history.append({"run_id": "b", "reasons": "no_signal"})
        with history.path.open("ab") as handle:
            handle.write(b"{not json\n")
        history.append({"run_id": "c", "decision": "apply"})
        read = history.read_runs()
        assert [r.run_id for r in read.runs] == ["a", "c"]
        assert read.corrupt_lines == [3]
        assert [line for line, _ in read.malformed] == [2]
        assert "reasons" in read.malformed[0][1]
        assert read.unreadable_lines == [2, 3]
        assert len(history.read().records) == 3  # the raw reader still returns every object

    def test_torn_last_line(self, tmp_path: Path) -> None:
        """A torn last line is flagged, not counted as malformed."""
        history = HistoryFile(tmp_path / "history.jsonl")
        history.append({"run_id": "a"})
        with history.path.open("ab") as handle:
            handle.write(b'{"run_id": "b"')
        read = history.read_runs()
        assert read.torn_last_line and read.malformed == [] and len(read.runs) == 1
