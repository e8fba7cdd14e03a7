"""The ``autolearn`` console script: the CLI if its extra is installed, else one clear line.

``pip install autolearn`` is the worker API only; the command line comes with
``autolearn[cli]`` and each command family with its own extra (``EXTRA_OF``). A missing one is a
broken install, not a bug: exit 78 (``EX_CONFIG``) naming the ``pip install`` that fixes it.
"""

from __future__ import annotations

import sys

__all__ = ["EXTRA_OF", "entrypoint", "missing_extra_message"]

# Top-level module -> the extra that installs it.
EXTRA_OF = {
    "typer": "cli",
    "rich": "cli",
    "click": "cli",
    "alembic": "cli",
    "prometheus_client": "cli",
    "numpy": "learn",
    "numba": "learn",
    "llvmlite": "learn",
    "scipy": "learn",
    "optuna": "learn",
    "plotly": "report",
    "httpx": "oanda",
    "psycopg": "postgres",
}

_EX_CONFIG = 78


def missing_extra_message(exc: ModuleNotFoundError) -> str | None:
    """The line naming the extra for a missing optional dependency; None for anything else."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        return None
    return (
        f"autolearn: error: this needs {top!r}, which comes with the {extra!r} extra; install it "
        f"with: pip install 'autolearn[{extra}]' (or 'autolearn[all]' for every command)"
    )


def entrypoint() -> None:  # pragma: no cover - console script shim, run by the bare-install test
    try:
        from autolearn.cli import main
    except ModuleNotFoundError as exc:
        message = missing_extra_message(exc)
        if message is None:
            raise
        print(message, file=sys.stderr)
        sys.exit(_EX_CONFIG)
    sys.exit(main())
