"""The exception tree. Each class says what the operator or the timer must do.

    AutolearnError                 (exit 1)   something we could not decide
    ├── ConfigError                (exit 78)  fix the tracked config (registry, presets, flags)
    ├── StateError                 (exit 65)  state unreadable or unwritable; nothing changed
    │   ├── TrackedPathError       (exit 73)  refused to write a git-tracked path
    │   ├── LockBusy               (exit 0)   another run holds the lock; recorded as lock_busy
    │   └── LockUnavailable        (exit 75)  the lock database is unreachable: nothing run, retry
    ├── LedgerError                (exit 65)  the trade ledger cannot be read or written
    │   └── LedgerUnavailable      (exit 75)  transient (unreachable, deadlock, locked): retry
    ├── InputError                 (exit 65)  an input file/row is malformed (file, row, column)
    ├── UsageError                 (exit 2)   the command line is wrong (missing/conflicting args)
    ├── OwnershipError             (exit 77)  a mechanism tried to write a knob it does not own
    └── BrokerError                (exit 69)
        ├── BrokerUnavailable      (exit 75)  transient (429/5xx/timeouts): skip the cycle, retry
        └── BrokerRejected         (exit 69)  permanent (401/404/bad body): alert a human

Decisions (freeze, hold, block...) are values, never exceptions. Adapters translate foreign
exceptions at the boundary with ``raise X(...) from exc``.
"""

from __future__ import annotations

__all__ = [
    "AutolearnError",
    "BrokerError",
    "BrokerRejected",
    "BrokerUnavailable",
    "ConfigError",
    "InputError",
    "LedgerError",
    "LedgerUnavailable",
    "LockBusy",
    "LockUnavailable",
    "OwnershipError",
    "StateError",
    "StateUnavailable",
    "TrackedPathError",
    "UsageError",
]


class AutolearnError(Exception):
    """Root of every error autolearn raises on purpose."""

    exit_code = 1


class ConfigError(AutolearnError):
    """Tracked configuration is invalid. ``problems`` lists every finding (dotted path first)."""

    exit_code = 78  # EX_CONFIG

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        if self.problems:
            message = message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


class StateError(AutolearnError):
    """Runtime state could not be read or written; no change was made."""

    exit_code = 65  # EX_DATAERR


class TrackedPathError(StateError):
    """A runtime write targeted a path that git tracks (would break ``git pull --ff-only``)."""

    exit_code = 73  # EX_CANTCREAT


class LockBusy(StateError):
    """Another run holds the lock. Not a failure: the run records ``lock_busy`` and exits 0."""

    exit_code = 0


class LockUnavailable(StateError):
    """The database holding the run locks (``AUTOLEARN_LOCK_URL``) did not answer.

    The run did not start: running without the lock is what it exists to prevent. Transient
    (exit 75, as a ledger that is down): the next timer run tries again.
    """

    exit_code = 75  # EX_TEMPFAIL


class StateUnavailable(StateError):
    """The shared state's database (``AUTOLEARN_STATE_URL``) did not answer or failed.

    Nothing was changed (a version switch and its record are one transaction). Transient
    (exit 75): the next run tries again; workers keep serving the version they hold.
    """

    exit_code = 75  # EX_TEMPFAIL


class LedgerError(AutolearnError):
    """The trade ledger could not be read or written."""

    exit_code = 65


class LedgerUnavailable(LedgerError):
    """Transient database failure (unreachable, deadlock, serialization, locked): retry later."""

    exit_code = 75  # EX_TEMPFAIL


class InputError(AutolearnError):
    """Malformed input. The message names the file, row and column when known."""

    exit_code = 65


class UsageError(AutolearnError):
    """The command line itself is wrong: a missing or conflicting argument (exit 2, as click)."""

    exit_code = 2


class OwnershipError(AutolearnError):
    """A mechanism tried to write a knob it does not own (or that is not registered)."""

    exit_code = 77  # EX_NOPERM


class BrokerError(AutolearnError):
    """The broker (OANDA v20) failed."""

    exit_code = 69  # EX_UNAVAILABLE


class BrokerUnavailable(BrokerError):
    """Transient broker failure after retries (429, 5xx, timeout): skip this cycle."""

    exit_code = 75  # EX_TEMPFAIL


class BrokerRejected(BrokerError):
    """Permanent broker failure (auth, not found, malformed body): needs a human."""

    exit_code = 69
