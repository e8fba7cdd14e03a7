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
    "CfBot",
    "CfMarket",
    "CfOutcome",
    "CfScenario",
    "FlightOutcome",
    "Scenario",
    "SimBot",
    "first_flight",
    "make_bot",
    "make_market",
    "run_cf_scenario",
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


# --- counterfactual known truth (issue 12): synthetic M1 candles, logged signals, arms ----------
#
# The market is a random walk of M1 bars (trading hours only: no bars in the FX weekend, as a
# real feed). Every signal with score ``s`` (MomentumPulse's ``confidence``) pushes the next
# ``timeout_bars`` bars in its own direction by ``slope * (s - s_star)`` pips a bar, so a signal
# scored above ``s_star`` has a positive expectancy, one below a negative one, and the best
# threshold is the least grid value >= ``s_star`` (no spread is charged: zero drift is zero
# expectancy exactly, so "no true difference" is exact too). The bot logs every signal, taken or
# not (down to the knob's lower bound), takes one iff its score is admitted by the value of the
# arm its unit is in (``Tuning.values_for(unit)``), and records the trade it opened with the P/L
# the candles gave it. The real tuner cycle runs every ``minutes`` on a real SqlLedger and
# StateStore; the candles reach the ledger bar by bar, signals and trades as they happen.

CF_SPREAD_PIPS = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CfScenario:
    """The truth of one counterfactual scenario (see the section comment above).

    ``s_star`` None: no signal has any edge (every grid value is equally good).
    Rates are per trading day: ``strong_per_day`` signals score in ``[PRESET, 0.80)`` (the
    trades at the starting threshold: ~300 a month), ``weak_per_day`` in ``[0.55, PRESET)``.
    """

    name: str
    s_star: float | None
    slope_pips_per_bar: float = 12.0  # drift per bar per unit of score away from s_star
    # ... up to this far from s_star: signals far from the threshold move the market no more
    # than the ones near it (their pushes overlap other signals' bars and only add noise)
    edge_cap: float = 0.03
    bar_sd_pips: float = 1.7  # per-bar sd: ~5.2 pips per trade with SL/TP 7 over 10 bars
    sl_pips: float = 7.0
    tp_pips: float = 7.0
    timeout_bars: int = 10
    strong_per_day: float = 14.0
    weak_per_day: float = 400.0
    days: int = 30
    minutes: int = 10  # between tuner runs

    def best_value(self, grid: list[float]) -> float | None:
        """The grid value with the largest expected total P/L (None: every value ties)."""
        if self.s_star is None:
            return None
        return min((v for v in grid if v >= self.s_star - 1e-9), default=grid[-1])

    def expected_gain(self, value: float, current: float) -> float:
        """The sign of value's expected total minus current's (the drift integrated)."""
        if self.s_star is None:
            return 0.0
        lo, hi = sorted((value, current))
        # signals between the two values: admitted by the looser one only
        mid = (lo + hi) / 2
        sign = 1.0 if value < current else -1.0
        return sign * (mid - self.s_star) * (hi - lo)


@dataclass(frozen=True, slots=True)
class CfMarket:
    """One seed's pre-drawn market: candles and every signal, with its simulated outcome."""

    candles: Any  # autolearn.backtest.candles.Candles (imported lazily: numpy, numba)
    at: list[datetime]
    score: list[float]
    side: list[Side]
    price: list[float]
    pips: list[float]
    close_at: list[datetime]


def _trading(t: datetime) -> bool:
    """Monday 00:00 to Friday 21:00 UTC: the FX week without its two-hour Sunday evening.

    Every UTC day with signals is then a (nearly) full day: the counterfactual's unit is the
    day, and a two-hour Sunday "day" would only add variance to the daily sums.
    """
    wd, h = t.weekday(), t.hour
    return not ((wd == 4 and h >= 21) or wd >= 5)


def make_market(scenario: CfScenario, seed: int, start: datetime = START) -> CfMarket:
    """Draw the candles and signals of ``scenario`` for ``scenario.days`` (+1 day of margin)."""
    import numpy as np

    from autolearn.backtest.candles import Candles
    from autolearn.core.model import EntrySignal
    from autolearn.counterfactual.outcomes import signal_outcomes

    rng = np.random.default_rng(seed)
    minutes = [start + timedelta(minutes=k) for k in range((scenario.days + 1) * 1440)]
    opens = [t for t in minutes if _trading(t)]
    n = len(opens)
    per_bar = 1 / 1440
    strong = rng.random(n) < scenario.strong_per_day * per_bar
    weak = rng.random(n) < scenario.weak_per_day * per_bar
    score = np.where(strong, rng.uniform(PRESET, 0.80, n), rng.uniform(0.55, PRESET, n))
    has = strong | weak
    sig_bar = np.flatnonzero(has)
    direction = rng.choice([-1.0, 1.0], size=n)
    drift = np.zeros(n + scenario.timeout_bars + 2)
    if scenario.s_star is not None:
        edge = np.clip(score[sig_bar] - scenario.s_star, -scenario.edge_cap, scenario.edge_cap)
        push = direction[sig_bar] * scenario.slope_pips_per_bar * edge
        np.add.at(drift, sig_bar + 1, push)
        np.add.at(drift, sig_bar + 1 + scenario.timeout_bars, -push)
    per_bar_drift = np.cumsum(drift)[:n]
    sub = 6  # sub-steps per bar for a high and a low
    steps = rng.normal(0.0, scenario.bar_sd_pips / np.sqrt(sub), (n, sub))
    steps += (per_bar_drift / sub)[:, None]
    pip = 0.01
    path = 150.0 + np.cumsum(steps.ravel()).reshape(n, sub) * pip
    close = path[:, -1]
    open_ = np.concatenate([[150.0], close[:-1]])
    high = np.maximum(path.max(axis=1), open_)
    low = np.minimum(path.min(axis=1), open_)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    time_us = np.array([(t - epoch) // timedelta(microseconds=1) for t in opens], dtype=np.int64)
    candles = Candles(
        instrument="USD_JPY",
        timeframe_s=60,
        time_us=time_us,
        open=np.round(open_, 5),
        high=np.round(high, 5),
        low=np.round(low, 5),
        close=np.round(close, 5),
        volume=np.full(n, 10.0),
        source="knowntruth",
        spread_pips=np.full(n, CF_SPREAD_PIPS),  # the feed states its (zero) spread
    )
    at = [opens[k] + timedelta(minutes=1) for k in sig_bar]
    sides = [Side.LONG if direction[k] > 0 else Side.SHORT for k in sig_bar]
    prices = [float(candles.close[k]) for k in sig_bar]
    probe = [
        EntrySignal(
            signal_id=f"S{k}",
            at=at[j],
            instrument="USD_JPY",
            pocket="micro",
            strategy="MomentumPulse",
            side=sides[j],
            price=prices[j],
            sl_pips=scenario.sl_pips,
            tp_pips=scenario.tp_pips,
            timeout_s=scenario.timeout_bars * 60.0,
            scores={"confidence": float(score[k])},
            taken=False,
            not_taken="probe",
        )
        for j, k in enumerate(sig_bar)
    ]
    out = signal_outcomes(candles, probe, spread_pips=CF_SPREAD_PIPS)
    close_at = [
        opens[min(int(b), n - 1)] + timedelta(minutes=1) if b >= 0 else at[j]
        for j, b in enumerate(out.exit_bar)
    ]
    return CfMarket(
        candles=candles,
        at=at,
        score=[float(score[k]) for k in sig_bar],
        side=sides,
        price=prices,
        pips=[float(p) for p in out.pips],
        close_at=close_at,
    )


@dataclass
class CfBot:
    """The bot of a counterfactual scenario: logs every signal, takes the admitted ones."""

    store: StateStore
    ledger: SqlLedger
    config: TunerConfig
    market: CfMarket
    scenario: CfScenario
    now: datetime = START
    records: list[dict[str, Any]] = field(default_factory=list)
    knob_log: list[tuple[datetime, float, float]] = field(default_factory=list)  # (at, lkg, live)
    _next_signal: int = 0
    _next_bar: int = 0
    _open: list[Trade] = field(default_factory=list)

    def step(self) -> dict[str, Any]:
        """Advance ``minutes``: bars, signals and closed trades reach the ledger; run the tuner."""
        from autolearn.core.model import EntrySignal

        t1 = self.now + timedelta(minutes=self.scenario.minutes)
        self._feed_candles(t1)
        tuning = Tuning(self.store.root, self.store.registry, refresh_s=0.0)
        signals = []
        m = self.market
        while self._next_signal < len(m.at) and m.at[self._next_signal] <= t1:
            k = self._next_signal
            self._next_signal += 1
            unit = f"S{k}"
            value = float(tuning.values_for(unit)[KNOB])
            taken = m.score[k] >= value - 1e-12
            version = tuning.arm(unit).version
            signals.append(
                EntrySignal(
                    signal_id=unit,
                    at=m.at[k],
                    instrument="USD_JPY",
                    pocket="micro",
                    strategy="MomentumPulse",
                    side=m.side[k],
                    price=m.price[k],
                    sl_pips=self.scenario.sl_pips,
                    tp_pips=self.scenario.tp_pips,
                    timeout_s=self.scenario.timeout_bars * 60.0,
                    scores={"confidence": m.score[k]},
                    unit_id=unit,
                    taken=taken,
                    not_taken="" if taken else "threshold",
                    broker_trade_id=f"T{k}" if taken else "",
                    config_version=version,
                )
            )
            if taken:
                self._open.append(self._trade(k, version))
        if signals:
            self.ledger.upsert_signals(signals)
        closed = [t for t in self._open if t.close_at <= t1]
        if closed:
            self._open = [t for t in self._open if t.close_at > t1]
            self.ledger.upsert_trades(closed)
        self.now = t1
        record = run_cycle(self.store, self.ledger, self.config, self.now)
        self.records.append(record)
        self.knob_log.append((t1, self._lkg(), float(self.store.current_values()[KNOB])))
        return record

    def _feed_candles(self, until: datetime) -> None:
        from autolearn.backtest.candles import Candles

        c = self.market.candles
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        limit = (until - epoch) // timedelta(microseconds=1) - 60_000_000  # bars closed by then
        end = self._next_bar
        while end < len(c.time_us) and c.time_us[end] <= limit:
            end += 1
        if end > self._next_bar:
            part = slice(self._next_bar, end)
            self.ledger.upsert_candles(
                Candles(
                    instrument=c.instrument,
                    timeframe_s=c.timeframe_s,
                    time_us=c.time_us[part],
                    open=c.open[part],
                    high=c.high[part],
                    low=c.low[part],
                    close=c.close[part],
                    volume=c.volume[part],
                    source=c.source,
                    spread_pips=None if c.spread_pips is None else c.spread_pips[part],
                )
            )
            self._next_bar = end

    def _trade(self, k: int, version: str) -> Trade:
        m = self.market
        pips = round(m.pips[k], 3)
        sign = 1 if m.side[k] is Side.LONG else -1
        return Trade(
            broker_trade_id=f"T{k}",
            close_tx_id=f"C{k}",
            instrument="USD_JPY",
            pocket="micro",
            strategy="MomentumPulse",
            side=m.side[k],
            units=1000,
            entry_price=m.price[k],
            close_price=m.price[k] + sign * pips * 0.01,
            entry_at=m.at[k],
            close_at=max(m.close_at[k], m.at[k] + timedelta(seconds=1)),
            pl_pips=pips,
            pl_account=pips * 10.0,
            config_version=version,
        )

    def _lkg(self) -> float:
        doc = self.store.read_mechanism("tuner")
        fam = (doc.get("families") or {}).get("micro.entry") or {}
        return float((fam.get("lkg_values") or {}).get(KNOB, PRESET))


@dataclass(frozen=True, slots=True, kw_only=True)
class CfOutcome:
    """What one seed of a counterfactual scenario did in ``scenario.days``."""

    seed: int
    best: float | None
    final_live: float  # the knob's value (LKG arm) at the end
    final_lkg: float
    reached: bool  # the LKG came within one grid step of the best value
    applied: list[tuple[float, float]]  # (before, after) of each applied move
    worse_applied: int  # applied moves the truth says lose P/L
    cf_not_improving: int  # applied moves whose recorded evidence was not a confirmed gain
    decisions: dict[str, int]
    reasons: dict[str, int]


def run_cf_scenario(
    scenario: CfScenario, seed: int, root: Path, config: TunerConfig | None = None
) -> CfOutcome:
    """Run one seed of ``scenario`` for ``scenario.days`` through the real tuner cycle."""
    from autolearn.core.apply_guard import ApplyKind
    from autolearn.core.knobs import Owner

    store = StateStore(root / "state", load_registry(None))
    ledger = SqlLedger.open(f"sqlite:///{root / 'ledger.db'}")
    # One operator switch set before the start: the store then has an effective.json (without
    # one it scans the whole history on every read, quadratic over a simulated month).
    store.apply(
        Owner.OPERATOR,
        {"gates.stage.enabled": False},
        START - timedelta(days=1),
        kind=ApplyKind.APPLY,
    )
    bot = CfBot(store, ledger, config or TunerConfig(), make_market(scenario, seed), scenario)
    try:
        for _ in range(scenario.days * 1440 // scenario.minutes):
            bot.step()
    finally:
        ledger.close()
    return _cf_outcome(scenario, seed, bot)


def _cf_outcome(scenario: CfScenario, seed: int, bot: CfBot) -> CfOutcome:
    spec = bot.store.registry.spec(KNOB)
    step = spec.step or 0.01
    grid = [round(float(spec.lower or 0) + k * step, 6) for k in range(21)]
    best = scenario.best_value(grid)
    applied: list[tuple[float, float]] = []
    worse = not_improving = 0
    decisions: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for r in bot.records:
        decisions[r["decision"]] = decisions.get(r["decision"], 0) + 1
        for reason in r.get("reasons", ()):
            code = reason.rsplit(":", 1)[-1]  # micro.entry:promote:cf_confirmed -> cf_confirmed
            reasons[code] = reasons.get(code, 0) + 1
        if r["decision"] != "apply" or not r.get("applied"):
            continue
        for d in r.get("diff", ()):
            if d["knob"] != KNOB:
                continue
            applied.append((float(d["before"]), float(d["after"])))
            if scenario.expected_gain(float(d["after"]), float(d["before"])) < 0:
                worse += 1
            entry: dict[str, Any] = next(
                (c for c in r.get("considered", ()) if c["knob"] == KNOB), {}
            )
            evidence = entry.get("counterfactual") or {}
            if entry.get("rule") != "cf_improves" or not (evidence.get("low") or 0) > 0:
                not_improving += 1
    final_lkg = bot.knob_log[-1][1] if bot.knob_log else PRESET
    final_live = bot.knob_log[-1][2] if bot.knob_log else PRESET
    reached = best is not None and any(abs(lkg - best) <= step + 1e-9 for _, lkg, _ in bot.knob_log)
    return CfOutcome(
        seed=seed,
        best=best,
        final_live=final_live,
        final_lkg=final_lkg,
        reached=reached,
        applied=applied,
        worse_applied=worse,
        cf_not_improving=not_improving,
        decisions=decisions,
        reasons=reasons,
    )
