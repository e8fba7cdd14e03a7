"""Crash consistency: SIGKILL real ``autolearn`` runs (set/rollback/freeze/tune/policy/ingest).

After every kill the state dir holds a complete previous or new version, the loader reads it
without degrading, the history has no bad line except a torn last one, and the next run exits 0.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

KILLS = 200  # the CI minimum (the bench runs more)
FRESH_KILLS = 2  # fresh interpreters, so the import phase is killed too


@pytest.mark.slow
def test_two_hundred_kills_never_lose_or_tear_state(
    drivers: ModuleType,
    zygote: Any,
    bot: Any,
    qr_csv: Path,
    tmp_path: Path,
    figures: dict[str, Any],
) -> None:
    """200+ SIGKILLs at seeded random moments leave every invariant intact and lose no data."""
    work = tmp_path / "kills"
    work.mkdir()
    campaign = drivers.KillCampaign(zygote, bot, work, qr_csv, seed=20251023)
    campaign.prepare()
    result = campaign.run(KILLS, fresh_kills=FRESH_KILLS)
    figures["crash_kill"] = result.to_json()
    assert result.kills >= KILLS
    assert result.next_runs_ok >= result.kills
    assert result.data_lost == 0
    # the kills must really hit the write path, not only start-up
    assert result.landed_after_first_write >= KILLS // 5, result.to_json()
    for scenario in drivers.KILL_SCENARIOS:
        assert result.by_scenario.get(scenario, 0) >= 8, result.by_scenario


def test_kill_between_snapshot_and_effective_keeps_previous(
    drivers: ModuleType, bot: Any, tmp_path: Path
) -> None:
    """A snapshot written without its effective.json (the kill window) is inert and harmless."""
    import json
    from datetime import UTC, datetime

    from autolearn.adapters.atomic import atomic_write_bytes
    from autolearn.adapters.state import version_of
    from autolearn.core.apply_guard import ApplyKind

    store = bot.store()
    now = datetime.now(UTC)
    store.apply("operator", {drivers.TUNER_KNOB: 0.6}, now, kind=ApplyKind.OPERATOR)
    before = store.read_effective()
    orphan = {drivers.TUNER_KNOB: 0.7}
    doc = {"schema_version": 1, "version": version_of(orphan), "values": orphan}
    atomic_write_bytes(  # what a kill right after the snapshot write leaves on disk
        store.snapshots_dir / f"{version_of(orphan)}.json", json.dumps(doc).encode()
    )
    seen = drivers.check_state(store.root, bot.registry)
    assert seen.version == before.version
    assert store.current_values()[drivers.TUNER_KNOB] == 0.6
