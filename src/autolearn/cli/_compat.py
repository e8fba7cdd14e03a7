"""``autolearn compat-export``: write the QuantRabbit compat exports of the current version now.

Every apply, rollback and policy transition already exports (``StateStore``'s hook); this is for
the first switch-on (before any change) and to repair a failed export after fixing its cause.
"""

from __future__ import annotations

from datetime import UTC, datetime

from autolearn.adapters.logs import emit_json
from autolearn.cli._common import app, console, settings, store
from autolearn.errors import ConfigError, StateError

__all__: list[str] = []


@app.command(name="compat-export")
def compat_export() -> None:
    """Write the enabled QuantRabbit export files from the current runtime layer."""
    from autolearn.compat.quantrabbit.config import find_compat_config, load_compat_config
    from autolearn.compat.quantrabbit.exports import export_now

    current = settings()
    state = store()
    path = find_compat_config(state.root, bot_root=current.bot_root)
    if path is None:
        raise ConfigError(
            f"no compat config: create {current.bot_root / 'config/autolearn_compat.yaml'} "
            "(see docs/ADOPT_QUANTRABBIT.md) or set AUTOLEARN_COMPAT_CONFIG"
        )
    config = load_compat_config(path)
    if not config.is_on:
        raise ConfigError(f"{path}: every export is off (quantrabbit.exports)")
    now = datetime.now(UTC)
    with state.lock("effective", timeout_s=30):
        outcome = export_now(state, state.read_effective(), now, config)
    for name, where in sorted(outcome.written.items()):
        console.print(f"  wrote {name}: {where} (version {outcome.version})")
    emit_json(
        {
            "event": "compat_exported",
            "version": outcome.version,
            "written": dict(outcome.written),
            "failed": dict(outcome.failed),
        }
    )
    if outcome.failed:
        raise StateError(
            "compat export failed: "
            + "; ".join(f"{k}: {v}" for k, v in sorted(outcome.failed.items()))
        )
