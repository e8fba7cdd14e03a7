"""``connect``: the one entry point of a bot's worker process, and the ``Worker`` it returns.

A worker needs three things: its knobs (``Tuning``), the entry gates (``Gates``) and the bot's
side of the ledger (``TradeWriter``). ``connect`` builds all three from one ``Settings`` (the
bot root, env vars and defaults, as the CLI resolves them), loads the registry once and shares
one reader of ``effective.json`` between the bot and the gates, so both always see one version.
The separate constructors keep working. Only the worker API: no learning, no CLI imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self

from autolearn.core.registry import Registry
from autolearn.runtime import Tuning
from autolearn.settings import Settings

if TYPE_CHECKING:  # imported by connect: the writer's SQLAlchemy is not the import's cost
    from autolearn.gates import Gates
    from autolearn.ledger.writer import TradeWriter

__all__ = ["Worker", "connect"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Worker:
    """What a bot's worker holds: ``tuning``, ``gates`` and ``ledger`` (a ``TradeWriter``)."""

    settings: Settings
    registry: Registry
    tuning: Tuning
    gates: Gates
    ledger: TradeWriter

    def close(self) -> None:
        """Close the gates' and the writer's ledger connections."""
        self.gates.close()
        self.ledger.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def connect(
    where: Settings | Path | str | None = None,
    *,
    gates_config: Path | None = None,
    refresh_s: float = 1.0,
) -> Worker:
    """Open a worker on the bot checkout ``where`` (a path, or resolved ``Settings``).

    A path (or None: ``AUTOLEARN_BOT_ROOT``, else the current directory) resolves like the CLI:
    ``AUTOLEARN_STATE_DIR``/``AUTOLEARN_REGISTRY``/``AUTOLEARN_LEDGER_URL`` if set, else
    ``<root>/logs/tuning``, ``<root>/config/knobs.yaml`` (or the packaged registry) and
    ``sqlite:///<root>/logs/autolearn/ledger.db``. The gates read ``gates_config``, else
    ``<root>/config/gates.yaml`` if present, else their defaults; the writer checks trades
    against ``<root>/config/ledger.yaml`` and spools them through a ledger outage in
    ``<state dir>/spool/``.

    Raises:
        ConfigError: a bad registry or gates config (at start-up, loudly).
        LedgerError: the ledger cannot be opened or is newer than this autolearn.
    """
    from autolearn.gates import Gates
    from autolearn.ledger.limits import load_trade_limits
    from autolearn.ledger.writer import TradeWriter

    settings = (
        where
        if isinstance(where, Settings)
        else Settings.resolve(bot_root=Path(where) if where is not None else None)
    )
    registry = settings.registry()
    shared = settings.shared_state()  # AUTOLEARN_STATE_URL: the knobs every host serves
    tuning = Tuning(
        settings.state_dir,
        registry,
        bot_root=settings.bot_root,
        refresh_s=refresh_s,
        shared=shared,
    )
    if gates_config is None:
        tracked = settings.bot_root / "config" / "gates.yaml"
        gates_config = tracked if tracked.exists() else None
    # The spool keeps trades through a ledger outage (issue 19 item 6), in the state dir.
    ledger = TradeWriter.open(
        settings.ledger_url,
        limits=load_trade_limits(settings.bot_root),
        spool_dir=settings.state_dir / "spool",
        account=settings.account,
    )
    try:
        gates = Gates.open(
            settings.ledger_url,
            settings.state_dir,
            registry,
            gates_config,
            tuning=tuning,
            account=settings.account,
            shared=shared,
        )
    except BaseException:
        ledger.close()
        raise
    return Worker(settings=settings, registry=registry, tuning=tuning, gates=gates, ledger=ledger)
