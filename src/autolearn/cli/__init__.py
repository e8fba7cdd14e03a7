"""The ``autolearn`` command line. ``main`` is the single outermost error handler.

Every ``AutolearnError`` becomes one clear line on stderr and its exit code (78 config, 65 data,
73 tracked path, 75 transient broker, ...); anything else is a bug and exits 70 with a traceback
in the structured log.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

from autolearn._entry import missing_extra_message
from autolearn.adapters.logs import configure_logging, get_logger, redact
from autolearn.errors import AutolearnError, LockBusy

__all__ = ["app", "main"]

# The command modules register themselves on import, in this order (the order of --help).
_MODULES = (
    "_compat",
    "_config",
    "_demo",
    "_ingest",
    "_learn",
    "_ops",
    "_policy",
    "_reconcile",
    "_replay",
    "_state",
    "_tune",
)
# Each command (or group) and the module that registers it: a run imports only the module of
# its command, so `tune` every ten minutes pays neither for replay, report, ops and numpy nor
# for the other commands' option types (tests/test_cli_lazy.py checks this table is complete).
_COMMAND_MODULE = {
    "compat-export": "_compat",
    "config": "_config",
    "demo": "_demo",
    "ingest": "_ingest",
    "scalp-train": "_learn",
    "autotune": "_learn",
    "status": "_ops",
    "doctor": "_ops",
    "deploy-check": "_ops",
    "metrics": "_ops",
    "systemd": "_ops",
    "policy": "_policy",
    "unblock": "_policy",
    "reconcile": "_reconcile",
    "init": "_reconcile",
    "replay": "_replay",
    "report": "_replay",
    "knobs": "_state",
    "explain": "_state",
    "diff": "_state",
    "history": "_state",
    "rollback": "_state",
    "recover": "_state",
    "undo": "_state",
    "set": "_state",
    "snapshots": "_state",
    "freeze": "_state",
    "unfreeze": "_state",
    "share": "_state",
    "tune": "_tune",
}
# The global options (``_common._global``) that take a value: what may stand before the command.
_GLOBAL_VALUE_OPTIONS = frozenset({"--bot-root", "--state-dir", "--registry", "--ledger"})


def _command_of(argv: list[str]) -> str | None:
    """The command name in ``argv`` (None: none, or an option this parser does not know)."""
    tokens = iter(argv)
    for token in tokens:
        if not token.startswith("-"):
            return token
        if token in _GLOBAL_VALUE_OPTIONS:
            next(tokens, None)
        elif "=" not in token or token.split("=", 1)[0] not in _GLOBAL_VALUE_OPTIONS:
            return None  # --help, --version, a typo: typer needs every command to answer
    return None


def _register(argv: list[str]) -> Any:
    """The app with the commands ``argv`` can reach registered: its command's module alone
    when ``argv`` names a known command, else every module (help, usage errors)."""
    module = _COMMAND_MODULE.get(_command_of(argv) or "")
    for name in (module,) if module else _MODULES:
        importlib.import_module(f"autolearn.cli.{name}")
    from autolearn.cli._common import app as registered

    return registered


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole app, every command registered (tests, completion, docs)
        return _register([])
    raise AttributeError(f"module 'autolearn.cli' has no attribute {name!r}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    configure_logging()
    args = sys.argv[1:] if argv is None else argv
    try:
        app = _register(args)
        # Without standalone mode, click returns typer.Exit codes instead of raising them.
        result = app(args=args, standalone_mode=False)
    except (BrokenPipeError, SystemExit) as exc:  # the reader went away (`status | head`)
        # click's own EPIPE handler wraps stdout and exits 1 whatever the command meant
        if isinstance(exc, SystemExit) and type(sys.stdout).__name__ != "PacifyFlushWrapper":
            raise
        from autolearn.cli._common import exit_code_on_broken_pipe

        return exit_code_on_broken_pipe()
    except LockBusy as exc:
        print(f"autolearn: {exc} (lock_busy: nothing done)", file=sys.stderr)
        return 0
    except AutolearnError as exc:
        print(f"autolearn: error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        print("autolearn: aborted", file=sys.stderr)
        return 130
    except typer.TyperException as exc:  # usage errors: bad option, missing argument
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            print(f"autolearn: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))
    except ModuleNotFoundError as exc:  # an extra this command needs is not installed
        message = missing_extra_message(exc)
        if message is None:
            return _internal_error(exc)
        print(message, file=sys.stderr)
        return 78
    except Exception as exc:  # the outermost handler: report bugs loudly, never silently
        return _internal_error(exc)
    return result if isinstance(result, int) else 0


def _internal_error(exc: Exception) -> int:
    get_logger().exception("unexpected_error", error=redact(str(exc)))
    print(f"autolearn: internal error: {redact(repr(exc))}", file=sys.stderr)
    return 70


def entrypoint() -> None:  # pragma: no cover - console script shim
    sys.exit(main())
