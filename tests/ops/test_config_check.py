"""``autolearn config check`` and doctor's ``configs`` finding; a bad config exits 78 at load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from autolearn.adapters.state import StateStore
from autolearn.ops.doctor import ConfigFacts, check_configs
from autolearn.ops.findings import Severity
from autolearn.settings import load_registry

# A wrong-typed risk limit (bool as int), a string number and a nested typo: the original
# accepted the first two and failed at judge time, or never.
BAD_TUNER = "min_trades: true\nmax_in_flight: '7'\nflight: {judge: {min_candidat: 40}}\n"
BAD_PATHS = ("min_trades", "max_in_flight", "flight.judge.min_candidat")
NAMES = ("tuner", "scalp", "autotune", "gates", "registry", "ledger")


@pytest.fixture(name="no_config_env", autouse=True)
def fixture_no_config_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No config path leaks in from the developer's environment."""
    for name in ("TUNER", "SCALP", "AUTOTUNE"):
        monkeypatch.delenv(f"AUTOLEARN_{name}_CONFIG", raising=False)


@pytest.fixture(name="bad_tuner")
def fixture_bad_tuner(tmp_path: Path) -> Path:
    """A tuner YAML outside the bot checkout with three problems."""
    path = tmp_path / "tuner.yaml"
    path.write_text(BAD_TUNER)
    return path


def _lines(out: str) -> dict[str, str]:
    return {line.split(":")[0]: line for line in out.splitlines() if not line.startswith(" ")}


class TestConfigCheck:
    def test_defaults_everywhere_are_ok(self, cli, bot_env) -> None:
        """Without any config file every config is its defaults, and all load (exit 0)."""
        result = cli("config", "check")
        assert result.code == 0, result.out + result.err
        lines = _lines(result.out)
        assert tuple(lines) == NAMES
        assert lines["tuner"] == "tuner: defaults: ok"
        assert lines["gates"] == "gates: defaults (packaged gates.yaml): ok"

    def test_every_problem_of_every_config_is_listed_and_exits_78(
        self, cli, bot_env, bad_tuner: Path, tmp_path: Path
    ) -> None:
        """Two bad files: both are invalid with every dotted path, the others still ok."""
        scalp = tmp_path / "scalp.yaml"
        scalp.write_text("flight: {hard_limits: {nope: 1}}\n")
        result = cli(
            "config", "check", "--tuner-config", str(bad_tuner), "--scalp-config", str(scalp)
        )
        assert result.code == 78
        lines = _lines(result.out)
        assert lines["tuner"] == f"tuner: {bad_tuner}: invalid"
        assert lines["scalp"] == f"scalp: {scalp}: invalid"
        assert lines["autotune"] == "autotune: defaults: ok"
        for path in BAD_PATHS:
            assert f"  - {path}: " in result.out
        assert "  - min_trades: expected an integer, got True" in result.out
        assert "  - max_in_flight: expected an integer, got '7'" in result.out
        assert "  - flight.hard_limits.nope: unknown key" in result.out

    def test_paths_are_found_as_the_commands_find_them(
        self, cli, bot_env, bot_repo: Path, bad_tuner: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The tuner's env var and the bot's tracked config/gates.yaml are what gets checked."""
        monkeypatch.setenv("AUTOLEARN_TUNER_CONFIG", str(bad_tuner))
        (bot_repo / "config" / "gates.yaml").write_text("perf_guard: {mode: panic}\n")
        result = cli("config", "check")
        assert result.code == 78
        lines = _lines(result.out)
        assert lines["tuner"] == f"tuner: {bad_tuner}: invalid"
        assert lines["gates"] == f"gates: {bot_repo / 'config' / 'gates.yaml'}: invalid"
        assert "  - perf_guard.rules.mode: expected one of 'block', 'reduce', 'warn'" in result.out

    def test_runtime_overrides_of_the_gates_are_checked(self, cli, bot_env, bot_repo: Path) -> None:
        """A bad runtime override (state dir) fails the check like a bad tracked file."""
        store = StateStore(bot_repo / "logs" / "tuning", load_registry(None))
        overrides = {"reentry": {"strategies": {"S": {"cooldown_win_s": "soon"}}}}
        store.write_mechanism("gates", {"overrides": overrides})
        result = cli("config", "check")
        assert result.code == 78
        assert _lines(result.out)["gates"] == (
            "gates: defaults (packaged gates.yaml) + runtime overrides: invalid"
        )
        assert "  - reentry.strategies.S.cooldown_win_s: expected a number, got 'soon'" in (
            result.out
        )


class TestBadConfigAtLoad:
    @pytest.mark.parametrize("command", ["tune", "scalp-train", "autotune"])
    def test_a_mechanism_refuses_its_bad_config_with_exit_78(
        self, cli, bot_env, tmp_path: Path, command: str
    ) -> None:
        """Each learner exits 78 before touching the ledger, naming the dotted path."""
        path = tmp_path / "bad.yaml"
        path.write_text("flight: {hard_limits: {nope: 1}}\nmin_trades: '7'\n")
        result = cli(command, "--shadow", "--config", str(path))
        assert result.code == 78, result.err
        assert f"invalid config {path}:" in result.err
        assert "min_trades: expected an integer, got '7'" in result.err
        assert "flight.hard_limits.nope: unknown key" in result.err


class TestDoctorFinding:
    def test_doctor_reports_a_bad_config_as_one_error(
        self, cli, bot_env, bad_tuner: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The check a run would fail at 3 a.m. is an error now, with the fix."""
        monkeypatch.setenv("AUTOLEARN_TUNER_CONFIG", str(bad_tuner))
        result = cli("doctor", "--json")
        finding = {f["check"]: f for f in json.loads(result.out)}["configs"]
        assert result.code == 2
        assert finding["severity"] == "error"
        assert f"tuner {bad_tuner}: min_trades: expected an integer" in finding["what"]
        assert "autolearn config check" in finding["fix"]

    def test_doctor_is_ok_with_the_defaults(self, cli, bot_env) -> None:
        """With no config files the finding is ok and names what it loaded."""
        result = cli("doctor", "--json")
        finding = {f["check"]: f for f in json.loads(result.out)}["configs"]
        assert finding["severity"] == "ok" and "tuner defaults" in finding["what"]

    def test_many_problems_are_summarised(self) -> None:
        """The finding shows a few problems per config and counts the rest."""
        facts = [
            ConfigFacts(name="tuner", source="t.yaml", problems=("a", "b", "c", "d", "e")),
            ConfigFacts(name="gates", source="defaults"),
        ]
        finding = check_configs(facts)
        assert finding.severity is Severity.ERROR
        assert finding.what.endswith("tuner t.yaml: a; b; c (+2 more)")


def test_ledger_limits_are_checked(bot_repo: Path, bot_env: dict[str, str], cli: Any) -> None:
    """config/ledger.yaml (the writers' plausibility limits) is validated too: 78 on a typo."""
    (bot_repo / "config" / "ledger.yaml").write_text("max_abs_pl_pip: 5\n")
    result = cli("config", "check")
    assert result.code == 78
    assert _lines(result.out)["ledger"].endswith("ledger.yaml: invalid")
