"""One reader of the settings: every option named by a variable takes it from the environment or
the env file (``AUTOLEARN_ENV_FILE``), and its flag overrides both."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import autolearn.autotune
import autolearn.backtest
from autolearn.cli import main
from autolearn.settings import Settings
from autolearn.testing.oanda_v20 import FakeV20Server, v20_candle
from tests.gitbot import make_git_bot

TOKEN = "tok-7e2b91c40d5a4f83-SECRET-0b6d"
ACCOUNT = "001-009-0000000-002"
BAD_YAML = "min_trades: '7'\n"  # every learner config refuses it, naming the file


@pytest.fixture(name="bot")
def fixture_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bot checkout in git (registry tracked, logs/ ignored); no setting in the process env."""
    bot = make_git_bot(tmp_path, monkeypatch)
    return bot


@pytest.fixture(name="env_file")
def fixture_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """``env_file(KEY=value, ...)`` writes an env file as /etc/autolearn.env and points at it."""

    def write(**pairs: object) -> Path:
        path = tmp_path / "autolearn.env"
        path.write_text("".join(f"{k}={v}\n" for k, v in pairs.items()))
        monkeypatch.setenv("AUTOLEARN_ENV_FILE", str(path))
        return path

    write()
    return write


@pytest.fixture(name="servers")
def fixture_servers() -> Iterator[tuple[FakeV20Server, FakeV20Server]]:
    """Two local v20 servers for one account: which one is asked shows which URL won."""
    with (
        FakeV20Server(account_id=ACCOUNT, token=TOKEN) as one,
        FakeV20Server(account_id=ACCOUNT, token=TOKEN) as two,
    ):
        yield one, two


def _bad_yaml(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_text(BAD_YAML)
    return path


class TestLearnerConfigs:
    @pytest.mark.parametrize(
        ("argv", "var"),
        [
            (["tune", "--shadow"], "AUTOLEARN_TUNER_CONFIG"),
            (["scalp-train", "--shadow"], "AUTOLEARN_SCALP_CONFIG"),
            (["autotune", "--shadow"], "AUTOLEARN_AUTOTUNE_CONFIG"),
        ],
    )
    def test_the_env_file_names_the_config_and_the_flag_wins(
        self,
        bot: Path,
        tmp_path: Path,
        env_file: Callable[..., Path],
        capsys: pytest.CaptureFixture[str],
        argv: list[str],
        var: str,
    ) -> None:
        """The file named in the env file is loaded (78 naming it); ``--config`` replaces it."""
        from_file, from_flag = _bad_yaml(tmp_path, "file.yaml"), _bad_yaml(tmp_path, "flag.yaml")
        env_file(**{var: from_file})
        assert main(argv) == 78
        assert f"invalid config {from_file}:" in capsys.readouterr().err
        assert main([*argv, "--config", str(from_flag)]) == 78
        err = capsys.readouterr().err
        assert f"invalid config {from_flag}:" in err and str(from_file) not in err

    @pytest.mark.parametrize(
        ("name", "flag", "var"),
        [
            ("tuner", "--tuner-config", "AUTOLEARN_TUNER_CONFIG"),
            ("scalp", "--scalp-config", "AUTOLEARN_SCALP_CONFIG"),
            ("autotune", "--autotune-config", "AUTOLEARN_AUTOTUNE_CONFIG"),
        ],
    )
    def test_config_check_reads_them_the_same_way(
        self,
        bot: Path,
        tmp_path: Path,
        env_file: Callable[..., Path],
        capsys: pytest.CaptureFixture[str],
        name: str,
        flag: str,
        var: str,
    ) -> None:
        """``config check`` checks the env file's config, or the flag's."""
        from_file, from_flag = _bad_yaml(tmp_path, "file.yaml"), _bad_yaml(tmp_path, "flag.yaml")
        env_file(**{var: from_file})
        assert main(["config", "check"]) == 78
        assert f"{name}: {from_file}: invalid" in capsys.readouterr().out.splitlines()
        assert main(["config", "check", flag, str(from_flag)]) == 78
        assert f"{name}: {from_flag}: invalid" in capsys.readouterr().out.splitlines()


class TestAutotuneInputs:
    def test_storage_and_candles(
        self,
        bot: Path,
        tmp_path: Path,
        env_file: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """AUTOLEARN_AUTOTUNE_STORAGE / AUTOLEARN_CANDLES reach the run; the flags override."""
        seen: list[tuple[object, object]] = []
        monkeypatch.setattr(autolearn.backtest, "load_candles", lambda path: ("bars", path))

        def run_cycle(*args: Any, storage_url: str | None, **_: Any) -> dict[str, Any]:
            seen.append((args[4], storage_url))  # (store, ledger, cfg, bars, path, at)
            return {"mechanism": "autotune", "decision": "noop"}

        monkeypatch.setattr(autolearn.autotune, "run_cycle", run_cycle)
        env_file(
            AUTOLEARN_AUTOTUNE_STORAGE="sqlite:///from-file.db",
            AUTOLEARN_CANDLES=tmp_path / "file.csv",
        )
        assert main(["autotune", "--shadow", "--json"]) == 0
        flags = ["--storage", "sqlite:///flag.db", "--candles", str(tmp_path / "flag.csv")]
        assert main(["autotune", "--shadow", "--json", *flags]) == 0
        assert seen == [
            (tmp_path / "file.csv", "sqlite:///from-file.db"),
            (tmp_path / "flag.csv", "sqlite:///flag.db"),
        ]


class TestMetricsDir:
    def test_metrics_writes_where_the_env_file_says_unless_told(
        self, bot: Path, tmp_path: Path, env_file: Callable[..., Path]
    ) -> None:
        """AUTOLEARN_METRICS_DIR from the env file is the textfile dir; ``--textfile`` wins."""
        from_file, from_flag = tmp_path / "file-dir", tmp_path / "flag-dir"
        from_file.mkdir()
        from_flag.mkdir()
        env_file(AUTOLEARN_METRICS_DIR=from_file)
        assert main(["metrics"]) == 0
        assert (from_file / "autolearn.prom").exists()
        assert main(["metrics", "--textfile", str(from_flag)]) == 0
        assert (from_flag / "autolearn.prom").exists()

    def test_metrics_without_a_dir_is_a_usage_error(
        self, bot: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """No flag, variable or env file line: exit 2 naming both ways to give it."""
        assert main(["metrics"]) == 2
        assert "--textfile DIR or AUTOLEARN_METRICS_DIR" in capsys.readouterr().err

    def test_the_process_env_beats_the_env_file(
        self,
        bot: Path,
        tmp_path: Path,
        env_file: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A variable exported by hand wins over the env file (as for the bot root)."""
        from_file, from_env = tmp_path / "file-dir", tmp_path / "env-dir"
        from_file.mkdir()
        from_env.mkdir()
        env_file(AUTOLEARN_METRICS_DIR=from_file)
        monkeypatch.setenv("AUTOLEARN_METRICS_DIR", str(from_env))
        assert main(["metrics"]) == 0
        assert (from_env / "autolearn.prom").exists()
        assert not (from_file / "autolearn.prom").exists()

    def test_doctor_checks_the_env_files_dir(
        self,
        bot: Path,
        tmp_path: Path,
        env_file: Callable[..., Path],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """doctor's textfile-dir check is about the env file's dir, or ``--textfile-dir``'s."""
        from_file, from_flag = tmp_path / "file-dir", tmp_path / "flag-dir"
        env_file(AUTOLEARN_METRICS_DIR=from_file)

        def checked(*argv: str) -> str:
            main(["doctor", "--json", *argv])
            findings = {f["check"]: f for f in json.loads(capsys.readouterr().out)}
            return str(findings["metrics_textfile_dir_untracked"]["what"])

        assert str(from_file) in checked()
        assert str(from_flag) in checked("--textfile-dir", str(from_flag))


def _asked(server: FakeV20Server) -> list[str]:
    return [r.path for r in server.requests if r.authorized]


class TestOanda:
    @pytest.mark.parametrize(
        "argv",
        [["ingest", "--oanda"], ["reconcile", "--since", "1d"]],
        ids=["ingest", "reconcile"],
    )
    def test_token_account_and_url_come_from_the_env_file(
        self,
        bot: Path,
        env_file: Callable[..., Path],
        servers: tuple[FakeV20Server, FakeV20Server],
        capfd: pytest.CaptureFixture[str],
        argv: list[str],
    ) -> None:
        """OANDA_TOKEN, OANDA_ACCOUNT_ID and OANDA_API_URL in the env file are enough."""
        one, _ = servers
        env_file(OANDA_TOKEN=TOKEN, OANDA_ACCOUNT_ID=ACCOUNT, OANDA_API_URL=one.base_url)
        assert main(argv) in (0, 1)  # reconcile: 1 is a mismatch, still a full run
        assert _asked(one) and all(f"/accounts/{ACCOUNT}/" in p for p in _asked(one))
        out, err = capfd.readouterr()
        assert TOKEN not in out + err

    @pytest.mark.parametrize(
        "argv",
        [["ingest", "--oanda"], ["reconcile", "--since", "1d"]],
        ids=["ingest", "reconcile"],
    )
    def test_the_flags_override_the_env_file(
        self,
        bot: Path,
        env_file: Callable[..., Path],
        servers: tuple[FakeV20Server, FakeV20Server],
        argv: list[str],
    ) -> None:
        """``--oanda-url`` sends the requests elsewhere; ``--account`` asks for another account."""
        one, two = servers
        env_file(
            OANDA_TOKEN=TOKEN, OANDA_ACCOUNT_ID="001-009-9999999-001", OANDA_API_URL=one.base_url
        )
        assert main([*argv, "--oanda-url", two.base_url, "--account", ACCOUNT]) in (0, 1)
        assert one.requests == []
        assert _asked(two) and all(f"/accounts/{ACCOUNT}/" in p for p in _asked(two))

    def test_candles_use_the_env_files_url_and_token(
        self,
        bot: Path,
        env_file: Callable[..., Path],
        servers: tuple[FakeV20Server, FakeV20Server],
    ) -> None:
        """``ingest --oanda-candles`` takes OANDA_API_URL and OANDA_TOKEN from the env file."""
        one, two = servers
        start = datetime(2025, 1, 6, 0, 1, tzinfo=UTC)
        for server in servers:
            server.add_candles("EUR_USD", "M1", [v20_candle(start, mid=(1, 1, 1, 1), spread=0)])
        env_file(OANDA_TOKEN=TOKEN, OANDA_API_URL=one.base_url)
        argv = ["ingest", "--oanda-candles", "EUR_USD", "--since", "2025-01-06T00:00:00Z"]
        assert main(argv) == 0
        assert _asked(one) == ["/v3/instruments/EUR_USD/candles"]
        assert main([*argv, "--oanda-url", two.base_url]) == 0
        assert _asked(two) == ["/v3/instruments/EUR_USD/candles"] and len(one.requests) == 1

    def test_without_a_token_nothing_is_asked(
        self,
        bot: Path,
        env_file: Callable[..., Path],
        servers: tuple[FakeV20Server, FakeV20Server],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """No OANDA_TOKEN anywhere: exit 78 saying where it may come from."""
        one, _ = servers
        env_file(OANDA_ACCOUNT_ID=ACCOUNT, OANDA_API_URL=one.base_url)
        assert main(["ingest", "--oanda"]) == 78
        assert "OANDA_TOKEN and --account / OANDA_ACCOUNT_ID (environment or env file)" in (
            capsys.readouterr().err
        )
        assert one.requests == []


class TestSettingsOption:
    def test_flag_then_environment_then_nothing(self, tmp_path: Path) -> None:
        """``option``: the flag, else the variable, else None; an empty variable is unset."""
        env = {"AUTOLEARN_CANDLES": "/env.csv", "AUTOLEARN_METRICS_DIR": ""}
        current = Settings.resolve(bot_root=tmp_path, env=env)
        assert current.option("flag.csv", "AUTOLEARN_CANDLES") == "flag.csv"
        assert current.option_path(None, "AUTOLEARN_CANDLES") == Path("/env.csv")
        assert current.option(None, "AUTOLEARN_METRICS_DIR") is None

    def test_an_unknown_variable_is_a_bug_not_a_silent_none(self, tmp_path: Path) -> None:
        """A misspelt variable raises instead of quietly reading nothing."""
        with pytest.raises(KeyError, match="AUTOLEARN_CANDLE "):
            Settings.resolve(bot_root=tmp_path, env={}).option(None, "AUTOLEARN_CANDLE ")

    def test_the_env_file_is_under_the_process_and_the_token_is_not_shown(
        self, tmp_path: Path
    ) -> None:
        """from_environment: process over file; which file; the token kept out of the repr."""
        path = tmp_path / "a.env"
        path.write_text(f"OANDA_TOKEN={TOKEN}\nOANDA_API_URL=http://file\n")
        environ = {"AUTOLEARN_ENV_FILE": str(path), "OANDA_API_URL": "http://process"}
        current = Settings.from_environment(bot_root=tmp_path, environ=environ)
        assert current.option(None, "OANDA_API_URL") == "http://process"
        assert current.option(None, "OANDA_TOKEN") == TOKEN
        assert current.env_file == path
        assert TOKEN not in repr(current)
