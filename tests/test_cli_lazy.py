"""What a CLI run imports: its own command's module, and nothing it does not use (issue 16).

``autolearn tune`` runs every ten minutes; each import it does not need is paid 144 times a day.
These tests hold the lazy registration (``cli/__init__.py``) to the full app, and a real tune
run to the modules it may load; they measure no time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import autolearn.cli as cli

_HEAVY = (
    "sqlalchemy",
    "numpy",
    "scipy",
    "pydantic",
    "structlog",
    "rich.traceback",
    "rich.console",
    "pygments",
    "typer._adapters",
    "autolearn.replay",
    "autolearn.report",
    "autolearn.ops",
    "autolearn.backtest",
    "autolearn.counterfactual",
)


def test_the_command_table_names_every_command_and_its_module() -> None:
    """Each registered command and group maps to the module that registers it, and no more."""
    app = cli.app  # every module imported
    registered = {
        (c.name or c.callback.__name__): c.callback.__module__.rsplit(".", 1)[1]
        for c in app.registered_commands
        if c.callback is not None
    }
    for group in app.registered_groups:
        assert group.typer_instance is not None
        callback = group.typer_instance.registered_commands[0].callback
        assert callback is not None
        registered[group.name or ""] = callback.__module__.rsplit(".", 1)[1]
    assert registered == cli._COMMAND_MODULE
    assert set(registered.values()) == set(cli._MODULES)


def test_the_global_options_that_take_a_value_are_the_callbacks() -> None:
    """The options ``_command_of`` skips with their value are exactly the app's non-flags."""
    import typer.main

    group = typer.main.get_command(cli.app)
    valued = {
        opt
        for p in group.params
        if getattr(p, "param_type_name", "") == "option" and not getattr(p, "is_flag", False)
        for opt in p.opts
    }
    assert valued == cli._GLOBAL_VALUE_OPTIONS


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["tune"], "tune"),
        (["tune", "--shadow"], "tune"),
        (["--state-dir", "/s", "--ledger", "sqlite:///x.db", "tune"], "tune"),
        (["--state-dir=/s", "status", "--json"], "status"),
        (["config", "check"], "config"),
        ([], None),
        (["--help"], None),
        (["--version"], None),
        (["--bogus", "tune"], None),
    ],
)
def test_command_of(argv: list[str], command: str | None) -> None:
    assert cli._command_of(argv) == command


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a command, every module registers (help, usage errors read the whole app)."""
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli._COMMAND_MODULE:
        assert name in out


def test_an_unknown_command_is_typers_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["tunee"]) == 2
    assert "No such command" in capsys.readouterr().err


def test_a_tune_run_imports_only_what_it_uses(tmp_path: Path) -> None:
    """A real `autolearn tune` on an empty SQLite ledger (settings from the environment, as
    systemd runs it) loads no other command, no SQLAlchemy, no pydantic, no numpy, no structlog;
    its record is still one JSON line on stdout."""
    from autolearn.ledger import SqlLedger

    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    SqlLedger.open(ledger_url).close()  # a ready ledger: what a deployed one is
    (tmp_path / "autolearn.env").write_text("")  # no settings there: the environment's
    code = (
        "import json, sys\n"
        "from autolearn.cli import main\n"
        "code = main(['tune'])\n"
        f"heavy = [m for m in {_HEAVY!r} if m in sys.modules]\n"
        "commands = sorted(m for m in sys.modules if m.startswith('autolearn.cli._'))\n"
        "print(json.dumps({'code': code, 'heavy': heavy, 'commands': commands}))\n"
    )
    done = _run_as_systemd(tmp_path, code, AUTOLEARN_LEDGER_URL=ledger_url)
    record_line, summary_line = done.stdout.strip().splitlines()[-2:]

    summary = json.loads(summary_line)
    assert summary["code"] == 0, done.stderr
    assert json.loads(record_line)["mechanism"] == "tuner"
    assert summary["heavy"] == []
    assert summary["commands"] == [
        "autolearn.cli._coercion",
        "autolearn.cli._common",
        "autolearn.cli._mechanism_opts",
        "autolearn.cli._tune",
    ]


def test_a_given_option_is_still_coerced_by_typer(capsys: pytest.CaptureFixture[str]) -> None:
    """Deferring typer's coercion changes nothing for a value: a bad one is typer's error."""
    assert cli.main(["autotune", "--trials", "not-a-number"]) == 2
    assert "Invalid value for '--trials'" in capsys.readouterr().err
    assert cli.main(["autotune", "--trials", "0"]) == 2  # min=1: typer's check, still applied
    assert "Invalid value for '--trials'" in capsys.readouterr().err


def test_only_the_logs_adapter_imports_structlog() -> None:
    """structlog loads on the first line logged (``adapters/logs.py``): a module importing it
    directly would log through an unconfigured structlog (its console renderer, on stdout)."""
    import re

    src = Path(cli.__file__).resolve().parents[1]
    direct = re.compile(r"^\s*(import structlog|from structlog)", re.MULTILINE)
    found = [
        str(p.relative_to(src))
        for p in src.rglob("*.py")
        if p.name != "logs.py" and direct.search(p.read_text())
    ]
    assert found == []


def test_logging_configured_before_structlog_loads_still_applies() -> None:
    """``configure_logging`` first, structlog later: the first line is our redacted JSON."""
    code = (
        "import sys\n"
        "from autolearn.adapters.logs import configure_logging, get_logger, register_secret\n"
        "configure_logging(); register_secret('s3cr3t-token-value')\n"
        "assert 'structlog' not in sys.modules\n"
        "get_logger('x').warning('hello', token='s3cr3t-token-value')\n"
        "assert 'structlog' in sys.modules and 'rich' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    line = json.loads(done.stderr)
    assert line["event"] == "hello" and line["level"] == "warning" and line["token"] == "***"


@pytest.mark.parametrize("value", ["24h", "", "  spaced  ", "ユーロ", "-1", "a" * 5000, "None"])
def test_a_text_value_is_what_typers_coercion_makes_of_it(value: str) -> None:
    """``_coercion`` answers a text option's text value itself (no pydantic import); for every
    such option of every command, typer's own coercion returns the very same string."""
    import typer.main
    from typer._coercion import build_runtime_param

    from autolearn.cli import _coercion

    def walk(command: object) -> list[tuple[object, object]]:
        found = [
            (command, p)
            for p in getattr(command, "params", [])
            if getattr(getattr(p, "type_descriptor", None), "annotation", None) in _coercion._TEXT
        ]
        for sub in (getattr(command, "commands", None) or {}).values():
            found += walk(sub)
        return found

    options = walk(typer.main.get_command(cli.app))
    assert len(options) > 10  # the CLI's text options (--since, --reason, --to, ...)
    for command, param in options:
        ctx = command.context_class(command)  # type: ignore[attr-defined]
        real = build_runtime_param(param.type_descriptor)  # type: ignore[attr-defined]
        assert real._coerce_value(value, param=param, ctx=ctx) == value  # type: ignore[arg-type]
        assert (
            _coercion._on_value()(
                parameter_info=param.type_descriptor.parameter_info,  # type: ignore[attr-defined]
                annotation=param.type_descriptor.annotation,  # type: ignore[attr-defined]
                descriptor=param.type_descriptor,  # type: ignore[attr-defined]
            )._coerce_value(value, param=param, ctx=ctx)
            is value
        )


def test_history_with_a_since_value_imports_no_pydantic(tmp_path: Path) -> None:
    """``history --since 24h`` (what an operator and a monitor run) loads no pydantic."""
    code = (
        "import json, sys\n"
        "from autolearn.cli import main\n"
        "code = main(['history', '--since', '24h', '--json'])\n"
        "print(json.dumps({'code': code, 'pydantic': 'pydantic' in sys.modules}))\n"
    )
    (tmp_path / "autolearn.env").write_text("")
    done = _run_as_systemd(tmp_path, code)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary == {"code": 0, "pydantic": False}, done.stderr


def _run_as_systemd(tmp_path: Path, code: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter with the settings in its environment, as systemd runs
    a command (a bare PATH, the state dir and an env file under ``tmp_path``); must exit 0."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AUTOLEARN_STATE_DIR": str(tmp_path / "state"),
        "AUTOLEARN_ENV_FILE": str(tmp_path / "autolearn.env"),
        **settings,
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done
