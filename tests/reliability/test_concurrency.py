"""Concurrency: overlapping runs of every mechanism while a worker polls the loader."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from autolearn.core.apply_guard import ApplyKind

ROUNDS = 4


@pytest.mark.slow
def test_storm_of_overlapping_runs(
    drivers: ModuleType, zygote: Any, bot: Any, tmp_path: Path, figures: dict[str, Any]
) -> None:
    """One apply per mechanism, no lost update, a record per run, readers see whole versions."""
    template = tmp_path / "template"
    bot.store(template).apply(
        "operator", {"gates.stage.enabled": False}, datetime.now(UTC), kind=ApplyKind.OPERATOR
    )
    result = drivers.StormFigures()
    for i in range(ROUNDS):
        work = tmp_path / f"round{i}"
        work.mkdir()
        drivers.storm_round(zygote, bot, template, work, result, n_each=3)
    figures["concurrency"] = result.to_json()
    assert result.rounds == ROUNDS
    assert result.applies >= 2 * ROUNDS  # tune + policy at least, each exactly once per round
    assert result.reader_reads > 0 and result.versions_seen >= ROUNDS


def test_in_process_threads_never_lose_an_update(drivers: ModuleType, bot: Any) -> None:
    """Eight threads applying distinct knobs through one store all land in the merged view."""
    import threading

    store = bot.store()
    knobs = {
        "gates.perf_guard.enabled": False,
        "gates.reentry.enabled": False,
        "gates.stage.enabled": False,
        "M1Scalper.timeout_sec": 1020,
        "M1Scalper.nwave.min_leg_pips": 2.3,
        "strategies.TrendMA.fast_window": 12,
        "strategies.TrendMA.sl_pips": 25.0,
        "exit.lowvol.hazard_cost_latency_base_ms": 260,
    }
    now = datetime.now(UTC)

    def apply(knob: str, value: object) -> None:
        store.apply(
            "operator", {knob: value}, now, kind=ApplyKind.OPERATOR, record={"run_id": knob}
        )

    threads = [threading.Thread(target=apply, args=item) for item in knobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.read_effective().values == knobs
    assert len(store.history.read().records) == len(knobs)
