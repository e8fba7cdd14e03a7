"""Structured logs: JSON lines on stdout for journald (one canonical line per run).

Secrets never reach a log line: every rendered event passes through :func:`redact`, which
replaces registered secret values (the OANDA token, database passwords) wherever they appear.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

__all__ = ["configure_logging", "emit_json", "get_logger", "redact", "register_secret"]

_SECRETS: set[str] = set()
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]+):(?P<pw>[^@\s]+)@")


def register_secret(value: str | None) -> None:
    """Never print ``value`` (a token or a password) in any log line or record."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """``text`` with registered secrets and URL passwords replaced by ``***``."""
    text = _URL_PASSWORD.sub(r"\g<scheme>:***@", text)
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return text


def _redact_processor(_: Any, __: str, event: MutableMapping[str, Any]) -> str:
    return redact(json.dumps(event, sort_keys=True, default=str, separators=(",", ":")))


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is *now* (tests and daemons swap it).

    A log line must never change a decision: a closed or broken stream drops the line
    instead of raising into the gate or cycle that logged it.
    """

    def write(self, text: str) -> int:
        try:
            return sys.stderr.write(text)
        except (ValueError, OSError):
            return 0

    def flush(self) -> None:
        try:
            sys.stderr.flush()
        except (ValueError, OSError):
            return


def configure_logging(stream: TextIO | None = None) -> None:
    """JSON to ``stream`` (the current stderr by default: stdout carries the run record)."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_processor,
        ],
        logger_factory=structlog.PrintLoggerFactory(stream or _CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "autolearn") -> Any:
    return structlog.get_logger(name)


def emit_json(record: dict[str, Any], stream: TextIO | None = None) -> None:
    """Print one run record as a single redacted JSON line (journald's canonical line)."""
    out = stream or sys.stdout
    from autolearn.adapters.history import strict_json  # one JSON dialect for both sinks

    out.write(redact(strict_json(record)))
    out.write("\n")
    out.flush()
