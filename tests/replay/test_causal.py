"""No look-ahead: regime labels and every reference strategy's signals at bar i use bars <= i."""

from __future__ import annotations

import numpy as np
import pytest

from autolearn.backtest import Candles
from autolearn.core.registry import Registry
from autolearn.replay import REFERENCE_STRATEGIES, slice_candles
from autolearn.replay.regime import classify
from autolearn.replay.strategies import Features


def _prefix(c: Candles, n: int) -> Candles:
    from autolearn.core.timestamps import from_epoch_us

    return slice_candles(c, None, from_epoch_us(int(c.time_us[n])))


@pytest.fixture(name="window", scope="module")
def fixture_window(month: Candles) -> Candles:
    """Three days of real bars (the regime baseline needs one day to warm up)."""
    return _prefix(month, 4_500)


def test_regime_labels_are_causal(window: Candles) -> None:
    """Labels computed on a prefix equal the full series' labels on that prefix."""
    full_micro, full_macro = classify(window.close)
    for cut in (1_500, 2_222, 3_900):
        micro, macro = classify(window.close[:cut])
        assert np.array_equal(micro, full_micro[:cut])
        assert np.array_equal(macro, full_macro[:cut])
    assert {1, 2, 3} <= set(np.unique(full_micro).tolist())  # every volatility label occurs
    assert {1, 2} <= set(np.unique(full_macro).tolist())


@pytest.mark.parametrize("strategy", REFERENCE_STRATEGIES, ids=lambda s: s.name)
def test_signals_are_causal(strategy: object, window: Candles, registry: Registry) -> None:
    """A strategy's signals on a prefix equal its signals on the whole window (and some fire)."""
    knobs = registry.defaults()
    full = strategy.signals(Features.of(window), knobs)  # type: ignore[attr-defined]
    cut = 3_000
    part = strategy.signals(Features.of(_prefix(window, cut)), knobs)  # type: ignore[attr-defined]
    assert np.array_equal(part, full[: len(part)])
    assert np.count_nonzero(full) > 0


def test_knob_change_changes_signals(window: Candles, registry: Registry) -> None:
    """A stricter tuner knob gives a subset of the signals (the knob is really read)."""
    from autolearn.replay.strategies import MicroVWAPRevert

    f = Features.of(window)
    knobs = dict(registry.defaults())
    loose = MicroVWAPRevert().signals(f, knobs)
    knobs["strategies.MicroVWAPRevert.vwap_z_min"] = 2.6
    strict = MicroVWAPRevert().signals(f, knobs)
    assert np.count_nonzero(strict) < np.count_nonzero(loose)
    assert np.all((strict == 0) | (strict == loose))
