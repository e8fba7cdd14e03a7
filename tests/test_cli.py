"""The command line: exit codes per error class, operator actions recorded, git left clean."""

from __future__ import annotations

import json
import shutil
import subprocess
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
    from autolearn.oanda.fake_server import FakeV20Server

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
    from autolearn.oanda.fake_server import FakeV20Server

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
