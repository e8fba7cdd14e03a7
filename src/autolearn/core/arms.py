"""Concurrent arms: which entries see a change in flight and which keep the last-known-good.

While a change is in flight, the bot's entries are split between the candidate values and the
last-known-good (LKG) values by a stable hash of a unit id the bot passes (an order or signal id),
so the judge compares the two over the same period, market and hours. A before/after comparison
(the fallback for a bot that cannot pass a unit id) confounds the change with whatever the
market did in between.

Each split is keyed by an id unique to its flight, so the same unit lands in independent arms
of two flights (of different families) and a unit's arm never changes while its flight runs.
A unit's version is the content address of its values: a split of ``k`` flights yields up to
``2^k`` versions, all precomputed by the state store so the bot's reads never hash configs.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autolearn.core.knobs import KnobValue

__all__ = ["CANDIDATE", "LKG", "ArmSplit", "arm_key", "arm_layers", "in_candidate"]

CANDIDATE = "candidate"
LKG = "baseline"
_MAX_SPLITS = 4  # 16 versions at most; more flights at once would confound attribution anyway


@dataclass(frozen=True, slots=True, kw_only=True)
class ArmSplit:
    """One flight's split: ``share`` of units get the candidate, the rest ``baseline`` values."""

    split_id: str  # unique per flight: "<mechanism>/<family>/<started_at>"
    mechanism: str
    family: str
    share: float  # of units on the candidate
    baseline: dict[str, KnobValue]  # the LKG values of the family's knobs

    def __post_init__(self) -> None:
        if not 0 < self.share < 1:
            raise ValueError(f"arm share must be in (0, 1), got {self.share!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "split_id": self.split_id,
            "mechanism": self.mechanism,
            "family": self.family,
            "share": self.share,
            "baseline": dict(sorted(self.baseline.items())),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ArmSplit:
        share = doc["share"]
        if isinstance(share, bool) or not isinstance(share, int | float):
            raise TypeError(f"share must be a number, got {share!r}")
        return cls(
            split_id=str(doc["split_id"]),
            mechanism=str(doc["mechanism"]),
            family=str(doc["family"]),
            share=float(share),
            baseline=dict(doc["baseline"]),
        )


def in_candidate(split: ArmSplit, unit: str) -> bool:
    """Whether ``unit`` sees the candidate of ``split`` (stable: same answer every call)."""
    digest = hashlib.blake2b(f"{split.split_id}\0{unit}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64 < split.share


def arm_key(splits: Sequence[ArmSplit], unit: str) -> str:
    """One letter per split, ``c`` (candidate) or ``b`` (baseline): the unit's version key."""
    return "".join("c" if in_candidate(s, unit) else "b" for s in splits)


def arm_layers(
    layer: Mapping[str, KnobValue],
    splits: Sequence[ArmSplit],
    is_default: Callable[[str, KnobValue], bool],
) -> dict[str, dict[str, KnobValue]]:
    """The runtime layer of every arm combination with at least one baseline arm.

    ``layer`` is the candidate layer (every split on its candidate); a baseline arm puts its
    family's LKG values back, dropping a knob that is then at its preset (``is_default``) so the
    layer, and so its version, is the same as if the LKG had been applied.
    """
    if len(splits) > _MAX_SPLITS:
        raise ValueError(f"at most {_MAX_SPLITS} concurrent splits, got {len(splits)}")
    out: dict[str, dict[str, KnobValue]] = {}
    for letters in itertools.product("cb", repeat=len(splits)):
        key = "".join(letters)
        if "b" not in key:
            continue
        values = dict(layer)
        for split, letter in zip(splits, letters, strict=True):
            if letter == "c":
                continue
            for knob, value in split.baseline.items():
                if is_default(knob, value):
                    values.pop(knob, None)
                else:
                    values[knob] = value
        out[key] = values
    return out
