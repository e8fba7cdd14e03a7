"""The Typer app, its global options and the small shared pieces of the commands."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.main

from autolearn.adapters.history import RotationPolicy
from autolearn.adapters.state import StateStore
from autolearn.core.registry import parse_duration
from autolearn.errors import ConfigError
from autolearn.settings import Settings

if TYPE_CHECKING:
    from rich.console import Console

    from autolearn.adapters.pg_lock import RunLocks

__all__ = [
    "JsonOpt",
    "acted_on",
    "actor",
    "app",
    "console",
    "emit_run",
    "exit_code_on_broken_pipe",
    "gates_config_path",
    "gates_overrides",
    "history_policy",
    "intend_exit",
    "operator_store",
    "plain_placeholders",
    "real_console",
    "run_locks",
    "settings",
    "store",
    "utcnow",
]

_PLACEHOLDERS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "Path": "PATH"}


def _placeholder(param: Any) -> str | None:
    desc = getattr(param, "type_descriptor", None)  # typer's own parameters only
    if desc is None or desc.is_choice or desc.is_datetime or desc.is_tuple:
        return None  # typer's <a|b> (choices) and formats stay
    if desc.is_path:
        return "PATH"
    annotation = desc.annotation
    if desc.is_list:
        (annotation,) = getattr(annotation, "__args__", (annotation,))
    return _PLACEHOLDERS.get(getattr(annotation, "__name__", ""))


def plain_placeholders(command: Any) -> Any:
    """Give every option of ``command`` (a click command) and its subcommands a conventional
    placeholder; returns ``command``.

    Typer 0.29 shows a Python type after each option, so every flag read ``--json <bool>``
    and a value ``--now <str>``. A flag takes no value and shows none; a value option keeps a
    metavar its command set (``DURATION``, ``DIR``) or gets its type's (``TEXT``, ``PATH``).
    Typer vendors click privately (``typer._click``), hence the duck typing.
    """
    # --help is made on first use and cached: make it now, so it is a plain flag too
    help_option = command.get_help_option(
        command.context_class(command, **command.context_settings)
    )
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        if getattr(param, "param_type_name", "") != "option" or param.metavar is not None:
            continue
        if param.is_flag or param.count:
            param.metavar = ""
        else:
            param.metavar = _placeholder(param)
    for sub in (getattr(command, "commands", None) or {}).values():
        plain_placeholders(sub)
    return command


class _App(typer.Typer):
    """The Typer app, run through :func:`plain_placeholders` (the help shows real metavars)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from autolearn.cli._coercion import defer_coercion  # no pydantic for absent options

        return defer_coercion(plain_placeholders(typer.main.get_command(self)))(*args, **kwargs)


app = _App(
    name="autolearn",
    help="Safe auto-learning control plane for a live FX bot: see, stop and undo every change."
    "\n\nEvery setting: the flag, else the environment variable named in its help, else the env"
    " file (AUTOLEARN_ENV_FILE, default /etc/autolearn.env), else the default.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


_CONSOLE: list[Console] = []


def real_console() -> Console:
    """The one rich console of the CLI, made on first use (for APIs that want the object)."""
    if not _CONSOLE:
        from rich.console import Console

        class _Console(Console):
            """Rich's console, except that a broken pipe propagates: ``cli.main`` keeps the
            exit code (rich's own handler exits 1, so `status | head` of a healthy status
            would fail)."""

            def on_broken_pipe(self) -> None:
                raise BrokenPipeError

        _CONSOLE.append(_Console(highlight=False, soft_wrap=True))
    return _CONSOLE[0]


class _LazyConsole:
    """``console.print(...)`` and friends, without importing rich until something is printed
    for people: ``tune --json`` under systemd prints one JSON line and never needs it (rich's
    console is ~15 ms of a run's import, issue 16)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(real_console(), name)


console: Console = _LazyConsole()  # type: ignore[assignment]
_SETTINGS: dict[str, Settings] = {}
_ENV_FILE: dict[str, Path | None] = {}


@app.callback()
def _global(
    bot_root: Annotated[
        Path | None, typer.Option(help="Bot checkout (env AUTOLEARN_BOT_ROOT; default .)")
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Runtime state dir (env AUTOLEARN_STATE_DIR; <root>/logs/tuning)"),
    ] = None,
    registry: Annotated[
        Path | None, typer.Option(help="Knob registry YAML (env AUTOLEARN_REGISTRY)")
    ] = None,
    ledger: Annotated[
        str | None, typer.Option(help="Ledger URL, sqlite/postgres (env AUTOLEARN_LEDGER_URL)")
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=lambda v: _print_version(v), help="Print it"
        ),
    ] = False,
) -> None:
    # One reader of the settings: no option carries envvar=, so Settings alone applies
    # flag > process env > env file > default, here and to every command's options
    # (settings().option); Typer reading the variables too was a second copy of that rule,
    # blind to the env file.
    _SETTINGS["current"] = current = Settings.from_environment(
        bot_root=bot_root, state_dir=state_dir, registry=registry, ledger_url=ledger
    )
    _ENV_FILE["path"] = current.env_file


def _print_version(wanted: bool) -> None:
    if wanted:
        from autolearn import __version__

        typer.echo(f"autolearn {__version__}")
        raise typer.Exit(0)


def settings() -> Settings:
    return _SETTINGS.get("current") or Settings.resolve()


def store(*, sync: bool = True) -> StateStore:
    """The state the command acts on (``sync``: its replica of shared state brought up first)."""
    current = settings()
    state = StateStore(
        current.state_dir,
        current.registry(),
        history_policy(current),
        run_locks=run_locks(current),
        shared=current.shared_state(),
    )
    return _synced(state) if sync else state


def _synced(state: StateStore) -> StateStore:
    """``state`` with its replica of the shared state brought up to date (a command reads the
    local history: every host's records must be in it)."""
    state.sync()
    return state


def run_locks(current: Settings) -> RunLocks | None:
    """The mechanisms' run locks across hosts (``AUTOLEARN_LOCK_URL``, else the shared state's
    database when ``AUTOLEARN_STATE_URL`` is set; None: flocks only)."""
    where = "AUTOLEARN_LOCK_URL"
    url = current.option(None, where)
    if url is None:
        where = "AUTOLEARN_STATE_URL"
        url = current.option(None, where)
    if url is None:
        return None
    from autolearn.adapters.pg_lock import RunLocks  # SQLAlchemy only when the locks need it

    return RunLocks(url, current.account, where=where)


def history_policy(current: Settings) -> RotationPolicy:
    """The history's rotation span and retention (AUTOLEARN_HISTORY_ROTATE / _RETENTION)."""
    spans = {}
    for var in ("AUTOLEARN_HISTORY_ROTATE", "AUTOLEARN_HISTORY_RETENTION"):
        text = current.option(None, var)
        if text is not None:
            try:
                spans[var] = parse_duration(text)
            except ValueError as exc:
                raise ConfigError(f"{var}: {exc} (e.g. 1d, 90d)") from exc
    default = RotationPolicy()
    try:
        return RotationPolicy(
            max_age=spans.get("AUTOLEARN_HISTORY_ROTATE", default.max_age),
            retention=spans.get("AUTOLEARN_HISTORY_RETENTION", default.retention),
        )
    except ValueError as exc:
        raise ConfigError(f"AUTOLEARN_HISTORY_ROTATE / _RETENTION: {exc}") from exc


def operator_store() -> StateStore:
    """The state an operator command changes; refuses to start a fresh one by accident.

    A state dir that does not exist and that nothing named (no ``--bot-root``/``--state-dir``,
    no ``AUTOLEARN_*`` variable, no env file: only the default under the current directory) is
    almost surely the wrong one: the live timers would not see the change.
    """
    current = settings()
    if not current.is_state_dir_named and not current.state_dir.exists():
        raise ConfigError(
            f"no state dir at {current.state_dir} (the default under the current directory: "
            "no AUTOLEARN_BOT_ROOT or AUTOLEARN_STATE_DIR, no env file); nothing done. Run it "
            "from the bot checkout, pass --bot-root/--state-dir, put the settings in "
            "/etc/autolearn.env (or AUTOLEARN_ENV_FILE), or start a new state with "
            "`autolearn init`"
        )
    return _synced(
        StateStore(
            current.state_dir,
            current.registry(),
            history_policy(current),
            run_locks=run_locks(current),
            shared=current.shared_state(),
        )
    )


def utcnow() -> datetime:
    """The shell's clock (the core never reads it)."""
    return datetime.now(UTC)


def gates_config_path(path: Path | None) -> Path | None:
    """The gates/policy YAML: ``path``, else ``<bot>/config/gates.yaml`` if present, else None
    (the packaged defaults)."""
    if path is None:
        tracked = settings().bot_root / "config" / "gates.yaml"
        path = tracked if tracked.exists() else None
    return path


def gates_overrides() -> Mapping[str, Any] | None:
    """The runtime overrides of the gates config (state dir, never a tracked file)."""
    overrides: Mapping[str, Any] | None = store().read_mechanism("gates").get("overrides")
    return overrides or None


def actor() -> dict[str, Any]:
    """Who acted: the login user (the sudo caller when run with sudo), uid and host."""
    user = os.environ.get("SUDO_USER") or os.environ.get("USER") or os.environ.get("LOGNAME")
    if not user:
        try:
            import pwd

            user = pwd.getpwuid(os.getuid()).pw_name
        except (ImportError, KeyError):
            user = "?"
    return {"user": user, "uid": os.getuid(), "host": socket.gethostname()}


def acted_on(state_dir: Path) -> None:
    """Say on stderr which state dir a command changed (stdout stays the JSON result)."""
    env_file = _ENV_FILE.get("path")
    source = f" (settings from {env_file})" if env_file else ""
    print(f"autolearn: state dir {state_dir}{source}", file=sys.stderr)


JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the JSON run record (the default when piped)")
]


def emit_run(record: dict[str, Any], as_json: bool) -> None:
    """The run record: one JSON line when asked or piped (journald), else a short summary."""
    from autolearn.adapters.logs import emit_json
    from autolearn.core.record_view import record_row

    if as_json or not sys.stdout.isatty():
        emit_json(record)
        return
    row = record_row(record)
    console.print(f"[bold]{row.mechanism}: {row.decision}[/bold]  at {row.at}")
    for label, text in (("changes", row.changes), ("verdicts", row.verdicts)):
        if text:
            console.print(f"  {label}: {text}")
    console.print(f"  reasons: {row.reasons or '-'}")
    console.print(f"[dim]  run_id {record.get('run_id')}; the full record: --json[/dim]")


_INTENDED_EXIT: dict[str, int] = {}


def intend_exit(code: int) -> None:
    """The exit code a command will return once its output is written (status, doctor):
    kept if the reader goes away mid-output (``status | head``)."""
    _INTENDED_EXIT["code"] = code


def exit_code_on_broken_pipe() -> int:
    """After a broken pipe: stdout to /dev/null (the final flush must not fail again), and the
    exit code the command meant (0 when it named none: its work was done)."""
    if type(sys.stdout).__name__ == "PacifyFlushWrapper":  # click's wrapper: unwrap it
        sys.stdout = sys.__stdout__
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no real file (a test's capture): nothing to do
        pass
    finally:
        os.close(devnull)
    return _INTENDED_EXIT.pop("code", 0)
