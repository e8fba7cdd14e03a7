"""doctor: each finding on a real checkout and ledger, and the pure checks' severities."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autolearn.core.model import Side, Trade
from autolearn.ops.doctor import TimerFacts, check_registry, check_signals, check_timers
from autolearn.ops.findings import Severity, exit_code

REAL_CSV = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "quantrabbit"
    / ("trades_latest.part-0001-0300.csv")
)


def _by_check(out: str) -> dict[str, dict[str, str]]:
    return {f["check"]: f for f in json.loads(out)}


class TestDoctorCli:
    def test_real_quantrabbit_trades_lack_the_tuners_signals(self, cli, bot_env) -> None:
        """The real export has no exit reasons or regime labels: doctor warns and explains (1)."""
        assert cli("ingest", str(REAL_CSV)).code == 0
        result = cli(
            "doctor",
            "--json",
            "--now",
            "2025-10-16T00:00:00Z",
            "--signals-window",
            "30d",
            "--ledger-stale-after",
            "7d",
        )
        findings = _by_check(result.out)
        assert result.code == 1, result.out
        assert findings["git_clean"]["severity"] == "ok"
        assert findings["state_dir_untracked"]["severity"] == "ok"
        assert findings["ledger"]["severity"] == "ok"
        exit_reason = findings["signal_exit_reason"]
        assert exit_reason["severity"] == "warning"
        assert exit_reason["what"].startswith("0% of ")
        assert "signal_missing" in exit_reason["fix"]

    def test_dirty_tracked_file_is_an_error(self, cli, bot_env, bot_repo: Path) -> None:
        """A modified tracked file is an error (2) naming the file and how to fix it."""
        (bot_repo / "config" / "presets.yaml").write_text("a: 2\n")
        result = cli("doctor", "--json")
        finding = _by_check(result.out)["git_clean"]
        assert result.code == 2
        assert finding["severity"] == "error" and "config/presets.yaml" in finding["what"]
        assert "git checkout --" in finding["fix"]

    def test_state_dir_on_tracked_files_is_an_error(
        self, cli, bot_env, bot_repo: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A state dir holding tracked files (the original's config/ writes) is an error."""
        monkeypatch.setenv("AUTOLEARN_STATE_DIR", str(bot_repo / "config"))
        result = cli("doctor", "--json")
        finding = _by_check(result.out)["state_dir_untracked"]
        assert result.code == 2 and finding["severity"] == "error"
        assert "config/presets.yaml" in finding["what"]

    def test_unignored_metrics_dir_in_the_checkout_warns(
        self, cli, bot_env, bot_repo: Path
    ) -> None:
        """A metrics dir inside the checkout but not ignored is a warning with the fix."""
        result = cli("doctor", "--json", "--textfile-dir", str(bot_repo / "metrics"))
        finding = _by_check(result.out)["metrics_textfile_dir_untracked"]
        assert finding["severity"] == "warning" and ".gitignore" in finding["fix"]

    def test_missing_ledger_is_an_error(self, cli, bot_env) -> None:
        """A ledger file that does not exist is an error, and doctor does not create it."""
        result = cli("doctor", "--json")
        assert _by_check(result.out)["ledger"]["severity"] == "error"
        assert not Path(bot_env["AUTOLEARN_LEDGER_URL"].removeprefix("sqlite:///")).exists()


class TestTimers:
    @pytest.mark.parametrize(
        ("enabled", "active", "severity"),
        [
            (True, "active", Severity.OK),
            (True, "inactive", Severity.ERROR),
            (False, "active", Severity.WARNING),
            (False, "inactive", Severity.OK),
        ],
    )
    def test_timer_must_match_the_enabled_flag(
        self, enabled: bool, active: str, severity: Severity
    ) -> None:
        """An enabled mechanism needs an active timer; a disabled one should have none."""
        (finding,) = check_timers(
            [TimerFacts(mechanism="tuner", enabled=enabled, active=active)], None
        )
        assert finding.severity is severity

    def test_no_systemd_is_said_not_guessed(self) -> None:
        """Where systemctl cannot answer, doctor says so instead of claiming anything."""
        (finding,) = check_timers(
            [TimerFacts(mechanism="tuner", enabled=True, active=None)], "systemd is not PID 1"
        )
        assert finding.severity is Severity.INFO
        assert finding.what.startswith("cannot check timers here")


def _trade(i: int, exit_reason: str, regime: str) -> Trade:
    at = datetime(2025, 10, 1, tzinfo=UTC) + timedelta(minutes=i)
    return Trade(
        broker_trade_id=str(i),
        close_tx_id=f"{i}c",
        instrument="USD_JPY",
        pocket="scalp",
        strategy="M1Scalper",
        side=Side.LONG,
        units=1000,
        entry_price=150.0,
        close_price=150.01,
        entry_at=at,
        close_at=at,
        pl_pips=1.0,
        pl_account=10.0,
        exit_reason=exit_reason,
        regime_micro=regime,
    )


class TestSignals:
    def test_shares_at_and_below_the_threshold(self) -> None:
        """7 of 10 with a reason meets 70 %; 6 of 10 regime labels does not."""
        trades = [
            _trade(i, "hazard_exit" if i < 7 else "", "quiet_low_vol" if i < 6 else "")
            for i in range(10)
        ]
        found = {
            f.check: f for f in check_signals(trades, min_share=0.7, window="4d", min_trades=10)
        }
        assert found["signal_exit_reason"].severity is Severity.OK
        assert found["signal_regime_labels"].severity is Severity.WARNING
        assert "hazard_exit: 7" in found["signal_exit_reason"].what

    def test_too_few_trades_is_not_judged(self) -> None:
        """Below the minimum sample doctor only informs."""
        (finding,) = check_signals([_trade(0, "", "")], min_share=0.7, window="4d")
        assert finding.severity is Severity.INFO


def test_registry_problems_are_errors_and_drive_the_exit_code() -> None:
    """Two owners of one family is an error; the exit code is the worst severity."""
    bad = check_registry(["family 'x' has several owners (policy, tuner)"], "knobs.yaml")
    assert bad.severity is Severity.ERROR
    assert exit_code([check_registry([], "k"), bad]) == 2
    assert exit_code([]) == 0
