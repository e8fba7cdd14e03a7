"""Walk-forward folds: ordered, disjoint, covering, embargoed; too-small settings are refused."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autolearn.autotune.walkforward import walk_forward
from autolearn.errors import ConfigError


@given(
    n=st.integers(1, 20_000),
    folds=st.integers(1, 10),
    fraction=st.floats(0.05, 0.9),
    embargo=st.integers(0, 200),
)
def test_folds_tile_the_range_in_time_order(
    n: int, folds: int, fraction: float, embargo: int
) -> None:
    """Folds are ordered and disjoint, cover [0, n), and every train bar precedes validation."""
    try:
        cut = walk_forward(n, folds=folds, validate_fraction=fraction, embargo_bars=embargo)
    except ConfigError:
        return  # refused with the reasons listed: nothing to check
    assert len(cut) == folds
    assert cut[0].train.start == 0 and cut[-1].validate.stop == n
    for fold in cut:
        assert len(fold.train) >= 1 and len(fold.validate) >= 1
        assert fold.train.stop == fold.embargo.start and fold.embargo.stop == fold.validate.start
        assert len(fold.embargo) == embargo
        assert max(fold.train) + embargo < min(fold.validate)  # no train bar after validation
    for a, b in itertools.pairwise(cut):
        assert a.validate.stop == b.train.start  # contiguous, in order
    bars = [i for f in cut for r in (f.train, f.embargo, f.validate) for i in r]
    assert bars == list(range(n))  # every bar exactly once: disjoint and covering
    validation = {i for f in cut for i in f.validate}
    assert not validation & {i for f in cut for i in f.train}  # OOS bars never trained on


def test_too_few_bars_is_a_config_error_naming_the_fold() -> None:
    """A fold left without training bars is refused with its numbers, not silently dropped."""
    with pytest.raises(ConfigError, match="fold 0: 0 training bars"):
        walk_forward(100, folds=4, validate_fraction=0.3, embargo_bars=20)


def test_invalid_settings_are_listed_together() -> None:
    """Every invalid setting is reported at once."""
    with pytest.raises(ConfigError) as err:
        walk_forward(100, folds=0, validate_fraction=1.5, embargo_bars=-1)
    assert len(err.value.problems) == 3
