"""A pretend QuantRabbit checkout (original-system.md 2.1, 3.3, 3.7) and its position manager.

Tracked: ``config/tuning_presets.yaml``, ``config/worker_reentry.yaml``,
``configs/scalp_active_params.json``; ignored: ``logs/``. ``write_trades`` inserts rows the way
``execution/position_manager.py`` does (v3 columns, ``INSERT OR REPLACE``, unique index on
``(transaction_id, ticket_id)``, WAL), in the original's mixed timestamp formats.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

PRESETS = """\
exit:
  lowvol: {upper_bound_max_sec: 3.6, hazard_debounce_ticks: 2, hazard_cost_spread_base: 0.25,
           hazard_cost_latency_base_ms: 240, min_grace_before_scratch_ms: 120,
           scratch_requires_events: 1}
strategies:
  MomentumPulse: {min_confidence: 0.65}
  MicroVWAPRevert: {vwap_z_min: 2.2}
  VolCompressionBreak: {accel_pctile: 75}
  BB_RSI_Fast: {reentry_block_s: 15}
  RangeRevertLite: {band_pips: 4.0}
alloc: {regime: {quiet_low_vol: {micro_share: 0.35}}}
"""
REENTRY = """\
defaults: {cooldown_win_sec: 60, cooldown_loss_sec: 180, same_dir_reentry_pips: 1.8}
strategies:
  MomentumBurst: {cooldown_win_sec: 44, cooldown_loss_sec: 138, same_dir_reentry_pips: 0.8}
"""
SCALP = (
    '{"M1Scalper": {"fallback": {"sl_floor": 6.0}, "timeout_sec": 900}, "PulseBreak": {"k": 1}}\n'
)

SCHEMA = """
CREATE TABLE trades (
  id INTEGER PRIMARY KEY AUTOINCREMENT, transaction_id INTEGER, ticket_id TEXT, pocket TEXT,
  instrument TEXT, units INTEGER, closed_units INTEGER, entry_price REAL, close_price REAL,
  fill_price REAL, pl_pips REAL, realized_pl REAL, commission REAL, financing REAL,
  entry_time TEXT, open_time TEXT, close_time TEXT, close_reason TEXT, state TEXT,
  updated_at TEXT, version TEXT, unrealized_pl REAL, strategy TEXT, client_order_id TEXT,
  strategy_tag TEXT, entry_thesis TEXT, macro_regime TEXT, micro_regime TEXT);
CREATE UNIQUE INDEX uniq_trades_tx_trade ON trades(transaction_id, ticket_id);
CREATE INDEX idx_trades_ticket ON trades(ticket_id);
CREATE INDEX idx_trades_close ON trades(close_time);
CREATE TABLE cashflows (id INTEGER PRIMARY KEY, transaction_id INTEGER UNIQUE, time TEXT,
  amount REAL, balance REAL, type TEXT, funding_reason TEXT);
"""


def git(root: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, check=True, text=True
    )
    return out.stdout


def make_checkout(root: Path) -> Path:
    """The pretend checkout, committed, with an empty v3 ``logs/trades.db``."""
    (root / "config").mkdir(parents=True)
    (root / "configs").mkdir()
    (root / "logs").mkdir()
    (root / "config" / "tuning_presets.yaml").write_text(PRESETS)
    (root / "config" / "worker_reentry.yaml").write_text(REENTRY)
    (root / "configs" / "scalp_active_params.json").write_text(SCALP)
    (root / ".gitignore").write_text("logs/\n")
    git(root, "init", "-q")
    git(root, "config", "user.email", "bot@example.invalid")
    git(root, "config", "user.name", "bot")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "pretend QuantRabbit checkout")
    conn = sqlite3.connect(root / "logs" / "trades.db")
    conn.executescript(SCHEMA)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.commit()
    conn.close()
    return root


@dataclass(frozen=True)
class Fill:
    """One closed trade as the position manager stores it."""

    tx: int
    ticket: str
    pocket: str
    strategy: str
    units: int
    entry: float
    close: float
    close_at: datetime
    style: str = "iso"  # iso | space_ns | no_fraction
    version: str = "v3"


def stamp(at: datetime, style: str) -> str:
    if style == "space_ns":  # older exports: a space and nanoseconds
        return at.strftime("%Y-%m-%d %H:%M:%S.%f") + "123+00:00"
    if style == "no_fraction":  # isoformat() drops the fraction when microsecond == 0
        return at.replace(microsecond=0).isoformat()
    return at.isoformat()


def write_trades(db: Path, fills: Sequence[Fill]) -> None:
    conn = sqlite3.connect(db, timeout=5)
    try:
        for f in fills:
            pips = (f.close - f.entry) * 100 * (1 if f.units > 0 else -1)
            opened = f.close_at - timedelta(minutes=20)
            conn.execute(
                "INSERT OR REPLACE INTO trades (transaction_id, ticket_id, pocket, instrument, "
                "units, closed_units, entry_price, close_price, fill_price, pl_pips, realized_pl, "
                "commission, financing, entry_time, open_time, close_time, close_reason, state, "
                "updated_at, version, unrealized_pl, strategy, client_order_id, strategy_tag, "
                "entry_thesis, macro_regime, micro_regime) VALUES "
                "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    f.tx,
                    f.ticket,
                    f.pocket,
                    "USD_JPY",
                    f.units,
                    abs(f.units),
                    f.entry,
                    f.close,
                    f.close,
                    pips,
                    round(pips * abs(f.units) * 0.01, 2),
                    0.0,
                    0.0,
                    opened.isoformat(),
                    opened.isoformat(),
                    stamp(f.close_at, f.style),
                    "STOP_LOSS_ORDER" if pips < 0 else "TAKE_PROFIT_ORDER",
                    "CLOSED",
                    f.close_at.isoformat(),
                    f.version,
                    0.0,
                    f.strategy,
                    f"qr-{int(opened.timestamp() * 1000)}-{f.pocket}-{f.strategy}",
                    f.strategy,
                    json.dumps({"strategy_tag": f.strategy}),
                    "Range",
                    "Range",
                ),
            )
        conn.commit()
    finally:
        conn.close()
