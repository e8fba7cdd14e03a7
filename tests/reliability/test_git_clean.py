"""Git cleanliness under load: a long mixed run of every mechanism leaves the checkout clean."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROUNDS = 6


@pytest.mark.slow
def test_long_mixed_run_leaves_git_status_clean(
    drivers: ModuleType,
    zygote: Any,
    bot: Any,
    qr_csv: Path,
    tmp_path: Path,
    figures: dict[str, Any],
) -> None:
    """Rounds of concurrent set/rollback/freeze/tune/policy/ingest/read runs: porcelain is empty."""
    from autolearn.cli._common import app

    env = {"AUTOLEARN_BOT_ROOT": str(bot.root)}  # defaults: state and ledger under logs/
    unset = ["AUTOLEARN_STATE_DIR", "AUTOLEARN_LEDGER_URL", "AUTOLEARN_REGISTRY"]
    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    readers = [["history", "--json"], ["snapshots"], ["diff"], ["explain", drivers.TUNER_KNOB]]
    readers += [[c, "--json"] for c in ("status", "doctor") if c in names]
    runs = 0
    for round_no in range(ROUNDS):
        value = f"0.{60 + round_no}"
        argvs = [
            ["ingest", str(qr_csv)],
            ["tune"],
            ["policy"],
            ["tune", "--shadow"],
            ["set", drivers.TUNER_KNOB, value, "--reason", "load"],
            ["freeze", "scalp_trainer", "--reason", "load"],
            ["unfreeze", "scalp_trainer", "--reason", "load"],
            *readers,
        ]
        jobs = [
            drivers.Job(argvs=[a], env=env, unset=unset, cwd=bot.root, log=tmp_path / "mixed.log")
            for a in argvs
        ]
        results = zygote.run(jobs)
        runs += len(jobs)
        for argv, result in zip(argvs, results, strict=True):
            assert result.rc in (0, 1, 2), (
                argv,
                result,
                (tmp_path / "mixed.log").read_text()[-2000:],
            )
        assert drivers.porcelain(bot.root) == "", f"round {round_no}"
    state = bot.root / "logs" / "tuning"
    assert (state / "effective.json").exists()
    drivers.check_state(state, bot.registry)
    figures["git_clean"] = {"runs": runs, "rounds": ROUNDS, "porcelain_lines": 0}
