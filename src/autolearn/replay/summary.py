"""The figures of one replay run, and the side-by-side comparison of two.

``summarize_run`` reads the run's ledger and history (both written with simulated times only,
so the summary is deterministic); ``comparison_rows`` turns two summaries into the table
``autolearn replay --compare`` prints and the report shows. Every P/L statistic comes from
``autolearn.core.metrics`` (PF and win rate on pips, net and drawdown in pips and account
currency).

Reads through the ``Ledger`` protocol and the state store; decides nothing.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from autolearn.adapters.state import StateStore
from autolearn.backtest.candles import Candles
from autolearn.core.metrics import Units, max_drawdown, pnl, summarize
from autolearn.core.timestamps import format_utc, from_epoch_us
from autolearn.ledger._base import Ledger

__all__ = ["comparison_rows", "mechanism_counts", "summarize_run"]


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def mechanism_counts(records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Applies, promotions, rollbacks, freezes and policy blocks found in run records."""
    out: Counter[str] = Counter()
    for r in records:
        decision = str(r.get("decision", ""))
        if decision == "apply" and r.get("applied"):
            out["applies"] += 1
        elif decision in ("rollback", "revert") and r.get("applied"):
            out["rollbacks"] += 1
        elif decision == "promote":
            out["promotes"] += 1
        elif decision == "freeze":
            out["freezes"] += 1
        for t in r.get("transitions") or ():
            if t.get("to") == "blocked":
                out["policy_blocks"] += 1
    return {k: out[k] for k in ("applies", "promotes", "rollbacks", "freezes", "policy_blocks")}


def summarize_run(
    *,
    ledger: Ledger,
    store: StateStore,
    candles: Candles,
    config: Mapping[str, Any],
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """The run's summary (JSON-ready, deterministic)."""
    trades = ledger.trades()
    pips = summarize(pnl(trades))
    account = summarize(pnl(trades, Units.ACCOUNT))
    records = store.history.read().records
    decisions: dict[str, Counter[str]] = {}
    for r in records:
        decisions.setdefault(str(r.get("mechanism")), Counter())[str(r.get("decision"))] += 1
    by_pocket: dict[str, dict[str, Any]] = {}
    for pocket in sorted({t.pocket for t in trades}):
        mine = [t for t in trades if t.pocket == pocket]
        s = summarize(pnl(mine))
        by_pocket[pocket] = {"trades": s.n, "net_pips": s.net, "win_rate": _finite(s.win_rate)}
    by_exit = Counter(t.exit_reason for t in trades)
    effective = store.read_effective()
    defaults = store.registry.defaults()
    return {
        "instrument": candles.instrument,
        "bars": len(candles),
        "first_bar": format_utc(from_epoch_us(int(candles.time_us[0]))),
        "last_bar": format_utc(from_epoch_us(int(candles.time_us[-1]))),
        "config": dict(config),
        "trades": pips.n,
        "net_pips": pips.net,
        "net_account": account.net,
        "max_drawdown_pips": max_drawdown(pnl(trades)),
        "max_drawdown_account": max_drawdown(pnl(trades, Units.ACCOUNT)),
        "profit_factor": _finite(pips.profit_factor),
        "win_rate": _finite(pips.win_rate),
        "expectancy_pips": _finite(pips.expectancy),
        "by_pocket": by_pocket,
        "by_exit_reason": dict(sorted(by_exit.items())),
        "records": len(records),
        "decisions": {m: dict(sorted(c.items())) for m, c in sorted(decisions.items())},
        "counts": mechanism_counts(records),
        "final_version": effective.version,
        "final_knobs": {
            k: {"value": v, "default": defaults.get(k)} for k, v in sorted(effective.values.items())
        },
        **dict(extra),
    }


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def comparison_rows(
    learning: Mapping[str, Any], static: Mapping[str, Any]
) -> list[tuple[str, str, str]]:
    """``(metric, learning, static)`` rows of the side-by-side table."""
    cur = str(learning.get("config", {}).get("account_currency", "USD"))

    def both(key: str, digits: int = 1) -> tuple[str, str]:
        return _fmt(learning.get(key), digits), _fmt(static.get(key), digits)

    def count(key: str) -> tuple[str, str]:
        return (
            _fmt(int(learning.get("counts", {}).get(key, 0))),
            _fmt(int(static.get("counts", {}).get(key, 0))),
        )

    def denials(s: Mapping[str, Any]) -> str:
        return _fmt(int(sum(s.get("gate_denials", {}).values())))

    def logged(s: Mapping[str, Any]) -> str:
        return _fmt(int(sum(s.get("signal_log", {}).values())))

    rows = [
        ("trades", *both("trades")),
        ("net P/L (pips)", *both("net_pips")),
        (f"net P/L ({cur})", *both("net_account", 2)),
        ("max drawdown (pips)", *both("max_drawdown_pips")),
        (f"max drawdown ({cur})", *both("max_drawdown_account", 2)),
        ("profit factor", *both("profit_factor", 2)),
        ("win rate", *both("win_rate", 3)),
        ("applies", *count("applies")),
        ("promotions", *count("promotes")),
        ("rollbacks", *count("rollbacks")),
        ("freezes", *count("freezes")),
        ("policy blocks", *count("policy_blocks")),
        ("gate denials", denials(learning), denials(static)),
        ("shadow signals", *both("shadow_signals")),
        ("signals logged", logged(learning), logged(static)),
    ]
    return [(a, b, c) for a, b, c in rows]
