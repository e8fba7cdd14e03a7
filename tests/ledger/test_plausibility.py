"""Implausible rows (future times, absurd magnitudes) are refused at every writer (issue 13)."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autolearn.core import metrics
from autolearn.core.judge import JudgeParams, judge, mean_sequence
from autolearn.core.plausibility import TradeLimits, implausible_trade
from autolearn.errors import ConfigError, InputError
from autolearn.gates import Gates
from autolearn.gates.config import load_gates_config
from autolearn.importers.quantrabbit import import_path
from autolearn.ledger import TradeWriter
from autolearn.ledger.limits import load_trade_limits
from autolearn.ledger.sql import SqlLedger
from autolearn.testing import make_trade  # not the ledger suite's fixture: gates need pockets

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
FAR = datetime(9999, 12, 31, tzinfo=UTC)
# Lets a bad row into a ledger, as an older autolearn (or a hand edit) would have.
NO_LIMITS = TradeLimits(
    future_tolerance=timedelta(days=3_000_000),
    max_abs_pl_pips=1e308,
    max_abs_pl_account=1e308,
    max_units=2**63,
    max_price=1e308,
)


def _csv(path: Path, close_time: str, pl_pips: str = "-3.0") -> Path:
    fields = ["ticket_id", "pocket", "units", "entry_price", "close_price", "entry_time"]
    fields += ["close_time", "realized_pl", "pl_pips"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(fields)
        writer.writerow(
            ["1", "micro", "1000", "150.0", "149.97", "2025-10-01T00:00:00Z", close_time,
             "-30", pl_pips]
        )  # fmt: skip
    return path


class TestWriters:
    def test_importer_rejects_a_future_close_time(self, tmp_path: Path) -> None:
        """CSV close_time 9999-12-31: the row is rejected naming the column, not accepted."""
        report = import_path(_csv(tmp_path / "t.csv", "9999-12-31T00:00:00Z"), now=NOW)
        assert report.accepted_count == 0
        (rejected,) = report.rejected
        assert rejected.column == "close_time" and "in the future" in rejected.reason

    def test_importer_rejects_absurd_pips(self, tmp_path: Path) -> None:
        """pl_pips 1e300 is finite but absurd: rejected on its column."""
        path = _csv(tmp_path / "t.csv", "2025-10-01T00:05:00Z", pl_pips="1e300")
        report = import_path(path, now=NOW)
        assert report.accepted_count == 0
        assert report.rejected[0].column == "pl_pips"

    def test_limits_are_configurable(self, tmp_path: Path) -> None:
        """config/ledger.yaml sets the limits; a bad key is a ConfigError (78)."""
        (tmp_path / "config").mkdir()
        (tmp_path / "config" / "ledger.yaml").write_text("max_abs_pl_pips: 2\n")
        limits = load_trade_limits(tmp_path)
        assert limits.max_abs_pl_pips == 2
        report = import_path(_csv(tmp_path / "t.csv", "2025-10-01T00:05:00Z"), limits=limits)
        assert report.rejected_count == 1  # |-3| > 2
        (tmp_path / "config" / "ledger.yaml").write_text("max_abs_pl_pip: 2\n")
        with pytest.raises(ConfigError) as caught:
            load_trade_limits(tmp_path)
        assert caught.value.exit_code == 78

    def test_trade_writer_refuses_and_names_the_trade(self, tmp_path: Path) -> None:
        """The bot's TradeWriter refuses a future or absurd trade with InputError (65)."""
        with TradeWriter.open(f"sqlite:///{tmp_path / 'l.db'}") as writer:
            bad = make_trade(close_at=FAR, pl_pips=-1.0, entry_at=FAR - timedelta(minutes=5))
            with pytest.raises(InputError, match=f"{bad.broker_trade_id}.*close_at.*future"):
                writer.record_trade(bad)
            with pytest.raises(InputError, match="pl_pips"):
                writer.record_trade(make_trade(close_at=NOW - timedelta(days=1), pl_pips=1e300))
            assert writer.ledger.count_trades() == 0

    def test_pure_check_lists_every_field(self) -> None:
        """implausible_trade names each offending field."""
        t = make_trade(
            close_at=FAR, pl_pips=1e300, pl_account=1e300, entry_at=FAR - timedelta(minutes=5)
        )
        fields = {f.field for f in implausible_trade(t, NOW, TradeLimits())}
        assert {"close_at", "entry_at", "pl_pips", "pl_account"} <= fields

    def test_limits_validate_themselves(self) -> None:
        """A non-positive or NaN limit is refused."""
        with pytest.raises(ValueError, match="max_price"):
            TradeLimits(max_price=math.nan)


class TestReaders:
    def test_running_gates_see_trades_after_a_future_row(self, tmp_path: Path) -> None:
        """One year-9999 row must not blind a running Gates: it denies like a fresh one."""
        url = f"sqlite:///{tmp_path / 'l.db'}"
        ledger = SqlLedger.open(url, limits=NO_LIMITS)
        start = NOW - timedelta(hours=3)
        ledger.upsert_trades([make_trade(close_at=start, pl_pips=1.0)])
        config = load_gates_config(None)
        running = Gates(ledger=SqlLedger.open(url), config=config, clock=lambda: 0.0)
        running.refresh(start)
        ledger.upsert_trades(
            [make_trade(close_at=FAR, pl_pips=-1.0, entry_at=FAR - timedelta(minutes=5))]
        )
        running.refresh(start + timedelta(minutes=1))
        losses = [
            make_trade(close_at=start + timedelta(minutes=5 * (i + 1)), pl_pips=-8.0)
            for i in range(20)
        ]
        ledger.upsert_trades(losses)
        now = start + timedelta(hours=2)
        running.refresh(now)
        fresh = Gates(ledger=SqlLedger.open(url), config=config, clock=lambda: 0.0)
        v_running = running.check_entry("MomentumPulse", "micro", "long", 150.0, now)
        v_fresh = fresh.check_entry("MomentumPulse", "micro", "long", 150.0, now)
        assert not v_fresh.allowed
        assert (v_running.allowed, v_running.blocking_codes) == (
            v_fresh.allowed,
            v_fresh.blocking_codes,
        )
        assert running.aggregates.future_skipped >= 1

    def test_gates_survive_an_absurd_row(self, tmp_path: Path) -> None:
        """pl_pips 1e300 already stored: the gates decide (no gate_error for the pocket)."""
        url = f"sqlite:///{tmp_path / 'l.db'}"
        ledger = SqlLedger.open(url, limits=NO_LIMITS)
        trades = [
            make_trade(close_at=NOW - timedelta(minutes=10 * i), pl_pips=-2.0) for i in range(5)
        ]
        trades.append(make_trade(close_at=NOW - timedelta(minutes=1), pl_pips=1e300))
        ledger.upsert_trades(trades)
        gates = Gates(ledger=SqlLedger.open(url), config=load_gates_config(None), clock=lambda: 0.0)
        verdict = gates.check_entry("MomentumPulse", "micro", "long", 150.0, NOW)
        assert "gate_error" not in {r.code for r in verdict.reasons}


class TestOverflowSafeMetrics:
    @pytest.mark.parametrize(
        "values",
        [[1e300, -2.0, 1.0], [1e308, -1e308, 1e308, 5.0], [1e200, 1e200], [-1e300] * 3],
    )
    def test_summarize_never_raises(self, values: list[float]) -> None:
        """Finite but absurd P/L: summarize returns, the spread is not finite or huge."""
        s = metrics.summarize(values)
        assert s.n == len(values)
        lo, hi = metrics.expectancy_interval(values)
        assert (math.isnan(lo) and math.isnan(hi)) or lo <= hi

    def test_judge_and_sequence_never_raise(self) -> None:
        """The judge and the policy's confidence sequence stay undecided, not crashed."""
        bad = [1e300, -1.0, 2.0, -3.0]
        verdict = judge(bad, [1.0, -1.0] * 10, JudgeParams())
        assert verdict.outcome.value in {"inconclusive", "fail", "pass"}
        lo, hi = mean_sequence(bad, alpha=0.1, mixture_scale=1.0)
        assert math.isnan(lo) or lo <= hi

    def test_ordinary_values_unchanged(self) -> None:
        """The overflow-safe sd equals the textbook one on ordinary data."""
        values = [1.0, -2.0, 3.5, 0.25, -1.75]
        mean = sum(values) / len(values)
        textbook = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        assert math.isclose(metrics.summarize(values).std, textbook, rel_tol=1e-12)
