"""Ledger URL typos never create ledgers; a created ledger is private (issue 13, item 10)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from autolearn.errors import LedgerError
from autolearn.ledger.sql import SqlLedger

CLI = "import sys; from autolearn.cli import main; sys.exit(main(sys.argv[1:]))"


class TestTypos:
    @pytest.mark.parametrize("url", ["notaurl", "ledger", "sqlite:/x.db"])
    def test_a_word_is_not_a_ledger(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
    ) -> None:
        """A bare word (no URL, no SQLite suffix, no such file) is refused; nothing is created."""
        monkeypatch.chdir(tmp_path)
        with pytest.raises(LedgerError):
            SqlLedger.open(url)
        assert list(tmp_path.iterdir()) == []

    def test_an_existing_file_and_a_db_suffix_still_work(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``trades.db`` as a bare path works, and so does an existing file of any name."""
        monkeypatch.chdir(tmp_path)
        SqlLedger.open("trades.db").close()
        os.rename("trades.db", "ledger")
        SqlLedger.open("ledger").close()

    def test_no_top_level_directory_is_created(self) -> None:
        """``sqlite:////nonexistent/dir/x.db`` is refused: autolearn never creates /nonexistent."""
        missing = Path("/autolearn-nonexistent-test-dir")
        assert not missing.exists()
        with pytest.raises(LedgerError, match="top-level directory"):
            SqlLedger.open(f"sqlite:///{missing}/dir/x.db")
        assert not missing.exists()

    def test_ledger_file_is_private(self, tmp_path: Path) -> None:
        """A new SQLite ledger is 0600 (and its directories 0700), whatever the umask."""
        old = os.umask(0o022)
        try:
            path = tmp_path / "new" / "l.db"
            SqlLedger.open(f"sqlite:///{path}").close()
        finally:
            os.umask(old)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_failed_ingest_leaves_no_ledger(tmp_path: Path) -> None:
    """``ingest`` of a missing file exits 65 and creates no ledger."""
    ledger = tmp_path / "logs" / "autolearn" / "ledger.db"
    env = {**os.environ, "AUTOLEARN_BOT_ROOT": str(tmp_path)}
    env.pop("AUTOLEARN_LEDGER_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", CLI, "ingest", str(tmp_path / "missing.csv")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 65, out.stderr
    assert "missing.csv" in out.stderr
    assert not ledger.exists()
