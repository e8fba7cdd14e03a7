"""The command line: exit codes per error class, operator actions recorded, git left clean."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autolearn.adapters.state import presets_digest, version_of
from autolearn.cli import main
from autolearn.settings import load_registry, packaged_registry_text

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(name="bot")
def fixture_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bot checkout in git with the registry tracked and logs/ ignored; env points at it."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "knobs.yaml").write_text(packaged_registry_text())
    (tmp_path / ".gitignore").write_text("logs/\n")
    for args in (
        ["init", "-q"],
        ["add", "."],
        ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"],
    ):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True)
    for name in ("AUTOLEARN_STATE_DIR", "AUTOLEARN_REGISTRY", "AUTOLEARN_LEDGER_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUTOLEARN_BOT_ROOT", str(tmp_path))
    return tmp_path


def _porcelain(repo: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


class TestExitCodes:
    def test_registry_check_ok_and_broken(
        self, bot: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """knobs --check passes on the inventory and exits 78 naming the problem otherwise."""
        assert main(["knobs", "--check"]) == 0
        broken = packaged_registry_text().replace("default: 3.6,", "default: 9.6,", 1)
        bad = bot / "bad.yaml"
        bad.write_text(broken)
        assert main(["--registry", str(bad), "knobs", "--check"]) == 78
        assert "exit.lowvol.upper_bound_max_sec.default" in capsys.readouterr().err

    def test_usage_error(self, bot: Path) -> None:
        """An unknown option is a usage error (exit 2), not a crash."""
        assert main(["knobs", "--no-such-flag"]) == 2

    def test_bad_value_and_unknown_mechanism(self, bot: Path) -> None:
        """Invalid operator input is refused with a data error and changes nothing."""
        assert main(["set", "exit.lowvol.upper_bound_max_sec", "nine", "--reason", "x"]) == 65
        assert main(["set", "exit.lowvol.upper_bound_max_sec", "9.0", "--reason", "x"]) == 65
        assert main(["freeze", "nobody", "--reason", "x"]) == 65
        assert not (bot / "logs" / "tuning" / "effective.json").exists()

    def test_missing_file(self, bot: Path) -> None:
        """Ingesting a file that does not exist names it and exits 65."""
        assert main(["ingest", str(bot / "nope.db")]) == 65


class TestOperatorStory:
    def test_set_explain_rollback_history(
        self, bot: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An operator sets a knob, explains it, rolls back, and history shows both with reasons."""
        knob = "exit.lowvol.upper_bound_max_sec"
        assert main(["set", knob, "4.0", "--reason", "widen"]) == 0
        capsys.readouterr()
        assert main(["explain", knob]) == 0
        info = json.loads(capsys.readouterr().out)
        assert (info["value"], info["layer"], info["writer"]) == (4.0, "runtime", "operator")
        # the base version is the content hash of an empty runtime layer (presets only)
        base = version_of({}, presets_digest(load_registry(None)))
        assert main(["rollback", "--to", base, "--reason", "undo widen"]) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert out["diff"] == [{"knob": knob, "before": 4.0, "after": 3.6}]
        assert main(["history", "--since", "1h", "--json"]) == 0
        records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [r["decision"] for r in records] == ["set", "rollback"]
        assert records[1]["reasons"] == ["operator: undo widen"]
        assert _porcelain(bot) == ""

    def test_freeze_is_recorded(self, bot: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """freeze/unfreeze are operator actions in the history."""
        assert main(["freeze", "tuner", "--reason", "incident 42"]) == 0
        assert main(["unfreeze", "tuner", "--reason", "resolved"]) == 0
        capsys.readouterr()
        assert main(["history", "--json"]) == 0
        decisions = [json.loads(x)["decision"] for x in capsys.readouterr().out.splitlines()]
        assert decisions == ["operator_freeze", "operator_unfreeze"]


def test_demo_leaves_the_checkout_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`autolearn demo` in a clone of this repo writes only ignored files."""
    clone = tmp_path / "clone"
    shutil.copytree(REPO / "examples", clone / "examples")
    shutil.copy(REPO / ".gitignore", clone / ".gitignore")
    for args in (
        ["init", "-q"],
        ["add", "."],
        ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"],
    ):
        subprocess.run(["git", "-C", str(clone), *args], check=True)
    monkeypatch.chdir(clone)
    for name in ("AUTOLEARN_STATE_DIR", "AUTOLEARN_BOT_ROOT", "AUTOLEARN_LEDGER_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["demo", "--from", "2018-07-02", "--to", "2018-07-04", "--quiet"]) == 0
    assert (clone / "demo-output").exists()
    assert _porcelain(clone) == ""


def test_ingest_oanda_from_a_local_v20_server(
    bot: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """`ingest --oanda` fills the ledger from a v20 feed, resumably, never printing the token."""
    from autolearn.ledger.sql import SqlLedger
    from autolearn.testing.oanda_v20 import FakeV20Server

    session = json.loads((REPO / "tests/data/oanda/usd_jpy_session.json").read_text())
    token = "tok-" + "s3cr3t" * 6
    ledger_url = f"sqlite:///{bot / 'logs' / 'ledger.db'}"
    monkeypatch.setenv("OANDA_TOKEN", token)
    with FakeV20Server(
        account_id=session["account_id"],
        token=token,
        transactions=session["transactions"],
        page_size=20,
    ) as server:
        args = [
            "--ledger",
            ledger_url,
            "ingest",
            "--oanda",
            "--account",
            session["account_id"],
            "--oanda-url",
            server.base_url,
        ]
        assert main(args) == 0
        assert main(args) == 0  # resumes from the cursor: nothing new, nothing duplicated
    ledger = SqlLedger.open(ledger_url)
    try:
        assert ledger.count_trades() == len(session["expected"])
    finally:
        ledger.close()
    out, err = capfd.readouterr()
    assert token not in out + err
    assert _porcelain(bot) == ""


def test_ingest_oanda_since_id_skips_older_transactions(
    bot: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a first run, --since-id starts after that transaction: older closes are not imported."""
    from autolearn.ledger.sql import SqlLedger
    from autolearn.testing.oanda_v20 import FakeV20Server

    session = json.loads((REPO / "tests/data/oanda/usd_jpy_session.json").read_text())
    closes = sorted(int(e["close_tx_id"]) for e in session["expected"])
    cut = closes[len(closes) // 2 - 1]  # the id of a close: everything after it is newer
    token = "tok-" + "x" * 24
    ledger_url = f"sqlite:///{bot / 'logs' / 'ledger.db'}"
    monkeypatch.setenv("OANDA_TOKEN", token)
    with FakeV20Server(
        account_id=session["account_id"], token=token, transactions=session["transactions"]
    ) as server:
        args = [
            "--ledger",
            ledger_url,
            "ingest",
            "--oanda",
            "--account",
            session["account_id"],
            "--oanda-url",
            server.base_url,
            "--since-id",
            str(cut),
        ]
        assert main(args) == 0
    with SqlLedger.open(ledger_url) as ledger:
        stored = sorted(int(t.close_tx_id) for t in ledger.trades())
    assert stored == [c for c in closes if c > cut]


class TestUndo:
    """``undo`` addresses a change, not the newest record: timers may run in between."""

    knob = "exit.lowvol.hazard_debounce_ticks"

    def _history(self, bot: Path) -> list[dict[str, object]]:
        path = bot / "logs" / "tuning" / "history.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    def test_undo_by_knob_after_a_tune_run(
        self, bot: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A tune cycle after the change does not matter: --last KNOB undoes that change."""
        assert main(["set", self.knob, "3", "--reason", "drill"]) == 0
        change = self._history(bot)[-1]
        main(["tune"])  # a timer run: the newest record is now the tuner's
        assert self._history(bot)[-1]["mechanism"] == "tuner"
        capsys.readouterr()
        assert main(["undo", "--last", self.knob, "--reason", "drill: undo"]) == 0
        out = capsys.readouterr()
        done = json.loads(out.out)
        assert done["undone"] == change["run_id"]
        assert done["diff"] == [{"knob": self.knob, "before": 3, "after": 2}]
        assert f"state dir {bot / 'logs' / 'tuning'}" in out.err
        last = self._history(bot)[-1]
        assert last["decision"] == "undo" and last["undone_run_id"] == change["run_id"]
        assert {"user", "uid", "host"} <= set(last["actor"])

    def test_undo_a_tuner_change_with_timer_runs_in_between(
        self, bot: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A tuner's apply, then more tune runs and an operator set of another knob: `undo
        --last-by tuner` reverts just the tuner's knob; the later change stays."""
        from datetime import UTC, datetime

        from autolearn.adapters.state import StateStore
        from autolearn.core.knobs import Owner

        store = StateStore(bot / "logs" / "tuning", load_registry(bot / "config" / "knobs.yaml"))
        record = {"mechanism": "tuner", "decision": "apply", "run_id": "tuner-run-1"}
        result = store.apply(Owner.TUNER, {self.knob: 3}, datetime.now(UTC), record=record)
        assert result.applied
        main(["tune"])
        assert main(["set", "exit.lowvol.upper_bound_max_sec", "4.0", "--reason", "later"]) == 0
        main(["tune"])
        capsys.readouterr()
        assert main(["undo", "--last-by", "tuner", "--reason", "bad tuner change"]) == 0
        assert json.loads(capsys.readouterr().out)["undone"] == "tuner-run-1"
        values = store.current_values()
        assert values[self.knob] == 2 and values["exit.lowvol.upper_bound_max_sec"] == 4.0

    def test_undo_by_run_id_and_by_mechanism(
        self, bot: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """RUN_ID names the change; --last-by names the newest change of a mechanism."""
        assert main(["set", self.knob, "3", "--reason", "one"]) == 0
        first = self._history(bot)[-1]["run_id"]
        assert main(["set", "exit.lowvol.upper_bound_max_sec", "4.0", "--reason", "two"]) == 0
        assert main(["undo", str(first), "--reason", "undo one"]) == 0
        assert main(["undo", "--last-by", "operator", "--reason", "undo the undo"]) == 0
        capsys.readouterr()
        assert main(["diff"]) == 0
        runtime = {r["knob"]: r["runtime"] for r in json.loads(capsys.readouterr().out)["diff"]}
        assert runtime == {self.knob: 3, "exit.lowvol.upper_bound_max_sec": 4.0}

    def test_undo_refuses_a_knob_changed_since(
        self, bot: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A knob moved by a later change is named and nothing is undone (65)."""
        assert main(["set", self.knob, "3", "--reason", "one"]) == 0
        first = self._history(bot)[-1]["run_id"]
        assert main(["set", self.knob, "1", "--reason", "two"]) == 0
        before = len(self._history(bot))
        capsys.readouterr()
        assert main(["undo", str(first), "--reason", "late"]) == 65
        assert f"{self.knob} is 1, not 3" in capsys.readouterr().err
        assert len(self._history(bot)) == before

    @pytest.mark.parametrize(
        "args",
        [
            ["undo", "--reason", "x"],
            ["undo", "r1", "--last", "k", "--reason", "x"],
            ["undo", "--last", "exit.lowvol.hazard_debounce_ticks"],
        ],
    )
    def test_undo_usage(self, bot: Path, args: list[str]) -> None:
        """No change named, two named, or no reason: a usage error (exit 2)."""
        assert main(args) == 2

    def test_rollback_to_the_current_version_is_refused(
        self, bot: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The racy recipe (target = the newest record's version_before) fails loudly."""
        assert main(["set", self.knob, "3", "--reason", "drill"]) == 0
        current = self._history(bot)[-1]["version_after"]
        capsys.readouterr()
        assert main(["rollback", "--to", str(current), "--reason", "racy"]) == 65
        assert "is the current version" in capsys.readouterr().err


class TestWhichState:
    """Operator commands say which state they changed and never start a fresh one by accident."""

    def test_freeze_outside_the_bot_without_settings_is_refused(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """No flag, variable or env file: a missing ./logs/tuning is refused (78), not created."""
        for name in ("AUTOLEARN_BOT_ROOT", "AUTOLEARN_STATE_DIR", "AUTOLEARN_LEDGER_URL"):
            monkeypatch.delenv(name, raising=False)
        empty = tmp_path / "empty.env"
        empty.write_text("# nothing here\n")
        monkeypatch.setenv("AUTOLEARN_ENV_FILE", str(empty))
        monkeypatch.chdir(tmp_path)
        assert main(["freeze", "tuner", "--reason", "x"]) == 78
        assert "autolearn init" in capsys.readouterr().err
        assert not (tmp_path / "logs").exists()

    def test_the_env_file_names_the_state_for_commands_run_by_hand(
        self,
        bot: Path,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """AUTOLEARN_ENV_FILE settings reach the CLI; the command prints the state dir it used."""
        monkeypatch.delenv("AUTOLEARN_BOT_ROOT")
        env_file = tmp_path / "autolearn.env"
        state = bot / "logs" / "tuning"
        env_file.write_text(f"# as /etc/autolearn.env\nexport AUTOLEARN_BOT_ROOT='{bot}'\n")
        monkeypatch.setenv("AUTOLEARN_ENV_FILE", str(env_file))
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        assert main(["freeze", "tuner", "--reason", "by hand"]) == 0
        err = capsys.readouterr().err
        assert f"state dir {state} (settings from {env_file})" in err
        assert json.loads((state / "control.json").read_text())["mechanisms"]["tuner"]["frozen"]
        assert not (elsewhere / "logs").exists()

    def test_a_bad_env_file_is_a_config_error(
        self, bot: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A named env file that is missing or not KEY=VALUE exits 78."""
        monkeypatch.setenv("AUTOLEARN_ENV_FILE", str(tmp_path / "nope.env"))
        assert main(["freeze", "tuner", "--reason", "x"]) == 78
        bad = tmp_path / "bad.env"
        bad.write_text("AUTOLEARN_BOT_ROOT\n")
        monkeypatch.setenv("AUTOLEARN_ENV_FILE", str(bad))
        assert main(["freeze", "tuner", "--reason", "x"]) == 78


class TestRecover:
    """A corrupt effective.json is recovered from the last good snapshot, and recorded."""

    def test_recover_restores_the_last_good_snapshot(
        self, bot: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`recover` writes the last applied version back, keeps the bad file, records it."""
        knob = "exit.lowvol.hazard_debounce_ticks"
        state = bot / "logs" / "tuning"
        assert main(["set", knob, "3", "--reason", "before the damage"]) == 0
        good = json.loads((state / "history.jsonl").read_text().splitlines()[-1])["version_after"]
        (state / "effective.json").write_text('{"schema_version": 1, "values": {')  # torn
        assert main(["set", knob, "1", "--reason", "x"]) == 65  # nothing works on it...
        assert main(["recover", "--reason", "disk hiccup"]) == 0  # ...but this
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert out["to"] == good and Path(out["kept_as"]).read_text().startswith('{"schema')
        capsys.readouterr()
        assert main(["diff"]) == 0
        assert json.loads(capsys.readouterr().out)["diff"][0]["runtime"] == 3
        last = json.loads((state / "history.jsonl").read_text().splitlines()[-1])
        assert last["decision"] == "recover" and last["target_version"] == good
        assert "not valid JSON" in last["recovered_from"]["problem"]
        assert _porcelain(bot) == ""

    def test_recover_refuses_a_readable_state(
        self, bot: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """On a readable effective.json, recover changes nothing and exits 65."""
        assert main(["set", "exit.lowvol.hazard_debounce_ticks", "3", "--reason", "x"]) == 0
        assert main(["recover", "--reason", "not needed"]) == 65
        assert "reads fine" in capsys.readouterr().err


class TestStatusHeadline:
    """Status leads with what stops or limits trading, and names who acted."""

    def test_frozen_disabled_and_blocked_lead_the_report(
        self, bot: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """FROZEN / DISABLED / BLOCKED come first, with reason and expiry; unfreeze is live."""
        assert main(["systemd", "enable", "policy", "--reason", "go", "--no-systemctl"]) == 0
        assert main(["freeze", "tuner", "--reason", "spread spike"]) == 0
        assert main(["systemd", "disable", "policy", "--reason", "maint", "--no-systemctl"]) == 0
        assert main(["set", "pockets.micro.allow_new", "false", "--reason", "news"]) == 0
        main(["tune"])  # a frozen run
        capsys.readouterr()
        main(["status", "--json"])
        report = json.loads(capsys.readouterr().out)
        switches = report["switches"]
        assert switches[0].startswith("FROZEN tuner:") and "spread spike" in switches[0]
        assert switches[1].startswith("DISABLED policy:") and "maint" in switches[1]
        assert switches[2].startswith("BLOCKED micro until 20")
        main(["status"])
        text = capsys.readouterr().out
        assert text.splitlines()[1].startswith("FROZEN tuner")
        assert main(["unfreeze", "tuner", "--reason", "calm"]) == 0
        capsys.readouterr()
        main(["status", "--json"])
        report = json.loads(capsys.readouterr().out)
        tuner = next(m for m in report["mechanisms"] if m["mechanism"] == "tuner")
        assert tuner["mode"] == "live"  # not "shadow" until the next run
        assert not any(s.startswith("FROZEN") for s in report["switches"])
        history = (bot / "logs" / "tuning" / "history.jsonl").read_text().splitlines()
        records = [json.loads(h) for h in history]
        operator = [
            r for r in records if r["mechanism"] == "operator" or r["decision"][:9] == "operator_"
        ]
        assert len(operator) == 5
        assert all({"user", "uid", "host"} <= set(r["actor"]) for r in operator)

    def test_recover_a_deleted_effective(
        self, bot: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A deleted effective.json (applies in the history) is recovered the same way."""
        state = bot / "logs" / "tuning"
        assert main(["set", "exit.lowvol.hazard_debounce_ticks", "3", "--reason", "x"]) == 0
        (state / "effective.json").unlink()
        assert main(["recover", "--reason", "clean-up job"]) == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["kept_as"] is None
        assert main(["diff"]) == 0
        assert json.loads(capsys.readouterr().out)["diff"][0]["runtime"] == 3


class TestConventions:
    """--version, usage errors exit 2, broken pipes keep the code, people get a summary."""

    def test_version(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`--version` prints the package version and exits 0."""
        from autolearn import __version__

        assert main(["--version"]) == 0
        assert capsys.readouterr().out.strip() == f"autolearn {__version__}"

    def test_usage_errors_exit_2_with_a_message(
        self, bot: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`ingest` with no files and `explain` of an unknown knob are usage errors."""
        assert main(["ingest"]) == 2
        assert "give files to import" in capsys.readouterr().err
        assert main(["explain", "no.such.knob"]) == 2
        assert "unknown knob 'no.such.knob'" in capsys.readouterr().err

    @pytest.mark.parametrize("args", [["history", "--json"], ["knobs"], ["doctor"]])
    def test_a_broken_pipe_keeps_the_exit_code(self, bot: Path, args: list[str]) -> None:
        """`autolearn ... | true` (the reader gone first) exits as it does unpiped, not 1."""
        assert main(["set", "exit.lowvol.hazard_debounce_ticks", "3", "--reason", "x"]) == 0
        run = "import sys; from autolearn.cli import main; sys.exit(main(sys.argv[1:]))"
        cmd = f"'{sys.executable}' -c '{run}' {' '.join(args)}"
        codes = [
            subprocess.run(
                ["bash", "-c", f"set -o pipefail; {cmd} {tail}"],
                capture_output=True,
                text=True,
                check=False,
            ).returncode
            for tail in ("> /dev/null", "| true")
        ]
        assert codes[1] == codes[0], codes
        if args[0] != "doctor":
            assert codes == [0, 0]

    def test_tune_prints_a_summary_to_a_person(
        self, bot: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """On a TTY `tune` prints a few lines; piped, or with --json, the JSON record."""
        assert main(["tune"]) == 0
        assert json.loads(capsys.readouterr().out)["mechanism"] == "tuner"
        monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
        assert main(["tune"]) == 0
        text = capsys.readouterr().out
        assert text.startswith("tuner: ") and "reasons: " in text and len(text) < 2000
        monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
        assert main(["tune", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["mechanism"] == "tuner"
