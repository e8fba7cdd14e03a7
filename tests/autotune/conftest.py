"""Autotune fixtures: a throwaway PostgreSQL database per test (skips without the server)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest


@pytest.fixture(name="db_url")
def fixture_db_url(pg_url: str) -> Iterator[str]:
    """A fresh database on the test server (no Optuna schema yet), dropped afterwards."""
    import psycopg  # only with the server (the PostgreSQL extra)

    name = f"autotune_test_{secrets.token_hex(4)}"
    admin = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = pg_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
