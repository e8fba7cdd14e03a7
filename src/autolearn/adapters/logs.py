"""Structured logs: JSON lines on stdout for journald (one canonical line per run).

Secrets never reach a log line: every rendered event passes through :func:`redact`, which
replaces registered secret values (the OANDA token, database passwords) wherever they appear.

structlog is loaded on the first line logged, not on import (issue 16: a tune run or a worker
that logs nothing pays none of it). So every autolearn module logs through :func:`get_logger`,
never through ``structlog`` directly (``tests/test_logs_lazy.py``): ``configure_logging``
before structlog is loaded is kept and applied when it is.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO


def _load_structlog() -> Any:
    """``structlog``, loaded with ``rich`` hidden unless something imported rich already.

    ``structlog.dev`` and ``structlog.tracebacks`` import rich (and with it pygments) whenever
    it is installed, for the console renderer's pretty tracebacks; these logs are JSON lines
    and never render through it, yet every run paid the import (~35 ms CPU, issue 16). Rich
    itself stays importable: the entry is removed again once structlog is loaded.
    """
    hide = "rich" not in sys.modules
    if hide:
        sys.modules["rich"] = None  # type: ignore[assignment]  # "import rich" -> ImportError
    try:
        import structlog
    finally:
        if hide and sys.modules.get("rich", False) is None:
            del sys.modules["rich"]
    return structlog


# configure_logging's stream while structlog is not loaded yet (applied on loading it)
_PENDING: dict[str, TextIO | None] = {}


def _structlog() -> Any:
    """The structlog module, loaded and configured (a pending ``configure_logging``) once."""
    module = sys.modules.get("structlog") or _load_structlog()
    if _PENDING:
        _configure(module, _PENDING.pop("stream"))
    return module


__all__ = [
    "FRAGMENT_CHARS",
    "configure_logging",
    "emit_json",
    "get_logger",
    "redact",
    "redact_secret",
    "register_secret",
]

_SECRETS: set[str] = set()
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]+):(?P<pw>[^@\s]+)@")


def register_secret(value: str | None) -> None:
    """Never print ``value`` (a token or a password) in any log line or record."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


# A run of this many characters of a secret is redacted wherever it appears: a message that
# truncates the token (a field value cut to 60 characters, a 403 body quoting part of it)
# must not leak its prefix. Short enough for any useful fragment, long enough that ordinary
# text (ids, timestamps) does not match a random 64-hex token by chance.
FRAGMENT_CHARS = 12


def redact(text: str) -> str:
    """``text`` with registered secrets (whole or any fragment of ``FRAGMENT_CHARS`` or more)
    and URL passwords replaced by ``***``."""
    text = _URL_PASSWORD.sub(r"\g<scheme>:***@", text)
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = redact_secret(text, secret)
    return text


def redact_secret(text: str, secret: str) -> str:
    """``text`` with ``secret`` and every fragment of it (``FRAGMENT_CHARS``+) as ``***``."""
    if not secret:
        return text
    text = text.replace(secret, "***")
    k = min(FRAGMENT_CHARS, len(secret))
    if len(text) < k:
        return text
    grams = {secret[i : i + k] for i in range(len(secret) - k + 1)}
    covered = bytearray(len(text))
    hit = False
    for i in range(len(text) - k + 1):
        if text[i : i + k] in grams:
            covered[i : i + k] = b"\x01" * k
            hit = True
    if not hit:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        if covered[i]:
            while i < len(text) and covered[i]:
                i += 1
            out.append("***")
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


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
    """JSON to ``stream`` (the current stderr by default: stdout carries the run record).

    Applied now when structlog is loaded, else when the first line is logged.
    """
    module = sys.modules.get("structlog")
    if module is None:
        _PENDING["stream"] = stream
    else:
        _PENDING.clear()
        _configure(module, stream)


def _configure(module: Any, stream: TextIO | None) -> None:
    sl: Any = module  # the structlog module (typed loosely: it is loaded lazily)
    sl.configure(
        processors=[
            sl.contextvars.merge_contextvars,
            sl.processors.add_log_level,
            sl.processors.TimeStamper(fmt="iso", utc=True),
            _redact_processor,
        ],
        logger_factory=sl.PrintLoggerFactory(stream or _CurrentStderr()),
        cache_logger_on_first_use=False,
    )


class _Logger:
    """``structlog.get_logger(name)``, looked up on each use: loading structlog is the first
    line's cost, and a configuration changed since (tests' ``capture_logs``) still applies."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(_structlog().get_logger(self._name), attr)

    def __repr__(self) -> str:
        return f"<autolearn logger {self._name!r}>"


def get_logger(name: str = "autolearn") -> Any:
    """The structured logger ``name`` (``info``, ``warning``, ``exception``, ``bind``...)."""
    return _Logger(name)


def emit_json(record: dict[str, Any], stream: TextIO | None = None) -> None:
    """Print one run record as a single redacted JSON line (journald's canonical line)."""
    out = stream or sys.stdout
    from autolearn.adapters.history import strict_json  # one JSON dialect for both sinks

    out.write(redact(strict_json(record)))
    out.write("\n")
    out.flush()
