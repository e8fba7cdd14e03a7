"""Where things live: the bot checkout, the state dir, the registry and the ledger URL.

Resolution order for each: explicit argument (CLI flag) > environment variable > default under
the bot checkout. Defaults keep every runtime file under ``logs/`` (untracked in the bot's repo).

    AUTOLEARN_BOT_ROOT     bot checkout                       default: current directory
    AUTOLEARN_STATE_DIR    runtime state                      default: <root>/logs/tuning
    AUTOLEARN_REGISTRY     knob registry (tracked YAML)       default: <root>/config/knobs.yaml,
                                                              else the packaged default
    AUTOLEARN_LEDGER_URL   trade ledger (SQLAlchemy URL)      default: sqlite:///<root>/logs/autolearn/ledger.db

The command line also reads the env file the units load (``AUTOLEARN_ENV_FILE``, default
``/etc/autolearn.env``; ``KEY=VALUE`` lines): a variable set in the process wins over the file,
so a command run by hand acts on the same state dir and ledger as the timers.

The same rule, flag > environment > env file > default, gives the command options named by a
variable (``OPTION_VARS``; ``Settings.option``): the configs (``AUTOLEARN_TUNER_CONFIG``,
``AUTOLEARN_SCALP_CONFIG``, ``AUTOLEARN_AUTOTUNE_CONFIG``), ``AUTOLEARN_AUTOTUNE_STORAGE``,
``AUTOLEARN_CANDLES``, ``AUTOLEARN_METRICS_DIR``, ``AUTOLEARN_ACCOUNT`` (the bot's key in a
shared ledger), ``AUTOLEARN_LOCK_URL`` (the PostgreSQL that holds the run locks of several
hosts), ``AUTOLEARN_STATE_URL`` and ``AUTOLEARN_HOST`` (the state every host shares, and this
host's name in it) and OANDA's ``OANDA_ACCOUNT_ID``,
``OANDA_API_URL`` and ``OANDA_TOKEN`` (a secret: kept out of ``repr``). This module is their one
reader: Typer options carry no ``envvar=`` (a second copy of the rule, blind to the env file).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from autolearn.adapters.yamlio import load_yaml, load_yaml_text
from autolearn.core.accounts import account_problem
from autolearn.core.registry import Registry, parse_registry
from autolearn.errors import ConfigError

if TYPE_CHECKING:
    from autolearn.adapters.shared_state import SharedState

__all__ = [
    "DEFAULT_ENV_FILE",
    "OPTION_VARS",
    "Settings",
    "check_account",
    "load_registry",
    "packaged_registry_text",
    "read_env_file",
]

DEFAULT_ENV_FILE = Path("/etc/autolearn.env")

# The command options a variable may set (flag > environment > env file > default).
OPTION_VARS = frozenset(
    {
        "AUTOLEARN_TUNER_CONFIG",
        "AUTOLEARN_SCALP_CONFIG",
        "AUTOLEARN_AUTOTUNE_CONFIG",
        "AUTOLEARN_AUTOTUNE_STORAGE",
        "AUTOLEARN_CANDLES",
        "AUTOLEARN_METRICS_DIR",
        "AUTOLEARN_HISTORY_RETENTION",  # e.g. 90d: rotated history segments older are deleted
        "AUTOLEARN_HISTORY_ROTATE",  # e.g. 1d: the active history segment's span
        "AUTOLEARN_ACCOUNT",  # the bot's key in a shared ledger (issue 19 item 2); '' = the one bot
        "AUTOLEARN_LOCK_URL",  # postgresql://: one runner per (account, mechanism) across hosts
        "AUTOLEARN_STATE_URL",  # postgresql://: the state every host of the account shares
        "AUTOLEARN_HOST",  # this host's name in the shared state (default: the hostname)
        "OANDA_ACCOUNT_ID",
        "OANDA_API_URL",
        "OANDA_TOKEN",
    }
)


def check_account(account: str, where: str) -> str:
    """``account`` if it is a valid account key (``core.accounts``), else ``ConfigError``."""
    problem = account_problem(account)
    if problem is not None:
        raise ConfigError(f"{where}={problem}")
    return account


def packaged_registry_text() -> str:
    """The default registry shipped with autolearn (the original's knob inventory)."""
    return resources.files("autolearn").joinpath("data/knobs.yaml").read_text(encoding="utf-8")


def load_registry(path: Path | None) -> Registry:
    """Load and validate a registry file, or the packaged default when ``path`` is None."""
    if path is None:
        return parse_registry(
            load_yaml_text(packaged_registry_text(), "<packaged knobs.yaml>"),
            "<packaged knobs.yaml>",
        )
    return parse_registry(load_yaml(path), str(path))


def read_env_file(env: Mapping[str, str]) -> tuple[Path | None, dict[str, str]]:
    """The env file's path and its ``KEY=VALUE`` pairs (``(None, {})`` when there is none).

    ``AUTOLEARN_ENV_FILE`` names it (it must then be readable); else ``/etc/autolearn.env`` is
    read if present. Blank lines and ``#`` comments are skipped, ``export`` and matching quotes
    are allowed (as systemd's ``EnvironmentFile=``).

    Raises:
        ConfigError: the named file cannot be read, or a line is not ``KEY=VALUE``.
    """
    named = env.get("AUTOLEARN_ENV_FILE")
    path = Path(named) if named else DEFAULT_ENV_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if named:
            raise ConfigError(f"AUTOLEARN_ENV_FILE={named}: no such file") from None
        return None, {}
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise ConfigError(
            f"env file {path}: cannot read it ({why}); run as its owner (sudo -E) or point "
            "AUTOLEARN_ENV_FILE at a readable copy"
        ) from exc
    pairs: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(f"env file {path}:{number}: expected KEY=VALUE, got {raw[:40]!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        pairs[key] = value
    return path, pairs


@dataclass(frozen=True, slots=True)
class Settings:
    bot_root: Path
    state_dir: Path
    registry_path: Path | None
    ledger_url: str
    # False when the state dir is only the default under the current directory (no flag,
    # variable or env file named the bot or the state): a write there is likely the wrong state
    is_state_dir_named: bool = True
    # The OPTION_VARS that are set (non-empty), as (name, value) pairs: hashable, and out of
    # the repr because OANDA_TOKEN is one of them.
    option_values: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    env_file: Path | None = None  # the env file read (None: none), for "settings from ..."

    @classmethod
    def from_environment(
        cls,
        *,
        bot_root: Path | None = None,
        state_dir: Path | None = None,
        registry: Path | None = None,
        ledger_url: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """``resolve`` on the process environment over the env file (``read_env_file``).

        Raises:
            ConfigError: the env file is named but unreadable, or malformed.
        """
        environ = os.environ if environ is None else environ
        env_file, pairs = read_env_file(environ)
        resolved = cls.resolve(
            bot_root=bot_root,
            state_dir=state_dir,
            registry=registry,
            ledger_url=ledger_url,
            env={**pairs, **environ},  # the process wins over the file, as flags win over both
        )
        return replace(resolved, env_file=env_file)

    @classmethod
    def resolve(
        cls,
        *,
        bot_root: Path | None = None,
        state_dir: Path | None = None,
        registry: Path | None = None,
        ledger_url: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Settings:
        env = os.environ if env is None else env
        root = Path(bot_root or env.get("AUTOLEARN_BOT_ROOT") or Path.cwd()).resolve()
        state = Path(state_dir or env.get("AUTOLEARN_STATE_DIR") or root / "logs" / "tuning")
        reg: Path | None = registry or (
            Path(env["AUTOLEARN_REGISTRY"]) if env.get("AUTOLEARN_REGISTRY") else None
        )
        if reg is None and (root / "config" / "knobs.yaml").exists():
            reg = root / "config" / "knobs.yaml"
        url = (
            ledger_url
            or env.get("AUTOLEARN_LEDGER_URL")
            or (f"sqlite:///{root / 'logs' / 'autolearn' / 'ledger.db'}")
        )
        named = bool(
            bot_root or state_dir or env.get("AUTOLEARN_BOT_ROOT") or env.get("AUTOLEARN_STATE_DIR")
        )
        options = tuple(sorted((k, env[k]) for k in OPTION_VARS if env.get(k)))
        return cls(root, state.resolve(), reg, url, named, options)

    def registry(self) -> Registry:
        return load_registry(self.registry_path)

    @property
    def account(self) -> str:
        """The bot's account key in the ledger (``AUTOLEARN_ACCOUNT``; '' = the ledger's one bot).

        Not defaulted to ``OANDA_ACCOUNT_ID``: a ledger migrated to v4 holds its rows under ''
        and would look empty to a bot that suddenly filtered by its OANDA id.

        Raises:
            ConfigError: not 0-64 characters of letters, digits, ``.``, ``_`` or ``-``.
        """
        return check_account(self.option(None, "AUTOLEARN_ACCOUNT") or "", "AUTOLEARN_ACCOUNT")

    def shared_state(self) -> SharedState | None:
        """The state every host of the account shares (``AUTOLEARN_STATE_URL``; None: this
        host's state dir alone). Connects on first use, not here.

        Raises:
            ConfigError: the URL is not a PostgreSQL one.
        """
        url = self.option(None, "AUTOLEARN_STATE_URL")
        if url is None:
            return None
        from autolearn.adapters.shared_state import SharedState  # SQL only when shared

        return SharedState(url, self.account, host=self.option(None, "AUTOLEARN_HOST"))

    def option(self, flag: str | None, var: str) -> str | None:
        """A command option: ``flag`` if given, else ``var`` (environment, then env file), else
        None (the command's default). An empty variable counts as unset; an empty flag is kept.

        Raises:
            KeyError: ``var`` is not one of ``OPTION_VARS`` (a typo must not read nothing).
        """
        if var not in OPTION_VARS:
            raise KeyError(f"{var} is not a settings variable (OPTION_VARS)")
        if flag is not None:
            return flag
        return dict(self.option_values).get(var)

    def option_path(self, flag: Path | None, var: str) -> Path | None:
        """``option`` for a path option (no default)."""
        value = self.option(None if flag is None else str(flag), var)
        return None if value is None else Path(value)
