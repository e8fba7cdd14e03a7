"""Tuner test helpers: the known-truth simulated bot of ``autolearn.knowntruth``.

The bot reads its knobs per trade through the real runtime API (so a change in flight reaches
only its concurrent arm), pins the version it read, draws each trade's P/L from
``truth(values)``; the real tuner cycle runs on a real SqlLedger and StateStore in tmp_path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autolearn.knowntruth import KNOB, START, SimBot, make_bot

__all__ = ["KNOB", "START", "SimBot"]


@pytest.fixture(name="make_bot")
def fixture_make_bot(tmp_path: Path) -> Callable[..., SimBot]:
    """Factory for a SimBot with a fresh state dir and SQLite ledger under tmp_path."""
    counter = iter(range(10_000))

    def make(truth: Callable[..., tuple[float, float]], seed: int = 0, **kwargs: Any) -> SimBot:
        root = tmp_path / f"bot{next(counter)}"
        return make_bot(root, truth, seed=seed, config=kwargs.pop("config", None), **kwargs)

    return make
