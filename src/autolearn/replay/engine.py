"""The closed-loop replay: candles -> strategies -> gates -> paper broker -> ledger -> mechanisms.

An imperative shell around the production code on a simulated clock. Per bar ``i``:

1. mechanism cycles due at or before the bar's open run (weekend gaps included: the timers of
   a real VM keep firing while the market is closed);
2. entries decided at bar ``i - 1``'s close fill at the open, pinned to the config version their
   unit saw at the decision (``Tuning.arm(unit).version``); reverse signals close at the open;
3. the broker resolves SL / TP inside the bar and the exits at its close; every closed trade is
   written to the ledger at once (the bot's writer API), with its exit reason, regime labels at
   entry and config version;
4. cycles due at or before the bar's close run (``run_cycle(store, ledger, config, now)``, the
   same objects and code as production, each at its production cadence from
   ``ops.schedules``), after the signals logged so far and the bars complete by then reached
   the ledger (as a live bot's signal log and candle ingest would hold them); a cycle that
   applied makes the runtime reader re-read the state;
5. each strategy decides at the close with its knobs read through ``Tuning`` for the candidate
   entry's unit (strategy and bar: a change in flight reaches only its concurrent arm) and asks
   ``Gates.check_entry(..., now=bar close)`` (the gates' refresh clock is the simulated one);
   a denied entry becomes a shadow position whose outcome is written as a shadow signal (the
   evidence that lets a blocked pocket recover).

The signal log (issue 12): every candidate entry a strategy evaluated at a bar's close becomes
one ``EntrySignal``, taken or not. A strategy with an entry-threshold knob computes its
candidates at the loosest value the registry allows (``lower`` for ``admits: above``) and each
is admitted by its score against the arm's value, so the log holds every signal a value in range
could admit while entries stay exactly what the current value admits. A candidate that is not
taken says why, in the order the loop checks: ``threshold``, ``position_open`` (one position per
strategy), ``reentry_block``, ``gate:<first blocking code>`` or ``size_zero`` (allowed at a size
that rounds to no unit); a taken one names the trade it opened (``broker_trade_id``, known at the
fill). Signals go to the ledger in batches (``upsert_signals``), the last one before the summary.
A shadow signal carries its candidate's signal-log id, so the ledger's copy of shadow signals
into the log (which has no scores) lands on the replay's own row instead of duplicating it.

Nothing in the mechanisms knows it is a replay. Determinism: no randomness, no wall clock in
any artifact (ledger ``ingested_at`` and record ``run_id`` come from simulated time), fixed
iteration orders. The run's files are written in a scratch directory (on a RAM disk when there
is one: every state write is fsync'ed for durability, which a replay does not need until the
end) and moved to ``<out>/<run>/`` at the end: ``ledger.db``, ``state/``, ``summary.json``.
"""

from __future__ import annotations

import heapq
import json
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from autolearn.adapters.history import RotationPolicy
from autolearn.adapters.state import StateStore
from autolearn.backtest._parsers import OANDA_GRANULARITY_S
from autolearn.backtest.candles import Candles
from autolearn.core.knobs import KnobValue
from autolearn.core.model import EntrySignal, ShadowSignal, Side, Trade
from autolearn.core.registry import Registry
from autolearn.core.timestamps import format_utc, from_epoch_us
from autolearn.errors import ConfigError
from autolearn.gates.api import Gates
from autolearn.gates.config import GatesConfig, load_gates_config
from autolearn.gates.model import OpenPosition
from autolearn.ledger.sql import SqlLedger
from autolearn.ops.schedules import SCHEDULES
from autolearn.replay.broker import BROKER_REASON, ExitCode, Fill, PaperBroker
from autolearn.replay.ledger import CachedLedger
from autolearn.replay.regime import MACRO_LABELS, MICRO_LABELS
from autolearn.replay.strategies import (
    REFERENCE_STRATEGIES,
    Candidates,
    Features,
    RefStrategy,
    admits,
    micro_units_factor,
)
from autolearn.replay.summary import summarize_run
from autolearn.runtime import Tuning

__all__ = ["KNOWN_MECHANISMS", "ReplayConfig", "ReplayOutcome", "run_replay", "slice_candles"]

# Mechanisms the replay can drive, in the order they run when due at the same instant.
KNOWN_MECHANISMS = ("policy", "tuner", "scalp_trainer")
_US = 1_000_000
_SIGNAL_BATCH = 5_000  # signals per upsert: few transactions, bounded memory
_KEEP_ALL = timedelta(days=365_000)  # a replay's history never expires (_Replay.__init__)
# bar length (s) -> OANDA's granularity name, under which the run's candles are stored
_GRANULARITY = {seconds: name for name, seconds in OANDA_GRANULARITY_S.items()}

Progress = Callable[[int, int], None]
CycleFn = Callable[[datetime, str], dict[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayConfig:
    """What to replay and how. ``mechanisms=()`` is the static run (auto-learning off)."""

    mechanisms: tuple[str, ...] = KNOWN_MECHANISMS
    spread_pips: float = 0.8
    units: int = 10_000
    account_currency: str = "USD"
    gates_config: Path | None = None  # the bot's tracked gates.yaml (None: packaged defaults)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.mechanisms) - set(KNOWN_MECHANISMS))
        if unknown:
            raise ConfigError(f"unknown mechanisms {unknown}; known: {', '.join(KNOWN_MECHANISMS)}")
        if not (self.spread_pips >= 0 and self.units > 0):
            raise ConfigError(
                f"spread_pips must be >= 0 and units > 0, got {self.spread_pips}, {self.units}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayOutcome:
    """Where the run's artifacts are, its summary, and its speed (wall clock: not persisted
    in ``summary.json``)."""

    run_dir: Path
    summary: dict[str, Any]
    wall_s: float
    bars_per_s: float
    cycle_ms: dict[str, float]


@dataclass(slots=True)
class _Pending:
    strategy: RefStrategy
    side: int
    shadow: bool
    decided_bar: int
    units: int
    reasons: tuple[str, ...]
    version: str  # the version the entry's unit saw (its arm), pinned on the trade
    knobs: Mapping[str, KnobValue]
    signal: EntrySignal  # its log row: a taken one is completed (trade id) at the fill


@dataclass(slots=True)
class _Counters:
    denials: Counter[str] = field(default_factory=Counter)
    denials_by_hour: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    cycle_s: dict[str, float] = field(default_factory=dict)
    cycles: Counter[str] = field(default_factory=Counter)
    signals: Counter[str] = field(default_factory=Counter)  # taken / not_taken code
    trades: int = 0
    shadows: int = 0


def _account_factor(instrument: str, account: str, exit_price: float) -> float:
    base, _, quote = instrument.partition("_")
    if quote == account:
        return 1.0
    if base == account:
        return 1.0 / exit_price
    raise ConfigError(
        f"cannot convert {quote} P/L of {instrument} to {account}: replay an instrument quoted "
        f"in or based on the account currency (a cross pair such as GBP_JPY or EUR_GBP needs a "
        f"conversion series, which the replay does not take)"
    )


def _check_account_currency(instrument: str, account: str) -> None:
    """Refuse a cross pair before the replay starts, not at its first close (~30 s in)."""
    _account_factor(instrument, account, 1.0)


def _loosest_values(strategies: Sequence[RefStrategy], registry: Registry) -> dict[str, float]:
    """Per strategy with a threshold, the loosest value its knob may take (from the registry).

    Raises:
        ConfigError: the registry does not know the knob, or its ``score``/``admits`` disagree
            with what the strategy compares (the log would name the wrong score).
    """
    out: dict[str, float] = {}
    for strat in strategies:
        t = strat.threshold
        if t is None:
            continue
        spec = registry.knobs.get(t.knob)
        if spec is None or spec.lower is None or spec.upper is None:
            raise ConfigError(
                f"registry {registry.source}: strategy {strat.name} compares its score "
                f"{t.score!r} with knob {t.knob}, which is not registered as a numeric knob"
            )
        if (spec.score, spec.admits) != (t.score, t.admits):
            raise ConfigError(
                f"registry {registry.source}: knob {t.knob} says score {spec.score!r} admits "
                f"{spec.admits!r}, but {strat.name} compares {t.score!r} admits {t.admits!r}; "
                "set score/admits in the registry to what the strategy compares"
            )
        out[strat.name] = float(spec.lower if t.admits == "above" else spec.upper)
    return out


def _scratch_dir() -> Path:
    # A private mkdtemp directory (mode 0700, unique name), so a shared RAM disk is safe.
    shm = Path("/dev/shm")  # noqa: S108
    parent = shm if shm.is_dir() else None
    return Path(tempfile.mkdtemp(prefix="autolearn-replay-", dir=parent))


class _Replay:
    """One run's mutable world (see the module docstring for the order inside a bar)."""

    def __init__(
        self, candles: Candles, work: Path, registry: Registry, config: ReplayConfig
    ) -> None:
        self.c = candles
        self.config = config
        self.registry = registry
        self.tf_us = candles.timeframe_s * _US
        self.now_s = float(candles.time_us[0]) / _US if len(candles) else 0.0
        self.epoch = 0  # bumped after a cycle applied: the runtime reader then re-reads
        start = from_epoch_us(int(candles.time_us[0]))
        self.sql = SqlLedger.open(
            f"sqlite:///{work / 'ledger.db'}", clock=self._now_dt, ledger_id="replay"
        )
        self.ledger = CachedLedger(self.sql)
        # A replay's history is its audit trail, read whole by its summary and report: rotated
        # like a live one (bounded reads), but never expired by the live retention.
        self.store = StateStore(
            work / "state", registry, history_policy=RotationPolicy(retention=_KEEP_ALL)
        )
        self.tuning = Tuning(work / "state", registry, refresh_s=0.5, clock=lambda: self.epoch)
        gates_cfg: GatesConfig = load_gates_config(config.gates_config)
        self.gates = Gates(
            ledger=self.ledger, config=gates_cfg, knobs=self.tuning.get, clock=lambda: self.now_s
        )
        self.features = Features.of(candles)
        self.broker = PaperBroker(candles, config.spread_pips)
        self.strategies: Sequence[RefStrategy] = REFERENCE_STRATEGIES
        self.loosest = _loosest_values(self.strategies, registry)
        self.signal_cache: dict[tuple[str, tuple[KnobValue, ...]], Candidates] = {}
        self.signal_log: list[EntrySignal] = []
        self.candles_stored = 0  # bars [0, candles_stored) are in the ledger
        # (strategy, version) -> its knobs and candidates: a version is a content address, so
        # this never stales
        self.knobs_of: dict[tuple[str, str], tuple[dict[str, KnobValue], Candidates]] = {}
        self.last_exit_us: dict[str, int] = {}
        self.pending: list[_Pending] = []
        self.reverse: list[str] = []
        self.seq = 0
        self.count = _Counters()
        self.cycles = self._cycles(config.mechanisms, gates_cfg)
        self.queue: list[tuple[int, int, str]] = []
        for order, name in enumerate(KNOWN_MECHANISMS):
            if name in self.cycles:
                cadence_us = int(SCHEDULES[name].cadence.total_seconds()) * _US
                first = -(-int(candles.time_us[0]) // cadence_us) * cadence_us
                heapq.heappush(self.queue, (first, order, name))
        self.cadence_us = {
            name: int(SCHEDULES[name].cadence.total_seconds()) * _US for name in self.cycles
        }
        self.start = start

    def _now_dt(self) -> datetime:
        return datetime.fromtimestamp(self.now_s, UTC)

    # -- mechanisms --------------------------------------------------------------------------
    def _cycles(self, names: Sequence[str], gates_cfg: GatesConfig) -> dict[str, CycleFn]:
        out: dict[str, CycleFn] = {}
        if "tuner" in names:
            from autolearn.tuner import TunerConfig
            from autolearn.tuner import run_cycle as tune

            tuner_cfg = TunerConfig()
            out["tuner"] = lambda now, rid: tune(
                self.store, self.ledger, tuner_cfg, now, run_id=rid
            )
        if "policy" in names:
            from autolearn.policy.cycle import run_policy

            out["policy"] = lambda now, rid: run_policy(
                ledger=self.ledger, store=self.store, config=gates_cfg, now=now, run_id=rid
            )
        if "scalp_trainer" in names:
            from autolearn.scalp_trainer import ScalpTrainerConfig
            from autolearn.scalp_trainer import run_cycle as train

            scalp_cfg = ScalpTrainerConfig()
            out["scalp_trainer"] = lambda now, rid: train(
                self.store, self.ledger, scalp_cfg, now, run_id=rid
            )
        return out

    def run_due(self, until_us: int) -> None:
        if self.queue and self.queue[0][0] <= until_us:
            # what a live bot's ledger holds by now: its signals and the complete bars
            self.flush_signals()
            self._store_candles(until_us)
        while self.queue and self.queue[0][0] <= until_us:
            due, order, name = heapq.heappop(self.queue)
            now = from_epoch_us(due)
            self.now_s = due / _US
            started = time.perf_counter()
            record = self.cycles[name](now, f"replay-{name}-{format_utc(now)}")
            spent = time.perf_counter() - started
            self.count.cycle_s[name] = self.count.cycle_s.get(name, 0.0) + spent
            self.count.cycles[name] += 1
            if record.get("applied"):
                self.epoch += 1
            heapq.heappush(self.queue, (due + self.cadence_us[name], order, name))

    def _store_candles(self, now_us: int) -> None:
        """Write the bars complete at ``now_us`` not yet in the ledger (at the broker's spread).

        Progressively, as a live candle ingest would: a bar reaches the ledger after its close,
        so a mechanism reading candles never sees one from its future.
        """
        granularity = _GRANULARITY.get(self.c.timeframe_s)
        if granularity is None:
            return  # no OANDA name for this bar length: a reader would not ask for it
        hi = int(np.searchsorted(self.c.time_us, now_us - self.tf_us, side="right"))
        if hi > self.candles_stored:
            bars = _bars(self.c, self.candles_stored, hi, self.config.spread_pips)
            self.ledger.upsert_candles(bars, granularity=granularity)
            self.candles_stored = hi

    # -- strategies --------------------------------------------------------------------------
    def _unit_view(
        self, strat: RefStrategy, i: int
    ) -> tuple[str, dict[str, KnobValue], Candidates]:
        """What the entry a strategy evaluates at bar ``i`` sees: version, knobs, candidates.

        The unit is the candidate entry (strategy and bar), so a change in flight reaches only
        its concurrent arm, as in a live bot passing its signal id to ``Tuning.arm``. The
        candidates of a strategy with a threshold are those of its loosest value (cached
        without the threshold's own value, which only admits among them).
        """
        unit = f"{strat.name}@{i}"
        version = self.tuning.version_for(unit)
        known = self.knobs_of.get((strat.name, version))
        if known is not None:  # the usual case: a version's knobs and candidates never change
            return version, known[0], known[1]
        knobs = {k: self.tuning.get(k, unit=unit) for k in strat.knobs}
        loose = knobs
        if strat.threshold is not None:
            loose = knobs | {strat.threshold.knob: self.loosest[strat.name]}
        key = (strat.name, tuple(loose[k] for k in strat.knobs))
        found = self.signal_cache.get(key)
        if found is None:
            found = self.signal_cache[key] = strat.candidates(self.features, loose)
        self.knobs_of[(strat.name, version)] = (knobs, found)
        return version, knobs, found

    def decide(self, i: int) -> None:
        now = from_epoch_us(int(self.c.time_us[i]) + self.tf_us)
        price = float(self.c.close[i])
        for strat in self.strategies:
            version, knobs, cand = self._unit_view(strat, i)
            sig = int(cand.side[i])
            if sig == 0:
                continue
            signal = self._signal(strat, i, sig, now, price, version, knobs, cand)
            t = strat.threshold
            if t is not None and not admits(signal.scores[t.score], float(knobs[t.knob]), t.admits):
                self._log(signal, "threshold")
                continue
            pos = self.broker.get(strat.name)
            shadow = self.broker.get("S:" + strat.name)
            if shadow is not None and shadow.exits.exit_on_signal and sig == -shadow.side:
                self.reverse.append(shadow.key)
                shadow = None
            if pos is not None:
                if not (pos.exits.exit_on_signal and sig == -pos.side):
                    # one position per strategy: same-direction signals are ignored
                    self._log(signal, "position_open")
                    continue
                self.reverse.append(pos.key)
            block_s = strat.reentry_block_s(knobs)
            last = self.last_exit_us.get(strat.name)
            if block_s > 0 and last is not None and now.timestamp() * _US - last < block_s * _US:
                self.count.skipped["reentry_block_s"] += 1
                self._log(signal, "reentry_block")
                continue
            self._ask_gates(strat, sig, i, now, price, version, knobs, shadow is None, signal)

    def _signal(
        self,
        strat: RefStrategy,
        i: int,
        sig: int,
        now: datetime,
        price: float,
        version: str,
        knobs: Mapping[str, KnobValue],
        cand: Candidates,
    ) -> EntrySignal:
        """The log row of the candidate ``strat`` evaluated at bar ``i`` (taken, no trade yet)."""
        exits = strat.exits(self.features, i, knobs)
        timeout_s = exits.timeout_bars * self.c.timeframe_s
        return EntrySignal(
            signal_id=f"{self.c.instrument}:{strat.name}@{format_utc(now)}",
            at=now,
            instrument=self.c.instrument,
            pocket=strat.pocket,
            strategy=strat.name,
            side=Side.LONG if sig > 0 else Side.SHORT,
            price=price,
            sl_pips=exits.sl_pips or None,
            tp_pips=exits.tp_pips or None,
            timeout_s=float(timeout_s) if timeout_s > 0 else None,
            scores={name: float(values[i]) for name, values in cand.scores.items()},
            unit_id=f"{strat.name}@{i}",
            taken=True,
            config_version=version,
        )

    def _log(self, signal: EntrySignal, not_taken: str = "") -> None:
        """Queue ``signal`` for the ledger (``not_taken`` non-empty: as not taken, that code)."""
        if not_taken:
            signal = replace(signal, taken=False, not_taken=not_taken)
        self.signal_log.append(signal)
        self.count.signals[not_taken or "taken"] += 1
        if len(self.signal_log) >= _SIGNAL_BATCH:
            self.flush_signals()

    def flush_signals(self) -> None:
        """Write the queued signals to the ledger in one batch."""
        if self.signal_log:
            self.ledger.upsert_signals(self.signal_log)
            self.signal_log = []

    def _ask_gates(
        self,
        strat: RefStrategy,
        sig: int,
        i: int,
        now: datetime,
        price: float,
        version: str,
        knobs: Mapping[str, KnobValue],
        may_shadow: bool,
        signal: EntrySignal,
    ) -> None:
        side = Side.LONG if sig > 0 else Side.SHORT
        open_positions = [
            OpenPosition(
                strategy=p.strategy,
                pocket=str(p.tags["pocket"]),
                side=Side.LONG if p.side > 0 else Side.SHORT,
                units=p.units,
                entry_price=p.entry_price,
                instrument=self.c.instrument,
            )
            for p in self.broker
            if not p.key.startswith("S:") and p.key not in self.reverse
        ]
        verdict = self.gates.check_entry(strat.name, strat.pocket, side, price, now, open_positions)
        units = float(self.config.units) * verdict.size_multiplier
        if strat.pocket == "micro":
            units *= micro_units_factor(knobs, int(self.features.regime_micro[i]))
        if verdict.allowed and round(units) >= 1:
            self.pending.append(
                _Pending(strat, sig, False, i, round(units), (), version, knobs, signal)
            )
            return
        codes = verdict.blocking_codes or ("size_zero",)
        self._log(signal, f"gate:{codes[0]}" if verdict.blocking_codes else "size_zero")
        self.count.denials[codes[0]] += 1
        hour = format_utc(from_epoch_us(int(self.c.time_us[i]) // 3_600_000_000 * 3_600_000_000))
        self.count.denials_by_hour[(hour, strat.pocket, codes[0])] += 1
        if may_shadow:
            self.pending.append(
                _Pending(strat, sig, True, i, self.config.units, codes, version, knobs, signal)
            )

    # -- the broker ------------------------------------------------------------------------
    def fill_open(self, i: int) -> None:
        fills = [self.broker.close_at_open(key, i) for key in self.reverse if self.broker.get(key)]
        self.reverse = []
        self._record(fills)
        for p in self.pending:
            key = ("S:" if p.shadow else "") + p.strategy.name
            if self.broker.get(key) is not None:
                if not p.shadow:
                    self._log(p.signal, "position_open")
                continue
            self.seq += 1
            if not p.shadow:  # a shadow's signal was logged (not taken) at the decision
                self._log(replace(p.signal, broker_trade_id=f"T{self.seq:07d}"))
            d = p.decided_bar
            self.broker.open(
                key=key,
                strategy=p.strategy.name,
                side=p.side,
                bar=i,
                units=p.units,
                exits=p.strategy.exits(self.features, d, p.knobs),
                pocket=p.strategy.pocket,
                seq=self.seq,
                version=p.version,
                regime_micro=MICRO_LABELS[int(self.features.regime_micro[d])],
                regime_macro=MACRO_LABELS[int(self.features.regime_macro[d])],
                reasons=p.reasons,
                signal_id=p.signal.signal_id,
            )
        self.pending = []

    def _record(self, fills: Sequence[Fill]) -> None:
        trades: list[Trade] = []
        signals: list[ShadowSignal] = []
        c = self.c
        for f in fills:
            pos = f.position
            pips = pos.side * (f.exit_price - pos.entry_price) / c.pip
            tags = pos.tags
            entry_at = from_epoch_us(int(c.time_us[pos.entry_bar]))
            close_at = from_epoch_us(f.exit_time_us)
            ident = f"{int(tags['seq']):07d}"
            if pos.key.startswith("S:"):
                signals.append(
                    ShadowSignal(
                        # the id of its signal-log row, so the ledger's mirror of shadow signals
                        # into the log (no scores) never duplicates the replay's own row
                        signal_id=str(tags["signal_id"]),
                        at=entry_at,
                        instrument=c.instrument,
                        pocket=str(tags["pocket"]),
                        strategy=pos.strategy,
                        side=Side.LONG if pos.side > 0 else Side.SHORT,
                        price=pos.entry_price,
                        sl_pips=pos.exits.sl_pips or None,
                        tp_pips=pos.exits.tp_pips or None,
                        config_version=str(tags["version"]),
                        reason=",".join(tags["reasons"]),
                        outcome_pips=pips,
                        outcome_at=close_at,
                    )
                )
                continue
            self.last_exit_us[pos.strategy] = f.exit_time_us
            move = pos.side * (f.exit_price - pos.entry_price) * pos.units
            factor = _account_factor(c.instrument, self.config.account_currency, f.exit_price)
            trades.append(
                Trade(
                    broker_trade_id=f"T{ident}",
                    close_tx_id=f"T{ident}-close",
                    instrument=c.instrument,
                    pocket=str(tags["pocket"]),
                    strategy=pos.strategy,
                    side=Side.LONG if pos.side > 0 else Side.SHORT,
                    units=pos.units,
                    entry_price=pos.entry_price,
                    close_price=f.exit_price,
                    entry_at=entry_at,
                    close_at=close_at,
                    pl_pips=pips,
                    pl_account=move * factor,
                    broker_close_reason=BROKER_REASON.get(f.reason, "MARKET_ORDER_TRADE_CLOSE"),
                    exit_reason=f.reason.value,
                    regime_macro=str(tags["regime_macro"]),
                    regime_micro=str(tags["regime_micro"]),
                    config_version=str(tags["version"]),
                    client_order_id=f"replay-{pos.strategy}-{ident}",
                    source="replay",
                )
            )
        if trades:
            self.ledger.upsert_trades(trades)
            self.count.trades += len(trades)
        if signals:
            self.ledger.upsert_shadow_signals(signals)
            self.count.shadows += len(signals)

    # -- the loop ----------------------------------------------------------------------------
    def run(self, progress: Progress | None) -> None:
        n = len(self.c)
        time_us = self.c.time_us
        for i in range(n):
            open_us = int(time_us[i])
            self.now_s = open_us / _US
            self.run_due(open_us)
            self.now_s = open_us / _US
            self.fill_open(i)
            close_us = open_us + self.tf_us
            self.now_s = close_us / _US
            fills = self.broker.step(i)
            if i == n - 1:
                fills.extend(self.broker.close_all(i, ExitCode.END))
                self.pending = []  # none: no decision is made at the last bar
            self._record(fills)
            if i == n - 1:
                break
            self.run_due(close_us)
            self.now_s = close_us / _US
            self.decide(i)
            if progress is not None and (i % 1000 == 0):
                progress(i, n)
        self.flush_signals()
        if progress is not None:
            progress(n, n)

    def close(self) -> None:
        self.ledger.close()  # writes what the cache holds behind, then closes the SQL ledger


def run_replay(
    candles: Candles,
    run_dir: Path,
    config: ReplayConfig,
    registry: Registry,
    *,
    progress: Progress | None = None,
) -> ReplayOutcome:
    """Replay ``candles`` through the closed loop; artifacts end up in ``run_dir`` (replaced)."""
    if len(candles) < 2:
        raise ConfigError(f"a replay needs at least 2 bars, got {len(candles)}")
    _check_account_currency(candles.instrument, config.account_currency)
    work = _scratch_dir()
    started = time.perf_counter()
    try:
        world = _Replay(candles, work, registry, config)
        try:
            world.run(progress)
            counts = world.count
            extra = {
                "gate_denials": dict(sorted(counts.denials.items())),
                "gate_denials_by_hour": [
                    [h, p, code, k] for (h, p, code), k in sorted(counts.denials_by_hour.items())
                ],
                "skipped_entries": dict(sorted(counts.skipped.items())),
                "shadow_signals": counts.shadows,
                "signal_log": dict(sorted(counts.signals.items())),
                "cycles": dict(sorted(counts.cycles.items())),
            }
            summary = summarize_run(
                ledger=world.ledger,
                store=world.store,
                candles=candles,
                config={
                    "mechanisms": list(config.mechanisms),
                    "static": not config.mechanisms,
                    "spread_pips": config.spread_pips,
                    "units": config.units,
                    "account_currency": config.account_currency,
                },
                extra=extra,
            )
            cycle_ms = {
                k: 1000.0 * counts.cycle_s.get(k, 0.0) / max(counts.cycles[k], 1)
                for k in counts.cycles
            }
        finally:
            world.close()
        (work / "summary.json").write_text(
            json.dumps(summary, indent=1, sort_keys=True) + "\n", encoding="utf-8"
        )
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(work, run_dir)
        run_dir.chmod(0o755)  # the scratch dir was private (mkdtemp); the artifacts are not
    finally:
        shutil.rmtree(work, ignore_errors=True)
    wall = time.perf_counter() - started
    return ReplayOutcome(
        run_dir=run_dir,
        summary=summary,
        wall_s=wall,
        bars_per_s=len(candles) / wall if wall > 0 else float("inf"),
        cycle_ms=cycle_ms,
    )


def slice_candles(candles: Candles, start: datetime | None, end: datetime | None) -> Candles:
    """The bars with ``start <= open time < end`` (either bound optional)."""
    t = candles.time_us
    lo = 0 if start is None else int(np.searchsorted(t, int(start.timestamp() * _US)))
    hi = len(t) if end is None else int(np.searchsorted(t, int(end.timestamp() * _US)))
    return _bars(candles, lo, hi)


def _bars(candles: Candles, lo: int, hi: int, spread_pips: float | None = None) -> Candles:
    """Bars ``lo:hi`` of ``candles``; ``spread_pips`` (when given) replaces their spread."""
    spread = None if candles.spread_pips is None else candles.spread_pips[lo:hi]
    if spread_pips is not None:
        spread = np.full(len(candles.time_us[lo:hi]), spread_pips)  # the slice only, not all
    return Candles(
        instrument=candles.instrument,
        timeframe_s=candles.timeframe_s,
        time_us=candles.time_us[lo:hi],
        open=candles.open[lo:hi],
        high=candles.high[lo:hi],
        low=candles.low[lo:hi],
        close=candles.close[lo:hi],
        volume=candles.volume[lo:hi],
        source=candles.source,
        spread_pips=spread,
    )
