"""The rendered systemd units: structure, non-overlap, limits, verification, install, switches."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autolearn.adapters.state import StateStore
from autolearn.errors import ConfigError, StateError, TrackedPathError
from autolearn.ops import install
from autolearn.ops.schedules import SCHEDULES, unit_base
from autolearn.ops.systemd import UnitOptions, parse_unit, render_units, systemd_span
from autolearn.settings import load_registry

OPTIONS = UnitOptions(
    bot_root=PurePosixPath("/home/bot/QuantRabbit"),
    state_dir=PurePosixPath("/home/bot/QuantRabbit/logs/tuning"),
    executable=PurePosixPath("/home/bot/venv/bin/autolearn"),
    ledger_url="sqlite:////home/bot/QuantRabbit/logs/autolearn/ledger.db",
    run_as="bot",
)


def _keys(pairs: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in pairs if k == key]


def _one(pairs: list[tuple[str, str]], key: str) -> str:
    values = _keys(pairs, key)
    assert len(values) == 1, f"{key}: {values}"
    return values[0]


def _seconds(span: str) -> int:
    match = re.fullmatch(r"(\d+)(s|min|h)", span)
    assert match, span
    return int(match.group(1)) * {"s": 1, "min": 60, "h": 3600}[match.group(2)]


class TestRender:
    def test_one_service_and_one_timer_per_mechanism(self) -> None:
        """Every scheduled mechanism gets exactly a .service and a .timer."""
        units = render_units(OPTIONS)
        expected = {f"{unit_base(m)}.{k}" for m in SCHEDULES for k in ("service", "timer")}
        assert set(units) == expected

    @pytest.mark.parametrize(
        ("mechanism", "cadence"),
        [("tuner", "10min"), ("policy", "15min"), ("scalp_trainer", "3h"), ("autotune", "1h")],
    )
    def test_timer_is_monotonic_at_the_briefed_cadence(self, mechanism: str, cadence: str) -> None:
        """The timer runs OnBootSec + OnUnitActiveSec at the cadence, jittered, no Persistent=."""
        timer = parse_unit(render_units(OPTIONS, [mechanism])[f"{unit_base(mechanism)}.timer"])
        t = timer["Timer"]
        assert _one(t, "OnUnitActiveSec") == cadence
        assert _seconds(_one(t, "OnBootSec")) > 0
        assert _seconds(_one(t, "AccuracySec")) > 0
        assert _seconds(_one(t, "RandomizedDelaySec")) > 0
        assert _one(t, "Unit") == f"{unit_base(mechanism)}.service"
        assert "Persistent" not in dict(t)  # meaningless on a monotonic timer (5.5)
        assert _one(timer["Install"], "WantedBy") == "timers.target"

    @pytest.mark.parametrize("mechanism", list(SCHEDULES))
    def test_service_is_a_locked_oneshot_with_its_environment(self, mechanism: str) -> None:
        """Oneshot, timeout shorter than the cadence, flock'ed, env and working dir set."""
        units = render_units(OPTIONS, [mechanism])
        service = parse_unit(units[f"{unit_base(mechanism)}.service"])["Service"]
        timer = parse_unit(units[f"{unit_base(mechanism)}.timer"])["Timer"]
        assert _one(service, "Type") == "oneshot"
        assert "Restart" not in dict(service)  # the original autotune looped on failure
        assert _seconds(_one(service, "TimeoutStartSec")) < _seconds(_one(timer, "OnUnitActiveSec"))
        exec_start = _one(service, "ExecStart").split()
        assert exec_start[0] == "/usr/bin/flock"
        assert "--nonblock" in exec_start
        lock = f"/home/bot/QuantRabbit/logs/tuning/locks/{mechanism}.unit.lock"
        assert lock in exec_start
        assert exec_start[-1 - len(SCHEDULES[mechanism].command)] == str(OPTIONS.executable)
        assert _one(service, "WorkingDirectory") == "/home/bot/QuantRabbit"
        assert _one(service, "EnvironmentFile") == "-/etc/autolearn.env"
        env = dict(v.split("=", 1) for v in _keys(service, "Environment"))
        assert env == {
            "AUTOLEARN_BOT_ROOT": "/home/bot/QuantRabbit",
            "AUTOLEARN_STATE_DIR": "/home/bot/QuantRabbit/logs/tuning",
            "AUTOLEARN_LEDGER_URL": "sqlite:////home/bot/QuantRabbit/logs/autolearn/ledger.db",
        }
        assert _one(service, "User") == "bot"

    def test_only_autotune_is_resource_limited(self) -> None:
        """Autotune runs niced, CPU/memory capped and on idle I/O; the light mechanisms do not."""
        units = render_units(OPTIONS)
        autotune = dict(parse_unit(units["autolearn-autotune.service"])["Service"])
        assert autotune["Nice"] == "10"
        assert autotune["CPUQuota"] == "50%"
        assert autotune["MemoryMax"] == "2G"
        assert autotune["IOSchedulingClass"] == "idle"
        tuner = dict(parse_unit(units["autolearn-tuner.service"])["Service"])
        assert "CPUQuota" not in tuner and "MemoryMax" not in tuner

    def test_user_units_drop_user_and_sandboxing(self) -> None:
        """User units cannot set User= or NoNewPrivileges=; the rest is identical."""
        user = UnitOptions(**{**_fields(OPTIONS), "user_mode": True, "run_as": None})
        service = dict(
            parse_unit(render_units(user, ["tuner"])["autolearn-tuner.service"])["Service"]
        )
        assert "User" not in service and "NoNewPrivileges" not in service
        assert service["Type"] == "oneshot"

    def test_percent_in_the_ledger_url_stays_literal(self) -> None:
        """A '%' (URL-encoded character) is doubled so systemd does not expand a specifier."""
        opts = UnitOptions(**{**_fields(OPTIONS), "ledger_url": "sqlite:////srv/a%20b/ledger.db"})
        text = render_units(opts, ["tuner"])["autolearn-tuner.service"]
        assert "Environment=AUTOLEARN_LEDGER_URL=sqlite:////srv/a%%20b/ledger.db" in text

    def test_no_ledger_url_leaves_it_to_the_env_file(self) -> None:
        """Without a URL (it holds a password) the unit sets no AUTOLEARN_LEDGER_URL."""
        opts = UnitOptions(**{**_fields(OPTIONS), "ledger_url": None})
        text = render_units(opts, ["tuner"])["autolearn-tuner.service"]
        assert "AUTOLEARN_LEDGER_URL" not in text

    def test_bad_options_are_all_reported(self) -> None:
        """Relative paths, whitespace and unknown mechanisms are listed in one ConfigError."""
        opts = UnitOptions(**{**_fields(OPTIONS), "bot_root": PurePosixPath("bot dir")})
        with pytest.raises(ConfigError) as info:
            render_units(opts, ["tuner", "nope"])
        assert len(info.value.problems) == 3

    @given(st.integers(min_value=1, max_value=10 * 86400))
    def test_span_round_trips(self, seconds: int) -> None:
        """systemd_span renders any whole number of seconds as an equal systemd time span."""
        assert _seconds(systemd_span(timedelta(seconds=seconds))) == seconds


def _fields(options: UnitOptions) -> dict[str, object]:
    return {name: getattr(options, name) for name in UnitOptions.__dataclass_fields__}


class TestSystemdAnalyze:
    def test_units_pass_systemd_analyze_verify(self, tmp_path: Path) -> None:
        """`systemd-analyze verify` accepts every rendered unit without warnings."""
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            pytest.skip("systemd-analyze not installed: `apt-get install -y systemd` to run this")
        exe = Path(sys.executable).parent / "autolearn"
        opts = UnitOptions(
            **{
                **_fields(OPTIONS),
                "executable": PurePosixPath(exe if exe.exists() else "/bin/true"),
                "bot_root": PurePosixPath(tmp_path),
                "state_dir": PurePosixPath(tmp_path / "state"),
                "run_as": "root",
            }
        )
        paths = install.write_units(render_units(opts), tmp_path / "units")
        out = subprocess.run(
            [analyze, "verify", *map(str, paths)], capture_output=True, text=True, check=False
        )
        messages = [
            line
            for line in (out.stdout + out.stderr).splitlines()
            if str(tmp_path / "units") in line or "Unknown" in line
        ]
        assert out.returncode == 0, out.stderr
        assert messages == []


class TestInstall:
    def test_refuses_a_tracked_target(self, bot_repo: Path, git_run: object) -> None:
        """Writing units over a git-tracked file is refused before anything is written."""
        units = render_units(OPTIONS, ["tuner"])
        target = bot_repo / "config"
        (target / "autolearn-tuner.timer").write_text("tracked\n")
        subprocess.run(["git", "-C", str(bot_repo), "add", "."], check=True)
        with pytest.raises(TrackedPathError):
            install.write_units(units, target)
        assert not (target / "autolearn-tuner.service").exists()

    def test_uninstall_never_deletes_a_foreign_file(self, tmp_path: Path) -> None:
        """A unit of the same name that autolearn did not generate is left alone, loudly."""
        (tmp_path / "autolearn-tuner.timer").write_text("[Timer]\nOnBootSec=1min\n")
        with pytest.raises(StateError, match="not generated by autolearn"):
            install.remove_units(["autolearn-tuner.timer"], tmp_path)
        assert (tmp_path / "autolearn-tuner.timer").exists()

    def test_install_then_uninstall_via_cli(self, cli, bot_env, tmp_path: Path) -> None:
        """install --no-systemctl writes 8 world-readable units; uninstall removes exactly them."""
        units = tmp_path / "units"
        (tmp_path / "units").mkdir()
        (units / "other.service").write_text("[Service]\nExecStart=/bin/true\n")
        result = cli("systemd", "install", "--out", str(units), "--no-systemctl")
        assert result.code == 0, result.err
        written = sorted(p.name for p in units.glob("autolearn-*"))
        assert len(written) == 8
        assert all((units / n).stat().st_mode & 0o777 == 0o644 for n in written)
        result = cli("systemd", "uninstall", "--out", str(units), "--no-systemctl")
        assert result.code == 0, result.err
        assert sorted(p.name for p in units.iterdir()) == ["other.service"]


class TestEnableDisable:
    def test_enable_keeps_the_freeze_switch_and_is_recorded(self, cli, bot_env) -> None:
        """enable merges into the control entry (a freeze survives) and leaves a record."""
        assert cli("freeze", "tuner", "--reason", "bad data").code == 0
        result = cli("systemd", "enable", "tuner", "--reason", "go live", "--no-systemctl")
        assert result.code == 0, result.err
        store = StateStore(Path(bot_env["AUTOLEARN_STATE_DIR"]), load_registry(None))
        entry = store.read_control()["mechanisms"]["tuner"]
        assert entry["frozen"] is True and entry["reason"] == "bad data"
        assert entry["enabled"] is True and entry["enabled_reason"] == "go live"
        decisions = [r["decision"] for r in store.history.read().records]
        assert decisions == ["operator_freeze", "operator_enable"]
        assert cli("systemd", "disable", "tuner", "--reason", "pause", "--no-systemctl").code == 0
        entry = store.read_control()["mechanisms"]["tuner"]
        assert entry["enabled"] is False and entry["frozen"] is True
        status = json.loads(cli("status", "--json").out)
        tuner = next(m for m in status["mechanisms"] if m["mechanism"] == "tuner")
        assert tuner["enabled"] is False and tuner["mode"] == "frozen"
        assert "pause" in tuner["enabled_source"]

    def test_unknown_mechanism_is_an_input_error(self, cli, bot_env) -> None:
        """A typo in the mechanism name exits 65 and changes nothing."""
        result = cli("systemd", "enable", "tunr", "--reason", "x", "--no-systemctl")
        assert result.code == 65
        assert "known: tuner" in result.err


def test_a_freeze_after_enable_keeps_the_mechanism_enabled(cli, bot_env) -> None:
    """`autolearn freeze` replaces the control entry; status still knows it was enabled."""
    assert cli("systemd", "enable", "tuner", "--reason", "go", "--no-systemctl").code == 0
    assert cli("freeze", "tuner", "--reason", "spike").code == 0
    tuner = json.loads(cli("status", "--json").out)["mechanisms"][0]
    assert (tuner["enabled"], tuner["mode"]) == (True, "frozen")
    assert tuner["enabled_source"].startswith("control.json")


class TestReviewDir:
    def test_render_out_inside_the_checkout_is_refused(self, cli, bot_env, bot_repo: Path) -> None:
        """``render --out ./units-review`` in the bot checkout writes nothing (exit 73) and says
        where to write instead: an untracked dir there would make doctor warn."""
        review = bot_repo / "units-review"
        result = cli("systemd", "render", "--mechanism", "tuner", "--out", str(review))
        assert result.code == 73, result.err
        assert "outside the checkout" in result.err and "--out /tmp/autolearn-units" in result.err
        assert not review.exists()
        assert subprocess.run(
            ["git", "-C", str(bot_repo), "status", "--porcelain"],
            capture_output=True, text=True, check=True,
        ).stdout == ""  # fmt: skip

    def test_render_out_into_an_ignored_or_outside_dir_is_fine(
        self, cli, bot_env, bot_repo: Path, tmp_path: Path
    ) -> None:
        """An ignored dir of the checkout (logs/) or any dir outside it takes the units."""
        for target in (bot_repo / "logs" / "units", tmp_path / "review"):
            result = cli("systemd", "render", "--mechanism", "tuner", "--out", str(target))
            assert result.code == 0, result.err
            assert sorted(p.name for p in target.iterdir()) == [
                "autolearn-tuner.service",
                "autolearn-tuner.timer",
            ]

    def test_install_out_inside_the_checkout_is_refused(self, cli, bot_env, bot_repo: Path) -> None:
        """The same rule for ``install --out``: nothing written, nothing recorded."""
        result = cli("systemd", "install", "--out", str(bot_repo / "u"), "--no-systemctl")
        assert result.code == 73
        assert not (bot_repo / "u").exists()


def _fake_systemctl(bindir: Path, log: Path, fail_without_runtime_dir: bool) -> None:
    script = bindir / "systemctl"
    check = (
        'if [ -z "${XDG_RUNTIME_DIR:-}" ]; then echo "Failed to connect to bus: No medium found"'
        " >&2; exit 1; fi\n"
        if fail_without_runtime_dir
        else ""
    )
    script.write_text(f'#!/bin/sh\necho "$* XDG=${{XDG_RUNTIME_DIR:-}}" >> {log}\n{check}exit 0\n')
    script.chmod(0o755)


class TestUserInstall:
    def test_every_systemctl_call_of_a_user_install_is_user(
        self, cli, bot_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """install --user: daemon-reload and enable go to ``systemctl --user``, never to the
        system manager (which needs root)."""
        bindir, log = tmp_path / "bin", tmp_path / "calls.log"
        bindir.mkdir()
        _fake_systemctl(bindir, log, fail_without_runtime_dir=False)
        monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
        assert cli("systemd", "enable", "tuner", "--reason", "go", "--no-systemctl").code == 0
        result = cli("systemd", "install", "--user", "--mechanism", "tuner")
        assert result.code == 0, result.err
        calls = [line.split(" XDG=")[0] for line in log.read_text().splitlines()]
        assert calls == ["--user daemon-reload", "--user enable --now autolearn-tuner.timer"]
        assert (tmp_path / "config" / "systemd" / "user" / "autolearn-tuner.service").exists()
        assert "enable-linger" in result.out

    def test_a_user_manager_failure_names_the_user_fix(
        self, cli, bot_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When ``systemctl --user`` cannot reach a manager the error says how to get one
        (linger, XDG_RUNTIME_DIR), not "run as root"."""
        bindir, log = tmp_path / "bin", tmp_path / "calls.log"
        bindir.mkdir()
        _fake_systemctl(bindir, log, fail_without_runtime_dir=True)
        monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
        monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
        monkeypatch.setattr(install, "systemctl_env", lambda user_mode, environ, uid: dict(environ))
        result = cli("systemd", "install", "--user", "--mechanism", "tuner")
        assert result.code == 65
        assert "enable-linger" in result.err and "XDG_RUNTIME_DIR" in result.err
        assert "need root" not in result.err


class TestSystemctlEnv:
    def test_user_mode_finds_the_runtime_dir_from_the_uid(self, tmp_path: Path) -> None:
        """No XDG_RUNTIME_DIR (sudo -u, su): /run/user/<uid> is used when it exists."""
        (tmp_path / "1000").mkdir()
        env = install.systemctl_env(True, {"PATH": "/bin"}, 1000, run_user=tmp_path)
        assert env["XDG_RUNTIME_DIR"] == str(tmp_path / "1000")

    @pytest.mark.parametrize(
        ("user_mode", "environ", "uid"),
        [
            (False, {"PATH": "/bin"}, 1000),  # the system manager needs none
            (True, {"XDG_RUNTIME_DIR": "/run/user/7"}, 1000),  # the caller's own wins
            (True, {"PATH": "/bin"}, 4242),  # no manager dir: left unset, the error explains
        ],
    )
    def test_otherwise_the_environment_is_kept(
        self, tmp_path: Path, user_mode: bool, environ: dict[str, str], uid: int
    ) -> None:
        """System units, a caller-set runtime dir, or no manager dir: nothing is added."""
        (tmp_path / "1000").mkdir()
        assert install.systemctl_env(user_mode, environ, uid, run_user=tmp_path) == environ
