"""Shared fixtures: a frozen clock, the PostgreSQL URL (skips without it), trade builders."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from autolearn import testing
from autolearn.core.model import ShadowSignal, Trade


@pytest.fixture(name="now")
def fixture_now() -> datetime:
    """A fixed UTC-aware clock for pure tests."""
    return datetime(2025, 10, 23, 3, 0, tzinfo=UTC)


@pytest.fixture(name="pg_url", scope="session")
def fixture_pg_url() -> str:
    """The PostgreSQL server URL for multi-host tests (``AUTOLEARN_TEST_PG_URL``)."""
    url = os.environ.get("AUTOLEARN_TEST_PG_URL", "")
    if not url:
        pytest.skip(
            "PostgreSQL tests skipped: set AUTOLEARN_TEST_PG_URL "
            "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres); .ci/run sets it "
            "when a local server answers"
        )
    return url


@pytest.fixture(name="make_trade", scope="session")
def fixture_make_trade() -> Callable[..., Trade]:
    """``make_trade(close_at=..., pl_pips=..., **overrides)`` (``autolearn.testing``)."""
    return testing.make_trade


@pytest.fixture(name="make_signal", scope="session")
def fixture_make_signal() -> Callable[..., ShadowSignal]:
    """``make_signal(at=..., outcome_pips=..., **overrides)`` (``autolearn.testing``)."""
    return testing.make_signal
