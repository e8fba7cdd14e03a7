"""Walk-forward folds: the bar range cut, in time order, into train / embargo / validate blocks.

The range ``[0, n_bars)`` is tiled by ``folds`` consecutive segments; each segment is
``train | embargo | validate``. So folds are ordered and disjoint, cover the whole range, every
training bar precedes its validation bars by at least ``embargo_bars``, and **no validation bar
of any fold is ever a training bar of another** (non-overlapping walk-forward). The search
scores candidates on the train blocks only; the validation blocks stay out of sample until the
single candidate-vs-incumbent comparison, which is what makes that comparison honest.

The embargo keeps a trade opened at the end of a training block from reaching into validation
prices (and indicator state from carrying over); choose it at least as long as a typical hold.

Pure: indices in, indices out; no candles, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from autolearn.errors import ConfigError

__all__ = ["Fold", "fold_shortfall", "walk_forward"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Fold:
    """One fold: half-open bar ranges; ``embargo`` lies between ``train`` and ``validate``."""

    index: int
    train: range
    embargo: range
    validate: range

    def to_record(self, time_us: Any | None = None) -> dict[str, Any]:
        """The ranges (and their UTC epoch-us bounds when ``time_us`` is given)."""
        out: dict[str, Any] = {
            "index": self.index,
            "train": [self.train.start, self.train.stop],
            "validate": [self.validate.start, self.validate.stop],
            "embargo_bars": len(self.embargo),
        }
        if time_us is not None:
            out["train_us"] = [int(time_us[self.train.start]), int(time_us[self.train.stop - 1])]
            out["validate_us"] = [
                int(time_us[self.validate.start]),
                int(time_us[self.validate.stop - 1]),
            ]
        return out


def walk_forward(
    n_bars: int,
    *,
    folds: int,
    validate_fraction: float = 0.3,
    embargo_bars: int = 0,
    min_train_bars: int = 1,
) -> tuple[Fold, ...]:
    """Cut ``n_bars`` into ``folds`` ordered train/embargo/validate segments.

    Each segment gets ``round(len * validate_fraction)`` (at least 1) validation bars at its
    end, ``embargo_bars`` before them, and the rest for training.

    Raises:
        ConfigError: the settings leave a fold with fewer than ``min_train_bars`` training bars
            (every problem listed, with the numbers).
    """
    problems: list[str] = []
    if folds < 1:
        problems.append(f"folds: must be >= 1, got {folds!r}")
    if not 0 < validate_fraction < 1:
        problems.append(f"validate_fraction: must be in (0, 1), got {validate_fraction!r}")
    if embargo_bars < 0:
        problems.append(f"embargo_bars: must be >= 0, got {embargo_bars!r}")
    if problems:
        raise ConfigError("invalid walk-forward settings:", problems)
    bounds = [round(j * n_bars / folds) for j in range(folds + 1)]
    out: list[Fold] = []
    for j in range(folds):
        start, stop = bounds[j], bounds[j + 1]
        n_val = max(1, round((stop - start) * validate_fraction))
        val_start = stop - n_val
        train_stop = val_start - embargo_bars
        if train_stop - start < min_train_bars:
            problems.append(
                f"fold {j}: {max(0, train_stop - start)} training bars < {min_train_bars} "
                f"(segment of {stop - start} bars, {n_val} validation, {embargo_bars} embargo); "
                "use fewer folds, a smaller embargo or more candles"
            )
            continue
        out.append(
            Fold(
                index=j,
                train=range(start, train_stop),
                embargo=range(train_stop, val_start),
                validate=range(val_start, stop),
            )
        )
    if problems:
        raise ConfigError(f"cannot cut {n_bars} bars into {folds} folds:", problems)
    return tuple(out)


def fold_shortfall(
    n_bars: int,
    *,
    folds: int,
    validate_fraction: float,
    embargo_bars: int,
    min_train_bars: int,
) -> str | None:
    """Why these settings leave a fold fewer than ``min_train_bars`` training bars, else None.

    The answer gives the numbers (segment = train + embargo + validate) and how many bars
    would be enough, so the operator can choose a longer window, fewer folds or a smaller
    embargo. Settings that are invalid in themselves are :func:`walk_forward`'s to report.
    """
    if folds < 1 or not 0 < validate_fraction < 1 or embargo_bars < 0:
        return None
    bounds = [round(j * n_bars / folds) for j in range(folds + 1)]
    shortest: tuple[int, int, int] | None = None  # (train, segment, validate)
    for j in range(folds):
        segment = bounds[j + 1] - bounds[j]
        n_val = max(1, round(segment * validate_fraction))
        train = max(0, segment - n_val - embargo_bars)
        if shortest is None or train < shortest[0]:
            shortest = (train, segment, n_val)
    if shortest is None or shortest[0] >= min_train_bars:
        return None
    train, segment, n_val = shortest
    # segment * (1 - validate_fraction) - embargo >= min_train, with one bar of rounding slack
    needed = math.ceil(folds * ((min_train_bars + embargo_bars) / (1 - validate_fraction) + 1))
    return (
        f"{n_bars} bars in {folds} folds leave {train} training bars in a fold < min_train_bars "
        f"{min_train_bars} (segment {segment} = {train} train + {embargo_bars} embargo + {n_val} "
        f"validate); about {needed} bars are needed: a longer window, fewer folds or a smaller "
        "embargo_bars"
    )
