"""Why learning won (or lost): the P/L difference of two replays, split by the decisions that
made it.

Pure: trades, records and shadow signals in, frozen rows out (no I/O, no clock, no plotly).
The learning and the static replay run the same strategies on the same candles, so a trade is
*the same entry* in both when its ``(pocket, strategy, side, entry_at)`` matches. Every trade of
either run falls in exactly one bucket:

* **admitted**: only the learning run entered it (a change let it in, or freed a position);
* **denied**: only the static run entered it (a block or a change kept it out): its static
  P/L is what learning forwent, a loss avoided when negative;
* **changed**: both entered it and the P/L differs (an exit knob moved);
* same entry and same P/L: no effect, not counted.

Each bucketed trade is charged to one cause, found in this order: a policy block of its scope
open at its entry (*direct*); else the newest applied change before its entry whose knobs name
its pocket or strategy (*direct*); else the newest applied change before its entry (*indirect*:
a knock-on effect such as a freed position); else ``none`` (nothing had changed yet). So the
effects of all causes add up to learning net minus static net, exactly (a tested invariant).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from autolearn.core.model import ShadowSignal, Trade
from autolearn.core.run_record import RunRecord

__all__ = [
    "BlockEffect",
    "BlockInterval",
    "Cause",
    "CauseEffect",
    "PnlRow",
    "attribute",
    "block_effects",
    "block_intervals",
    "pnl_by",
]

NONE_CAUSE = "none"


@dataclass(frozen=True, slots=True, kw_only=True)
class PnlRow:
    """One pocket's (or strategy's) trades and net P/L (account currency) in both runs."""

    key: str
    learning_trades: int
    learning_net: float
    static_trades: int
    static_net: float

    @property
    def difference(self) -> float:
        return self.learning_net - self.static_net


def pnl_by(field: str, learning: Sequence[Trade], static: Sequence[Trade]) -> list[PnlRow]:
    """Net P/L per ``field`` (``"pocket"`` or ``"strategy"``) of both runs, sorted by key."""
    if field not in ("pocket", "strategy"):
        raise ValueError(f"field must be 'pocket' or 'strategy', got {field!r}")
    sums: dict[str, list[float]] = {}
    for index, trades in ((0, learning), (2, static)):
        for t in trades:
            row = sums.setdefault(str(getattr(t, field)), [0, 0.0, 0, 0.0])
            row[index] += 1
            row[index + 1] += t.pl_account
    return [
        PnlRow(
            key=key,
            learning_trades=int(v[0]),
            learning_net=v[1],
            static_trades=int(v[2]),
            static_net=v[3],
        )
        for key, v in sorted(sums.items())
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockInterval:
    """A scope (``micro`` or ``micro/BB_RSI_Fast``) the policy held non-active, and why."""

    scope: str
    start: datetime
    stop: datetime
    status: str  # blocked | probation
    code: str

    def covers(self, pocket: str, strategy: str, at: datetime) -> bool:
        """Whether an entry of ``pocket``/``strategy`` at ``at`` fell under this block."""
        if not (self.start <= at < self.stop) or self.status != "blocked":
            return False
        scope_pocket, _, scope_strategy = self.scope.partition("/")
        return scope_pocket == pocket and scope_strategy in ("", strategy)


def block_intervals(records: Sequence[RunRecord], end: datetime) -> list[BlockInterval]:
    """Every non-active status the policy set, from its transition to the next (or ``end``)."""
    open_: dict[str, tuple[datetime, str, str]] = {}
    out: list[BlockInterval] = []
    for r in records:
        if r.at is None or r.mechanism != "policy" or not r.applied:
            continue
        for t in r.extra.get("transitions") or ():  # the policy's own field
            scope = str(t.get("scope"))
            if scope in open_:
                start, status, code = open_.pop(scope)
                out.append(
                    BlockInterval(scope=scope, start=start, stop=r.at, status=status, code=code)
                )
            if t.get("to") != "active":
                open_[scope] = (r.at, str(t.get("to")), str(t.get("code")))
    for scope, (start, status, code) in open_.items():
        out.append(BlockInterval(scope=scope, start=start, stop=end, status=status, code=code))
    return sorted(out, key=lambda b: (b.start, b.scope))


@dataclass(frozen=True, slots=True, kw_only=True)
class Cause:
    """What a trade's difference is charged to: a block, a change (by run_id), or none."""

    mechanism: str  # policy | tuner | scalp_trainer | autotune | ... | none
    label: str  # "block micro from ...", "change <run_id>", "none"
    direct: bool  # the cause names the trade's scope; False: a knock-on effect


@dataclass(frozen=True, slots=True, kw_only=True)
class CauseEffect:
    """The trades charged to one cause and what they made (account currency).

    ``effect = admitted_net - denied_net + changed_net``: what the cause added to learning's
    P/L relative to static.
    """

    cause: Cause
    admitted_trades: int = 0
    admitted_net: float = 0.0
    denied_trades: int = 0
    denied_net: float = 0.0  # the static P/L of the entries learning did not take
    changed_trades: int = 0
    changed_net: float = 0.0  # learning minus static P/L of the same entries

    @property
    def effect(self) -> float:
        return self.admitted_net - self.denied_net + self.changed_net


def _key(t: Trade) -> tuple[str, str, str, datetime]:
    return (t.pocket, t.strategy, str(t.side), t.entry_at)


def _names_scope(knob: str, pocket: str, strategy: str) -> bool:
    parts = knob.split(".")
    return pocket in parts or strategy in parts


@dataclass(frozen=True, slots=True)
class _Change:
    at: datetime
    mechanism: str
    run_id: str
    knobs: tuple[str, ...]


def _changes(records: Iterable[RunRecord]) -> list[_Change]:
    out = [
        _Change(r.at, r.mechanism, r.run_id or "?", tuple(d.knob for d in r.diff))
        for r in records
        if r.applied and r.at is not None and r.diff
    ]
    return sorted(out, key=lambda c: c.at)


def _cause_of(
    pocket: str,
    strategy: str,
    entry_at: datetime,
    blocks: Sequence[BlockInterval],
    changes: Sequence[_Change],
) -> Cause:
    for b in blocks:
        if b.covers(pocket, strategy, entry_at):
            return Cause(
                mechanism="policy",
                label=f"block {b.scope} from {b.start:%Y-%m-%d %H:%M} ({b.code})",
                direct=True,
            )
    before = [c for c in changes if c.at <= entry_at]
    for c in reversed(before):
        if any(_names_scope(k, pocket, strategy) for k in c.knobs):
            return Cause(mechanism=c.mechanism, label=f"change {c.run_id}", direct=True)
    if before:
        c = before[-1]
        return Cause(mechanism=c.mechanism, label=f"change {c.run_id}", direct=False)
    return Cause(mechanism=NONE_CAUSE, label=NONE_CAUSE, direct=False)


def attribute(
    learning: Sequence[Trade],
    static: Sequence[Trade],
    records: Sequence[RunRecord],
    end: datetime,
) -> list[CauseEffect]:
    """The learning-minus-static P/L split by cause, largest absolute effect first.

    ``records`` are the learning run's history; ``end`` closes the blocks still open. The
    effects add up to ``sum(learning P/L) - sum(static P/L)``.
    """
    blocks = block_intervals(records, end)
    changes = _changes(records)
    mine: dict[tuple[str, str, str, datetime], list[Trade]] = {}
    theirs: dict[tuple[str, str, str, datetime], list[Trade]] = {}
    for t in learning:
        mine.setdefault(_key(t), []).append(t)
    for t in static:
        theirs.setdefault(_key(t), []).append(t)
    totals: dict[Cause, list[float]] = {}

    def charge(key: tuple[str, str, str, datetime], slot: int, net: float) -> None:
        cause = _cause_of(key[0], key[1], key[3], blocks, changes)
        row = totals.setdefault(cause, [0, 0.0, 0, 0.0, 0, 0.0])
        row[slot] += 1
        row[slot + 1] += net

    for key in sorted(set(mine) | set(theirs), key=lambda k: (k[3], k[0], k[1], k[2])):
        ours = sum(t.pl_account for t in mine.get(key, ()))
        other = sum(t.pl_account for t in theirs.get(key, ()))
        if key not in theirs:
            charge(key, 0, ours)
        elif key not in mine:
            charge(key, 2, other)
        elif ours != other:
            charge(key, 4, ours - other)
    effects = [
        CauseEffect(
            cause=cause,
            admitted_trades=int(v[0]),
            admitted_net=v[1],
            denied_trades=int(v[2]),
            denied_net=v[3],
            changed_trades=int(v[4]),
            changed_net=v[5],
        )
        for cause, v in totals.items()
    ]
    return sorted(effects, key=lambda e: (-abs(e.effect), e.cause.label))


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockEffect:
    """One block and what it cost or saved, by two independent measures.

    ``shadow_*``: the policy's own evidence, the outcomes (pips) of the entries it denied while
    the block held; ``static_*``: the P/L (account currency) the static run made with entries
    of that scope in the same interval. A negative sum means the block saved that much.
    """

    block: BlockInterval
    evidence: str  # the last verdict detail for the scope while blocked (what kept it)
    shadow_signals: int
    shadow_pips: float
    static_trades: int
    static_net: float

    @property
    def saved_account(self) -> float:
        return -self.static_net


def _last_evidence(records: Sequence[RunRecord], block: BlockInterval) -> str:
    found = ""
    for r in records:
        if r.mechanism != "policy" or r.at is None or not (block.start <= r.at < block.stop):
            continue
        scopes = r.verdicts.get("scopes") if isinstance(r.verdicts, Mapping) else None
        entry: Any = scopes.extra.get(block.scope) if scopes is not None else None
        if isinstance(entry, Mapping) and entry.get("detail"):
            found = f"{entry.get('code')}: {entry.get('detail')}"
    return found


def _in_scope(scope: str, pocket: str, strategy: str) -> bool:
    scope_pocket, _, scope_strategy = scope.partition("/")
    return scope_pocket == pocket and scope_strategy in ("", strategy)


def block_effects(
    records: Sequence[RunRecord],
    signals: Sequence[ShadowSignal],
    static: Sequence[Trade],
    end: datetime,
) -> list[BlockEffect]:
    """Every block of the learning run with its evidence, its shadow outcomes and the static
    run's P/L in its scope and interval (probation intervals are left out: entries went on)."""
    out = []
    for b in block_intervals(records, end):
        if b.status != "blocked":
            continue
        denied = [
            s
            for s in signals
            if s.reason.startswith("policy_")
            and b.start <= s.at < b.stop
            and _in_scope(b.scope, s.pocket, s.strategy)
        ]
        outcomes = [s.outcome_pips for s in denied if s.outcome_pips is not None]
        entries = [t for t in static if b.covers(t.pocket, t.strategy, t.entry_at)]
        out.append(
            BlockEffect(
                block=b,
                evidence=_last_evidence(records, b),
                shadow_signals=len(denied),
                shadow_pips=sum(outcomes),
                static_trades=len(entries),
                static_net=sum(t.pl_account for t in entries),
            )
        )
    return out
