"""docs/ADOPT_QUANTRABBIT.md, run against a pretend QuantRabbit checkout, end to end.

The guide's ``<!-- run -->`` blocks run in order in a checkout laid out like the original
(tracked presets and reentry YAML, ignored ``logs/``) whose v3 ``logs/trades.db`` the pretend
position manager writes in mixed timestamp formats; ``git status --porcelain`` must stay empty
after every block, every exported value must read back through the original's loaders, the
policy block must appear as ``allow_new: false`` and a rollback must restore the previous
exports byte for byte.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from autolearn.compat.quantrabbit import perf_guard
from autolearn.compat.quantrabbit.backend import backend, configure
from autolearn.compat.quantrabbit.config import load_compat_config
from autolearn.compat.quantrabbit.loader import OriginalReader
from autolearn.settings import load_registry
from tests.compat.pretend import Fill, git, make_checkout, write_trades

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "ADOPT_QUANTRABBIT.md"
EXPORTS = (
    "logs/tuning/tuning_overlay.yaml",
    "logs/policy_overlay.json",
    "logs/tuning/scalp_active_params.json",
)


def runnable_blocks(text: str) -> list[str]:
    return re.findall(r"<!-- run -->\n```bash\n(.*?)```", text, flags=re.S)


def losing_micro(now: datetime, n: int = 30, first_tx: int = 1000) -> list[Fill]:
    styles = ("iso", "space_ns", "no_fraction")
    return [
        Fill(
            tx=first_tx + i,
            ticket=str(500 + i),
            pocket="micro",
            strategy="MomentumPulse",
            units=1000 if i % 2 else -1000,
            entry=150.0,
            close=(149.9 if i % 2 else 150.1) if i % 5 else (150.02 if i % 2 else 149.98),
            close_at=now - timedelta(hours=n - i),
            style=styles[i % 3],
        )
        for i in range(n)
    ]


@pytest.fixture(name="bot")
def _bot(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = make_checkout(tmp_path / "QuantRabbit")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOLEARN_", "TUNING_"))}
    env |= {
        "BOT": str(root),
        "AUTOLEARN_BOT_ROOT": str(root),
        "AUTOLEARN_ENV_FILE": os.devnull,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    }
    return root, env


def run_block(block: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, f"block failed:\n{block}\n{done.stdout}\n{done.stderr}"
    assert done.stdout.strip().splitlines()[-1:] != ["M"], done.stdout


def exports(root: Path) -> dict[str, bytes]:
    return {rel: (root / rel).read_bytes() for rel in EXPORTS}


def test_guide_runs_in_a_pretend_checkout(bot: tuple[Path, dict[str, str]]) -> None:
    """Follow + shadow + live policy + rollback through the guide; git stays clean throughout."""
    root, env = bot
    blocks = runnable_blocks(GUIDE.read_text(encoding="utf-8"))
    assert len(blocks) == 5
    write_trades(root / "logs" / "trades.db", losing_micro(datetime.now(UTC)))
    seen: list[dict[str, bytes]] = []
    for index, block in enumerate(blocks):
        run_block(block, env)
        assert git(root, "status", "--porcelain") == "", f"dirty after block {index + 1}"
        if index >= 1:
            seen.append(exports(root))
    before_live, after_shadow, after_live = seen[0], seen[1], seen[2]
    assert json.loads(before_live[EXPORTS[1]])["pockets"]["micro"]["entry_gates"]["allow_new"]
    assert after_shadow == before_live, "a shadow run changed an export"
    policy = json.loads((root / "logs/policy_overlay.json").read_text())
    assert policy["pockets"]["micro"]["entry_gates"]["allow_new"] is False
    assert policy["pockets"]["macro"]["entry_gates"]["allow_new"] is True
    reader = OriginalReader(root)
    assert reader.entry_allowed("micro", "MomentumPulse", "long") == (
        False,
        "policy_allow_new_false",
    )
    assert reader.entry_allowed("macro", "TrendMA", "long") == (True, "ok")

    # an operator's live change of a tuner knob reaches the overlay, off its preset
    run_block('cd "$BOT"\nautolearn set exit.lowvol.min_grace_before_scratch_ms 90 --reason t', env)
    assert reader.get_tuning_value(["exit", "lowvol", "min_grace_before_scratch_ms"]) == 90
    assert_every_value_reads_back(root, env)

    # a rollback to the version exported before the live runs restores those bytes exactly
    target = yaml.safe_load(before_live[EXPORTS[0]])["meta"]["autolearn_version"]
    run_block(f'cd "$BOT"\nautolearn rollback --to {target} --reason "undo the block"', env)
    assert exports(root) == before_live
    assert git(root, "status", "--porcelain") == ""
    assert after_live != before_live


def test_shims_open_from_the_bot_settings(
    bot: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that only changed its imports gets answers from the checkout's autolearn state:
    the policy block and the perf guard over the followed trades."""
    root, env = bot
    write_trades(root / "logs" / "trades.db", losing_micro(datetime.now(UTC)))
    run_block('cd "$BOT"\nautolearn ingest --follow logs/trades.db\nautolearn policy', env)
    for key in ("AUTOLEARN_BOT_ROOT", "AUTOLEARN_ENV_FILE"):
        monkeypatch.setenv(key, env[key])
    for key in ("AUTOLEARN_STATE_DIR", "AUTOLEARN_LEDGER_URL", "AUTOLEARN_REGISTRY"):
        monkeypatch.delenv(key, raising=False)
    configure(None)
    try:
        assert not perf_guard.is_pocket_allowed("micro").allowed
        decision = perf_guard.is_allowed("MomentumPulse", "micro")
        assert not decision.allowed and decision.sample == 30
        assert perf_guard.is_allowed("TrendMA", "macro").allowed
    finally:
        backend().gates.close()
        configure(None)
    assert git(root, "status", "--porcelain") == ""


def assert_every_value_reads_back(root: Path, env: dict[str, str]) -> None:
    """Every mapped knob, as the original's loaders read it, equals autolearn's current value."""
    registry = load_registry(None)
    config = load_compat_config(root / "config" / "autolearn_compat.yaml")
    effective = json.loads((root / "logs/tuning/effective.json").read_text())
    values = {**registry.defaults(), **effective["values"]}
    reader = OriginalReader(root, {})
    overlay = root / "logs/tuning/tuning_overlay.yaml"
    scalp = reader.scalp_file()
    checked = 0
    for knob, value in values.items():
        entry = config.path_of(knob)
        if entry is None:
            assert config.unexported_reason(knob), knob
            continue
        path = entry.resolve(knob)
        assert path is not None
        if entry.file == "tuning_overlay":
            assert reader.get_tuning_value(path.split(".")) == value, knob
            assert reader.tuning_source(path.split(".")) == overlay, knob
        elif entry.file == "scalp_active_params":
            node = scalp
            for part in path.split("."):
                node = node[part]
            assert node == value, knob
        elif path.endswith(".strategies"):
            continue  # the allow-list: checked through entry_allowed
        else:
            node = reader.policy()
            for part in path.split("."):
                node = node[part]
            assert node == value, knob
        checked += 1
    assert checked >= 20
    # a preset key no knob owns still reads through (RangeRevertLite is humans-only)
    assert reader.get_tuning_value(["strategies", "RangeRevertLite", "band_pips"]) == 4.0
