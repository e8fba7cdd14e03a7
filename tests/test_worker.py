"""``autolearn.connect``: one entry point for a bot's worker, one reader of effective.json."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import autolearn
from autolearn.settings import Settings
from autolearn.testing import make_trade

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_snippet() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("### One entry point for a bot: `autolearn.connect`", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README lost its connect snippet"
    return match.group(1)


@pytest.fixture(autouse=True)
def _no_autolearn_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests place everything under their own bot root, whatever the caller's env says."""
    for name in ("AUTOLEARN_BOT_ROOT", "AUTOLEARN_STATE_DIR", "AUTOLEARN_REGISTRY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AUTOLEARN_LEDGER_URL", raising=False)


class TestConnect:
    def test_readme_snippet_runs(self, tmp_path: Path) -> None:
        """The README's connect snippet runs as written on an empty bot checkout."""
        namespace: dict[str, object] = {"bot_root": tmp_path}
        exec(compile(_readme_snippet(), "README.md", "exec"), namespace)
        assert namespace["min_confidence"] == 0.65
        assert isinstance(namespace["version"], str)

    def test_gates_share_the_workers_tuning(self, tmp_path: Path) -> None:
        """The gates read knobs through the worker's Tuning, not a second reader."""
        with autolearn.connect(tmp_path) as worker:
            assert worker.gates._knobs.__self__ is worker.tuning  # type: ignore[attr-defined]
            assert worker.settings.bot_root == tmp_path.resolve()

    def test_settings_and_defaults_place_everything_under_the_root(self, tmp_path: Path) -> None:
        """``connect(settings)`` uses the given paths; the ledger writer records trades there."""
        settings = Settings.resolve(bot_root=tmp_path, env={})
        with autolearn.connect(settings) as worker:
            now = datetime.now(UTC).replace(microsecond=0)
            counts = worker.ledger.record_trade(
                make_trade(close_at=now - timedelta(minutes=1), pl_pips=2.0)
            )
            assert counts.inserted == 1
            assert worker.ledger.ledger.count_trades() == 1
        assert (tmp_path / "logs" / "autolearn" / "ledger.db").is_file()

    def test_old_constructors_keep_working(self, tmp_path: Path) -> None:
        """``Tuning``, ``Gates.open`` and ``TradeWriter.open`` still stand alone."""
        from autolearn.gates import Gates
        from autolearn.ledger import TradeWriter
        from autolearn.runtime import Tuning
        from autolearn.settings import load_registry

        registry = load_registry(None)
        url = f"sqlite:///{tmp_path / 'l.db'}"
        tuning = Tuning(tmp_path / "state", registry)
        gates = Gates.open(url, tmp_path / "state", registry)
        writer = TradeWriter.open(url)
        assert tuning.get("strategies.MomentumPulse.min_confidence") == 0.65
        assert gates.check_entry("TrendMA", "macro", "long", 1.1, datetime.now(UTC)).allowed
        gates.close()
        writer.close()
