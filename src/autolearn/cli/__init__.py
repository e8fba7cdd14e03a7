"""The ``autolearn`` command line. ``main`` is the single outermost error handler.

Every ``AutolearnError`` becomes one clear line on stderr and its exit code (78 config, 65 data,
73 tracked path, 75 transient broker, ...); anything else is a bug and exits 70 with a traceback
in the structured log.
"""

from __future__ import annotations

import sys

import typer

from autolearn._entry import missing_extra_message
from autolearn.adapters.logs import configure_logging, get_logger, redact
from autolearn.cli import (
    _compat,
    _config,
    _demo,
    _ingest,
    _learn,
    _ops,
    _policy,
    _reconcile,
    _replay,
    _state,
    _tune,
)
from autolearn.cli._common import app, exit_code_on_broken_pipe
from autolearn.errors import AutolearnError, LockBusy

__all__ = ["app", "main"]

# The command modules register themselves on import.
_ = (_compat, _config, _demo, _ingest, _learn, _ops, _policy, _reconcile, _replay, _state, _tune)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    configure_logging()
    try:
        # Without standalone mode, click returns typer.Exit codes instead of raising them.
        result = app(args=argv, standalone_mode=False)
    except (BrokenPipeError, SystemExit) as exc:  # the reader went away (`status | head`)
        # click's own EPIPE handler wraps stdout and exits 1 whatever the command meant
        if isinstance(exc, SystemExit) and type(sys.stdout).__name__ != "PacifyFlushWrapper":
            raise
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
