"""Tuner test helpers: a simulated bot whose outcomes depend on the live knob values (known truth).

The bot opens trades on a simulated clock, pins the config version it read at entry (as the real
runtime API does), and draws each trade's P/L from ``truth(values)``; the tuner runs every 10
simulated minutes through the real ``run_cycle`` with a real SqlLedger and StateStore in tmp_path.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autolearn.adapters.state import StateStore
from autolearn.core.knobs import KnobValue
from autolearn.core.model import Side, Trade
from autolearn.ledger.sql import SqlLedger
from autolearn.settings import load_registry
from autolearn.tuner import TunerConfig, run_cycle

START = datetime(2025, 10, 20, 0, 0, tzinfo=UTC)
KNOB = "strategies.MomentumPulse.min_confidence"


@dataclass
class SimBot:
    """A bot in one pocket/strategy; ``truth(values) -> (mean_pips, sd_pips)``."""

    store: StateStore
    ledger: SqlLedger
    config: TunerConfig
    truth: Callable[[Mapping[str, KnobValue]], tuple[float, float]]
    rng: random.Random
    trades_per_hour: float = 30.0
    pocket: str = "micro"
    strategy: str = "MomentumPulse"
    exit_reason: str = ""
    regime: str = ""
    pin_version: bool = True
    now: datetime = START
    records: list[dict[str, Any]] = field(default_factory=list)
    n_trades: int = 0
    trade_log: list[tuple[datetime, KnobValue]] = field(default_factory=list)

    def _trades_between(self, t0: datetime, t1: datetime) -> list[Trade]:
        effective = self.store.read_effective()
        values = self.store.current_values()
        mean, sd = self.truth(values)
        out = []
        span = (t1 - t0).total_seconds() - 60
        count = _poisson(self.rng, self.trades_per_hour * (t1 - t0).total_seconds() / 3600)
        for offset in sorted(self.rng.uniform(0, span) for _ in range(count)):
            entry = t0 + timedelta(seconds=offset)
            pips = round(self.rng.gauss(mean, sd), 3)
            self.n_trades += 1
            self.trade_log.append((entry, values.get(KNOB, 0.0)))
            out.append(
                Trade(
                    broker_trade_id=f"T{self.n_trades}",
                    close_tx_id=f"C{self.n_trades}",
                    instrument="USD_JPY",
                    pocket=self.pocket,
                    strategy=self.strategy,
                    side=Side.LONG,
                    units=1000,
                    entry_price=150.0,
                    close_price=150.0 + pips * 0.01,
                    entry_at=entry,
                    close_at=entry + timedelta(seconds=45),
                    pl_pips=pips,
                    pl_account=pips * 10.0,
                    exit_reason=self.exit_reason,
                    regime_micro=self.regime,
                    config_version=effective.version if self.pin_version else "",
                )
            )
        return out

    def step(self, minutes: int = 10) -> dict[str, Any]:
        """Trade for ``minutes`` then run the tuner once; return its record."""
        t1 = self.now + timedelta(minutes=minutes)
        self.ledger.upsert_trades(self._trades_between(self.now, t1))
        self.now = t1
        record = run_cycle(self.store, self.ledger, self.config, self.now)
        self.records.append(record)
        return record

    def run(self, hours: float, minutes: int = 10) -> list[dict[str, Any]]:
        out = []
        for _ in range(int(hours * 60 / minutes)):
            out.append(self.step(minutes))
        return out


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method is fine for the small rates used here.
    limit, k, p = pow(2.718281828459045, -lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


@pytest.fixture(name="make_bot")
def fixture_make_bot(tmp_path: Path) -> Callable[..., SimBot]:
    """Factory for a SimBot with a fresh state dir and SQLite ledger under tmp_path."""
    counter = iter(range(10_000))

    def make(truth: Callable[..., tuple[float, float]], seed: int = 0, **kwargs: Any) -> SimBot:
        root = tmp_path / f"bot{next(counter)}"
        store = StateStore(root / "state", load_registry(None))
        ledger = SqlLedger.open(f"sqlite:///{root / 'ledger.db'}")
        config = kwargs.pop("config", TunerConfig())
        return SimBot(store, ledger, config, truth, random.Random(seed), **kwargs)

    return make
