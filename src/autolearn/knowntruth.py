"""Known-truth scenarios: a simulated bot whose P/L depends on its knobs, and the real tuner.

Claims about learning are measured, not argued. A scenario fixes the truth (the mean P/L of the
MomentumPulse micro strategy under the preset entry threshold and under a tightened one, the
per-trade sd, the trade rate); the bot opens trades on a simulated clock, reads its knobs per
trade through the real runtime API (``Tuning.values_for(unit)``, so a change in flight reaches
only its concurrent arm), pins the version it read, and writes the trade to a real SQLite ledger;
the real ``tuner.run_cycle`` runs every ``minutes`` simulated minutes on a real state store.
Everything the tuner sees is what it would see in production; only the market is simulated.

Used by ``tests/tuner`` (few seeds) and ``bench/bench_judge.py`` (hundreds of seeds, with
intervals). Never used by the product at run time.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from autolearn.adapters.state import StateStore
from autolearn.core.knobs import KnobValue
from autolearn.core.model import Side, Trade
from autolearn.ledger.sql import SqlLedger
from autolearn.runtime import Tuning
from autolearn.settings import load_registry
from autolearn.tuner import TunerConfig, run_cycle

__all__ = [
    "KNOB",
    "PRESET",
    "START",
    "FlightOutcome",
    "Scenario",
    "SimBot",
    "first_flight",
    "make_bot",
]

START = datetime(2025, 10, 20, 0, 0, tzinfo=UTC)
KNOB = "strategies.MomentumPulse.min_confidence"
PRESET = 0.65
Truth = Callable[[Mapping[str, KnobValue]], tuple[float, float]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """The truth: ``base_pips`` at the preset threshold, ``base_pips + effect_pips`` above it.

    The base is losing on purpose: the tuner's micro entry rule tightens the threshold when the
    strategy's expectancy interval lies below 0, so every seed starts a flight whose true effect
    is ``effect_pips``.
    """

    name: str
    effect_pips: float
    base_pips: float = -1.5
    sd: float = 5.0
    trades_per_hour: float = 40.0
    minutes: int = 10  # between tuner runs
    pass_units: bool = True  # False: the bot cannot pass unit ids (before/after only)

    def truth(self) -> Truth:
        def mean_sd(values: Mapping[str, KnobValue]) -> tuple[float, float]:
            tightened = float(values[KNOB]) > PRESET + 1e-9
            return (self.base_pips + (self.effect_pips if tightened else 0.0), self.sd)

        return mean_sd


@dataclass
class SimBot:
    """A bot in one pocket/strategy; ``truth(values) -> (mean_pips, sd_pips)``."""

    store: StateStore
    ledger: SqlLedger
    config: TunerConfig
    truth: Truth
    rng: random.Random
    trades_per_hour: float = 30.0
    pocket: str = "micro"
    strategy: str = "MomentumPulse"
    exit_reason: str = ""
    regime: str = ""
    pin_version: bool = True
    pass_units: bool = True
    now: datetime = START
    records: list[dict[str, Any]] = field(default_factory=list)
    n_trades: int = 0
    trade_log: list[tuple[datetime, KnobValue]] = field(default_factory=list)

    def _trades_between(self, t0: datetime, t1: datetime) -> list[Trade]:
        tuning = Tuning(self.store.root, self.store.registry, refresh_s=0.0)
        out = []
        span = (t1 - t0).total_seconds() - 60
        count = _poisson(self.rng, self.trades_per_hour * (t1 - t0).total_seconds() / 3600)
        for offset in sorted(self.rng.uniform(0, span) for _ in range(count)):
            entry = t0 + timedelta(seconds=offset)
            unit = f"T{self.n_trades + 1}"
            if self.pass_units:
                values, version = tuning.values_for(unit), tuning.arm(unit).version
            else:
                values, version = tuning.values(), tuning.config_version
            mean, sd = self.truth(values)
            pips = round(self.rng.gauss(mean, sd), 3)
            self.n_trades += 1
            self.trade_log.append((entry, values.get(KNOB, 0.0)))
            out.append(
                Trade(
                    broker_trade_id=unit,
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
                    config_version=version if self.pin_version else "",
                )
            )
        return out

    def step(self, minutes: int = 10) -> dict[str, Any]:
        """Trade for ``minutes`` then run the tuner once; return its record."""
        t1 = self.now + timedelta(minutes=minutes)
        trades = self._trades_between(self.now, t1)
        if trades:
            self.ledger.upsert_trades(trades)
        self.now = t1
        record = run_cycle(self.store, self.ledger, self.config, self.now)
        self.records.append(record)
        return record

    def run(self, hours: float, minutes: int = 10) -> list[dict[str, Any]]:
        return [self.step(minutes) for _ in range(int(hours * 60 / minutes))]


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method is exact and fast enough for the rates simulated here (< 50 per step).
    limit, k, p = pow(2.718281828459045, -lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def make_bot(
    root: Path, truth: Truth, seed: int = 0, config: TunerConfig | None = None, **kwargs: Any
) -> SimBot:
    """A SimBot with a fresh state dir and SQLite ledger under ``root``."""
    store = StateStore(root / "state", load_registry(None))
    ledger = SqlLedger.open(f"sqlite:///{root / 'ledger.db'}")
    return SimBot(store, ledger, config or TunerConfig(), truth, random.Random(seed), **kwargs)  # noqa: S311 - a simulation


@dataclass(frozen=True, slots=True, kw_only=True)
class FlightOutcome:
    """How the first change of a seed ended."""

    seed: int
    decision: str  # rollback | revert | promote | pause | none (no flight ended in time)
    reason: str  # the verdict's reason (worse_than_lkg, hard_limit_loss_streak, ...)
    n_candidate: int
    n_baseline: int
    baseline_mode: str
    hours: float  # simulated hours from the apply to the decision
    applied: bool  # a change was applied at all


_ENDS = {"rollback", "revert", "promote", "pause"}


def first_flight(
    scenario: Scenario,
    seed: int,
    root: Path,
    config: TunerConfig | None = None,
    max_hours: float = 400.0,
) -> FlightOutcome:
    """Run ``scenario`` until its first change ends (or ``max_hours``); how it ended."""
    bot = make_bot(
        root,
        scenario.truth(),
        seed=seed,
        config=config,
        trades_per_hour=scenario.trades_per_hour,
        pass_units=scenario.pass_units,
    )
    applied_at: datetime | None = None
    try:
        for _ in range(int(max_hours * 60 / scenario.minutes)):
            record = bot.step(scenario.minutes)
            decision = record.get("decision")
            if decision == "apply" and record.get("applied") and applied_at is None:
                applied_at = bot.now
            if applied_at is not None and decision in _ENDS:
                verdict = (record.get("verdicts") or {}).get("micro.entry") or {}
                return FlightOutcome(
                    seed=seed,
                    decision=str(decision),
                    reason=str(verdict.get("reason", "")),
                    n_candidate=int(verdict.get("n_candidate") or 0),
                    n_baseline=int(verdict.get("n_baseline") or 0),
                    baseline_mode=str(verdict.get("baseline_mode", "")),
                    hours=(bot.now - applied_at).total_seconds() / 3600,
                    applied=True,
                )
    finally:
        bot.ledger.close()
    return FlightOutcome(
        seed=seed,
        decision="none",
        reason="",
        n_candidate=0,
        n_baseline=0,
        baseline_mode="",
        hours=0.0,
        applied=applied_at is not None,
    )
