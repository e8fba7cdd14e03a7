"""Shared fixtures: a frozen clock and the PostgreSQL URL (skips with a message without it)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest


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
