"""Broker faults: a randomized storm of 429/5xx/timeouts/truncation/reordering/duplicates."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "oanda"
SCENARIOS = 25


@pytest.fixture(name="log", scope="module")
def fixture_log() -> list[dict[str, Any]]:
    """The real 14-trade USD_JPY session plus the partial-close/closeout log (unique ids)."""
    session = json.loads((DATA / "usd_jpy_session.json").read_text())["transactions"]
    partial = json.loads((DATA / "partial_and_closeout.json").read_text())["transactions"]
    return [*session, *partial]


@pytest.mark.slow
def test_fault_storm_ledger_equals_fault_free_ledger(
    drivers: ModuleType, log: list[dict[str, Any]], tmp_path: Path, figures: dict[str, Any]
) -> None:
    """Over 25 seeded storms the final ledger equals the fault-free one: none skipped or doubled."""
    result = drivers.BrokerFigures()
    for seed in range(SCENARIOS):
        drivers.broker_storm(log, tmp_path, seed, result)
    figures["broker_faults"] = result.to_json()
    assert result.scenarios == SCENARIOS
    assert result.data_lost == 0 and result.duplicated_rows == 0
    assert result.faults_injected >= 2 * SCENARIOS  # the storm really stormed
    assert result.retries > 0 and result.duplicates_served > 0 and result.unavailable_runs > 0
