"""Disk and permissions: a full disk during apply, private files, safe YAML, no path escape.

A full disk is a real ``autolearn`` process under ``RLIMIT_FSIZE``: Python ignores SIGXFSZ, so a
write past the limit fails with EFBIG (or is cut short) exactly where a full disk gives ENOSPC,
at whichever file the limit hits first (snapshot, effective.json, the history). No privileges,
no loop mount. A read-only filesystem cannot be mounted unprivileged here and chmod does not
bind root, so the unwritable-directory case uses a state dir whose parent is a regular file
(ENOTDIR), which fails at the same ``mkdir``/``open`` calls.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autolearn.adapters.state import StateStore
from autolearn.cli import main
from autolearn.core.apply_guard import ApplyKind
from autolearn.errors import StateError
from autolearn.runtime import Tuning

SRC = Path(__file__).resolve().parents[2] / "src" / "autolearn"
KNOB = "strategies.MomentumPulse.min_confidence"


def _template(bot: Any, path: Path, applies: int) -> None:
    store = bot.store(path)
    now = datetime.now(UTC)
    for i in range(applies):
        value = (0.6, 0.7)[i % 2]
        store.apply("operator", {KNOB: value}, now, kind=ApplyKind.OPERATOR, record={"i": i})


@pytest.mark.slow
def test_full_disk_during_apply_keeps_old_version(
    drivers: ModuleType, zygote: Any, bot: Any, tmp_path: Path, figures: dict[str, Any]
) -> None:
    """Under a file-size limit at every stage of apply: exit 65 with the old version, or exit 0."""
    template = tmp_path / "template"
    _template(bot, template, 6)
    history = (template / "history.jsonl").stat().st_size
    limits = sorted(
        {
            64,
            200,
            400,
            700,
            1000,
            1500,
            2000,
            3000,
            history - 1,
            history + 50,
            history + 400,
            history + 900,
            history + 1500,
            history + 5000,
        }
    )
    outcomes: dict[str, int] = {"refused": 0, "applied": 0}
    problems: list[str] = []
    for limit in limits:
        state = tmp_path / f"limit{limit}"
        drivers.copy_state(template, state)
        before = bot.store(state).read_effective().version
        log = tmp_path / f"limit{limit}.log"
        job = drivers.Job(
            argvs=[["set", KNOB, "0.65", "--reason", "disk"]],
            env=bot.env(state_dir=state),
            cwd=bot.root,
            log=log,
            fsize=limit,
        )
        result = zygote.run([job])[0]
        text = log.read_text()
        assert result.rc in (0, 65), (limit, result, text)
        seen = drivers.check_state(state, bot.registry)
        if result.rc == 65:
            outcomes["refused"] += 1
            assert re.search(r"cannot (write|append|open|create)", text), text
            if seen.version != before:
                problems.append(f"limit {limit}: exit 65 but the version moved ({text[:90]})")
        else:
            outcomes["applied"] += 1
            assert seen.version != before
            if seen.torn_last or seen.unrecorded:
                problems.append(f"limit {limit}: exit 0 with a torn, unrecorded history record")
        again = zygote.run(
            [
                drivers.Job(
                    argvs=[["set", KNOB, "0.66", "--reason", "x"]],
                    env=bot.env(state_dir=state),
                    cwd=bot.root,
                    log=log,
                )
            ]
        )
        assert again[0].rc == 0, log.read_text()
        drivers.check_state(state, bot.registry, seen.torn_lines)
    figures["disk_full"] = {"limits_tried": len(limits), "violations": len(problems), **outcomes}
    assert outcomes["refused"] >= 3 and outcomes["applied"] >= 1
    assert problems == []


def test_unwritable_state_dir_is_a_clear_error(
    bot: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A state dir that cannot be created (parent is a file) exits 65 naming the path."""
    blocker = tmp_path / "notadir"
    blocker.write_text("x")
    rc = main(["--state-dir", str(blocker / "state"), "set", KNOB, "0.62", "--reason", "ro"])
    err = capsys.readouterr().err
    assert rc == 65 and str(blocker) in err


def test_ledger_on_full_disk_is_a_clear_error(
    drivers: ModuleType, zygote: Any, bot: Any, qr_csv: Path, tmp_path: Path
) -> None:
    """Ingest under a tiny file-size limit exits with a data error and leaves no partial rows."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    log = tmp_path / "ingest.log"
    job = drivers.Job(
        argvs=[["ingest", str(qr_csv)]],
        env=bot.env(ledger_url=url),
        cwd=bot.root,
        log=log,
        fsize=20_000,
    )
    result = zygote.run([job])[0]
    assert result.rc == 65, log.read_text()
    assert "error" in log.read_text()
    ok = zygote.run(
        [
            drivers.Job(
                argvs=[["ingest", str(qr_csv)]], env=bot.env(ledger_url=url), cwd=bot.root, log=log
            )
        ]
    )[0]
    assert ok.rc == 0


def test_state_files_are_private_even_with_umask_zero(
    drivers: ModuleType, zygote: Any, bot: Any, tmp_path: Path
) -> None:
    """Files the CLI creates under the state dir are 0600; no directory is group/world-writable."""
    state = tmp_path / "private"
    argvs = [
        ["set", KNOB, "0.62", "--reason", "p"],
        ["freeze", "tuner", "--reason", "p"],
        ["tune"],
        ["policy"],
    ]
    result = zygote.run(
        [
            drivers.Job(
                argvs=argvs,
                env=bot.env(state_dir=state),
                cwd=bot.root,
                log=tmp_path / "p.log",
                umask=0,
            )
        ]
    )[0]
    assert result.rc == 0, (tmp_path / "p.log").read_text()
    checked = 0
    for path in [state, *state.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        private = 0o077 if path.is_file() else 0o022
        assert mode & private == 0, f"{path} is {oct(mode)}"
        checked += 1
    assert checked >= 8


def test_yaml_is_only_safe_loaded() -> None:
    """No module calls yaml.load without a SafeLoader, nor unsafe_load / full_load."""
    offenders = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        for match in re.finditer(r"yaml\.(\w+)\(([^)]*)", text):
            func, args = match.groups()
            if func in ("unsafe_load", "full_load", "load_all", "unsafe_load_all"):
                offenders.append(f"{path}: yaml.{func}")
            if func == "load" and "Loader=_StrictLoader" not in args and "SafeLoader" not in args:
                offenders.append(f"{path}: yaml.load({args})")
    assert offenders == []


_EXPLOIT = "x: !!python/object/apply:os.system ['touch {marker}']\n"


def test_yaml_tags_never_execute(
    bot: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A python tag in the registry, tuner/gates config or a legacy overlay is refused, not run."""
    marker = tmp_path / "pwned"
    payload = _EXPLOIT.format(marker=marker)
    bad = tmp_path / "bad.yaml"
    bad.write_text(payload)
    state = ["--state-dir", str(tmp_path / "state")]
    assert main(["--registry", str(bad), *state, "knobs"]) == 78
    assert main([*state, "tune", "--config", str(bad)]) == 78
    assert main([*state, "policy", "--config", str(bad)]) == 78
    capsys.readouterr()
    (bot.root / "config" / "tuning_overlay.yaml").write_text(payload)
    tuning = Tuning(tmp_path / "state", bot.registry, bot_root=bot.root)
    assert tuning.get(KNOB) == bot.registry.spec(KNOB).default
    assert not marker.exists()


_names = st.one_of(
    st.sampled_from(
        [
            "../x",
            "../../etc/passwd",
            "/etc/passwd",
            "a/../../b",
            "..",
            ".",
            "v../x",
            "v" + "../" * 3 + "x",
            "tuner/../../x",
            "\x00",
            "lock/../../x",
        ]
    ),
    st.text(alphabet="./\\abcv0", min_size=1, max_size=12),
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=_names)
def test_names_cannot_escape_the_state_dir(
    tmp_path: Path, bot: Any, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Knob, version, mechanism and lock names never create or read a file outside the state dir."""
    state = tmp_path / "jail" / "state"
    state.mkdir(parents=True, exist_ok=True)
    outside = {p for p in tmp_path.rglob("*") if state not in p.parents and p != state}
    store = StateStore(state, bot.registry)
    for call in (
        lambda: store.read_mechanism(name),
        lambda: store.write_mechanism(name, {}),
        lambda: store.read_snapshot(name),
        lambda: store.lock(name).__enter__(),
    ):
        with contextlib.suppress(StateError, KeyError):
            call()
    for argv in (
        ["set", name, "1", "--reason", "t"],
        ["rollback", "--to", name, "--reason", "t"],
        ["freeze", name, "--reason", "t"],
        ["explain", name],
    ):
        assert main(["--state-dir", str(state), *argv]) in (0, 1, 2, 65, 77)
    capsys.readouterr()
    after = {p for p in tmp_path.rglob("*") if state not in p.parents and p != state}
    assert after == outside
    assert os.path.exists("/etc/passwd")
