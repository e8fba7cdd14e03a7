"""Fixtures of the replay tests: the bundled real month of EUR/USD M1 and small replays of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autolearn.backtest import Candles, load_candles
from autolearn.core.registry import Registry
from autolearn.replay import ReplayConfig, ReplayOutcome, run_replay, slice_candles
from autolearn.settings import load_registry

REPO = Path(__file__).resolve().parents[2]
MONTH = REPO / "examples/data/fx/DAT_ASCII_EURUSD_M1_201807.csv"


@pytest.fixture(name="month", scope="session")
def fixture_month() -> Candles:
    """July 2018 EUR/USD M1 (HistData, bundled for the demo; see examples/data/PROVENANCE.md)."""
    return load_candles(MONTH)


@pytest.fixture(name="registry", scope="session")
def fixture_registry() -> Registry:
    """The packaged knob registry."""
    return load_registry(None)


@pytest.fixture(name="slice_days", scope="session")
def fixture_slice_days(month: Candles) -> Candles:
    """Four trading days (Sunday evening to Thursday evening UTC): enough for blocks to happen."""
    start = datetime(2018, 7, 1, 21, tzinfo=UTC)
    return slice_candles(month, start, start + timedelta(days=4))


@pytest.fixture(name="learning_run", scope="session")
def fixture_learning_run(
    slice_days: Candles, registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> ReplayOutcome:
    """One replay of the slice with every mechanism on (shared by the invariant tests)."""
    out = tmp_path_factory.mktemp("replay") / "learning"
    return run_replay(slice_days, out, ReplayConfig(), registry)
