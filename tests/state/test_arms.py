"""Concurrent arms: the store serves a change in flight to a stable share of units only."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autolearn.adapters.state import StateStore
from autolearn.core.apply_guard import ApplyKind
from autolearn.core.arms import ArmSplit, arm_key, in_candidate
from autolearn.core.knobs import Owner
from autolearn.errors import StateError
from autolearn.runtime import Tuning
from autolearn.settings import load_registry

REGISTRY = load_registry(None)
T0 = datetime(2025, 10, 23, tzinfo=UTC)
MICRO = "strategies.MomentumPulse.min_confidence"  # tuner, family micro.entry, preset 0.65
UPPER = "exit.lowvol.upper_bound_max_sec"  # tuner, family exit.lowvol, preset 3.6


def _split(family: str, knob: str, value: float, share: float = 0.3) -> ArmSplit:
    return ArmSplit(
        split_id=f"tuner/{family}/{T0.isoformat()}",
        mechanism="tuner",
        family=family,
        share=share,
        baseline={knob: value},
    )


@pytest.fixture(name="store")
def fixture_store(tmp_path: Path) -> StateStore:
    store = StateStore(tmp_path / "state", REGISTRY)
    store.apply(
        Owner.TUNER,
        {MICRO: 0.67},
        T0,
        kind=ApplyKind.APPLY,
        start_arms=_split("micro.entry", MICRO, 0.65),
    )
    return store


def test_the_candidate_reaches_its_share_of_units_and_the_rest_keep_the_lkg(
    store: StateStore,
) -> None:
    """~30 % of units see the candidate; the others see the LKG and pin the LKG's version."""
    tuning = Tuning(store.root, REGISTRY, refresh_s=0.0)
    units = [f"order-{i}" for i in range(4000)]
    arms = [tuning.arm(u) for u in units]
    share = sum(a.arms["micro.entry"] == "candidate" for a in arms) / len(arms)
    assert 0.27 < share < 0.33
    lkg_version = store.base_version()  # the LKG is the presets: its version is the base one
    for unit, arm in zip(units[:200], arms[:200], strict=True):
        value = tuning.get(MICRO, unit=unit)
        if arm.arms["micro.entry"] == "candidate":
            assert (value, arm.version) == (0.67, store.read_effective().version)
        else:
            assert (value, arm.version) == (0.65, lkg_version)
        assert tuning.values_for(unit)[MICRO] == value
    assert tuning.get(MICRO) == 0.67  # no unit: the candidate (the before/after fallback)


def test_every_arm_version_has_a_verifiable_snapshot(store: StateStore) -> None:
    """The judge resolves a trade's pinned arm version to its values: the snapshot must exist."""
    store.apply(Owner.TUNER, {UPPER: 3.8}, T0 + timedelta(hours=2), kind=ApplyKind.APPLY)
    effective = store.read_effective()
    assert effective.arms and set(effective.arm_versions) == {"b"}
    snapshot = store.read_snapshot(effective.arm_versions["b"])
    # the later, unrelated change reaches both arms; only the flight's knob differs
    assert snapshot["values"] == {UPPER: 3.8}
    assert effective.values == {MICRO: 0.67, UPPER: 3.8}


def test_an_apply_of_the_flights_knob_ends_its_arms(store: StateStore) -> None:
    """A rollback (or an operator's set) of the knob in flight ends the split: one arm again."""
    store.apply(Owner.TUNER, {MICRO: 0.65}, T0 + timedelta(hours=2), kind=ApplyKind.ROLLBACK)
    assert store.read_effective().arms == ()
    tuning = Tuning(store.root, REGISTRY, refresh_s=0.0)
    assert {tuning.arm(f"u{i}").arms.get("micro.entry") for i in range(50)} == {None}


def test_end_arms_keeps_the_version(store: StateStore) -> None:
    """A promotion ends the split without changing values: same version, everyone on it."""
    before = store.read_effective()
    assert store.end_arms({"micro.entry": "tuner"}, T0 + timedelta(hours=3)) is True
    after = store.read_effective()
    assert after.version == before.version and after.arms == ()
    assert store.end_arms({"micro.entry": "tuner"}, T0 + timedelta(hours=4)) is False
    assert store.end_arms({"micro.entry": "scalp_trainer"}, T0) is False  # not its owner


def test_two_flights_split_independently(store: StateStore) -> None:
    """Two families in flight: four versions, each unit's arms independent of each other."""
    store.apply(
        Owner.TUNER,
        {UPPER: 3.8},
        T0 + timedelta(hours=2),
        kind=ApplyKind.APPLY,
        start_arms=_split("exit.lowvol", UPPER, 3.6, share=0.5),
    )
    effective = store.read_effective()
    assert set(effective.arm_versions) == {"cb", "bc", "bb"}
    tuning = Tuning(store.root, REGISTRY, refresh_s=0.0)
    seen = {tuple(sorted(tuning.arm(f"u{i}").arms.items())) for i in range(400)}
    assert len(seen) == 4
    both = sum(
        1
        for i in range(4000)
        if in_candidate(effective.arms[0], f"u{i}") and in_candidate(effective.arms[1], f"u{i}")
    )
    assert 0.12 < both / 4000 < 0.18  # 0.3 * 0.5, independent


def test_malformed_arms_are_a_state_error(store: StateStore) -> None:
    """An arm share that is not a number in (0, 1) is refused, never served."""
    doc = json.loads(store.effective_path.read_text())
    doc["arms"][0]["share"] = 1.5
    store.effective_path.write_text(json.dumps(doc))
    with pytest.raises(StateError, match="share"):
        store.read_effective()
    doc["arms"][0]["share"] = "0.3"
    store.effective_path.write_text(json.dumps(doc))
    with pytest.raises(StateError, match="share"):
        store.read_effective()


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(unit=st.text(min_size=1, max_size=40))
def test_a_units_arm_is_stable_and_matches_its_snapshot(store: StateStore, unit: str) -> None:
    """Any unit id: the same arm every call, and its values are exactly its version's snapshot."""
    tuning = Tuning(store.root, REGISTRY, refresh_s=0.0)
    first = tuning.arm(unit)
    assert tuning.arm(unit) == first
    effective = store.read_effective()
    assert arm_key(effective.arms, unit) in ("c", "b")
    layer = store.read_snapshot(first.version)["values"]
    assert tuning.values_for(unit)[MICRO] == layer.get(MICRO, 0.65)
