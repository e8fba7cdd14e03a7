"""The knob registry: the packaged inventory loads; invalid registries fail with every problem."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from autolearn.adapters.yamlio import load_yaml_text
from autolearn.core.knobs import KnobSpec, KnobType, Owner, is_on_grid, snap_to_grid, step_value
from autolearn.core.ownership_doc import ownership_problems
from autolearn.core.registry import parse_registry
from autolearn.errors import ConfigError, OwnershipError
from autolearn.settings import load_registry, packaged_registry_text


def _doc() -> dict[str, Any]:
    return yaml.safe_load(packaged_registry_text())


class TestPackagedRegistry:
    def test_holds_the_original_inventory(self) -> None:
        """The original's tuner knobs are registered with its defaults and bounds (section 4)."""
        registry = load_registry(None)
        upper = registry.spec("exit.lowvol.upper_bound_max_sec")
        assert (upper.owner, upper.default, upper.lower, upper.upper) == (
            Owner.TUNER,
            3.6,
            3.2,
            4.8,
        )
        share = registry.spec("alloc.regime.quiet_low_vol.micro_share")
        assert (share.default, share.lower, share.upper) == (0.35, 0.2, 0.6)
        assert registry.spec("strategies.VolCompressionBreak.accel_pctile").type is KnobType.INT
        assert registry.spec("pockets.micro.allow_new").owner is Owner.POLICY
        assert ownership_problems(registry) == []

    def test_strategy_patterns_resolve_only_for_known_pockets(self) -> None:
        """A per-strategy policy knob exists for declared pockets only."""
        registry = load_registry(None)
        assert registry.find("pockets.scalp.strategies.M1Scalper.allow_new") is not None
        assert registry.find("pockets.manual.strategies.M1Scalper.allow_new") is None
        with pytest.raises(OwnershipError, match="not registered"):
            registry.spec("pockets.manual.allow_new")


class TestInvalidRegistry:
    def test_all_problems_reported_at_once_with_dotted_paths(self) -> None:
        """Three independent mistakes give one error listing all three paths."""
        doc = _doc()
        doc["knobs"]["exit.lowvol.upper_bound_max_sec"]["default"] = 9.9
        doc["knobs"]["exit.lowvol.hazard_debounce_ticks"]["owner"] = "gpt"
        doc["knobs"]["strategies.MomentumPulse.min_confidence"]["max_step"] = 0.015
        with pytest.raises(ConfigError) as info:
            parse_registry(doc, "knobs.yaml")
        text = str(info.value)
        assert "knobs.exit.lowvol.upper_bound_max_sec.default" in text
        assert "outside bounds" in text
        assert "knobs.exit.lowvol.hazard_debounce_ticks.owner: unknown owner 'gpt'" in text
        assert "knobs.strategies.MomentumPulse.min_confidence.max_step" in text
        assert len(info.value.problems) == 3

    def test_two_owners_in_a_list_refused(self) -> None:
        """A knob with two owners is refused."""
        doc = _doc()
        doc["knobs"]["exit.lowvol.scratch_requires_events"]["owner"] = ["tuner", "policy"]
        with pytest.raises(ConfigError, match="exactly one owner"):
            parse_registry(doc)

    def test_duplicate_key_refused_by_the_loader(self) -> None:
        """Defining one knob twice in YAML (two writers) is caught, not silently merged."""
        text = (
            "schema_version: 1\npockets: [micro]\nknobs:\n"
            "  a.b: {owner: tuner, type: bool, default: true}\n"
            "  a.b: {owner: policy, type: bool, default: true}\n"
        )
        with pytest.raises(ConfigError, match=r"duplicate key 'a\.b'"):
            load_yaml_text(text, "knobs.yaml")

    @pytest.mark.parametrize(
        ("knob", "field", "value", "fragment"),
        [
            ("exit.lowvol.upper_bound_max_sec", "bounds", [4.8, 3.2], "lower < upper"),
            ("exit.lowvol.upper_bound_max_sec", "step", -0.1, "step"),
            ("exit.lowvol.upper_bound_max_sec", "min_interval", "soon", "min_interval"),
            ("exit.lowvol.upper_bound_max_sec", "colour", "red", "unknown key"),
            ("exit.lowvol.upper_bound_max_sec", "type", "str", "type"),
            ("exit.lowvol.hazard_debounce_ticks", "default", 2.5, "default"),
        ],
    )
    def test_each_invariant(self, knob: str, field: str, value: object, fragment: str) -> None:
        """Each invariant of a knob spec is enforced and named."""
        doc = copy.deepcopy(_doc())
        doc["knobs"][knob][field] = value
        with pytest.raises(ConfigError, match=fragment):
            parse_registry(doc)

    def test_newer_schema_refused(self) -> None:
        """A registry from a newer autolearn is refused rather than half-understood."""
        doc = _doc()
        doc["schema_version"] = 2
        with pytest.raises(ConfigError, match="schema_version"):
            parse_registry(doc)


_FLOAT = KnobSpec(
    name="x.y",
    owner=Owner.TUNER,
    type=KnobType.FLOAT,
    default=0.35,
    lower=0.2,
    upper=0.6,
    step=0.05,
    max_step=0.05,
)
_INT = KnobSpec(
    name="x.z",
    owner=Owner.TUNER,
    type=KnobType.INT,
    default=240,
    lower=180,
    upper=400,
    step=10,
    max_step=20,
)


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_snap_lands_in_bounds_on_grid_idempotently(value: float) -> None:
    """snap_to_grid always lands in bounds, on the grid, and is idempotent."""
    for spec in (_FLOAT, _INT):
        snapped = snap_to_grid(spec, value)
        assert spec.lower is not None and spec.upper is not None
        assert spec.lower <= snapped <= spec.upper
        assert is_on_grid(spec, float(snapped))
        assert snap_to_grid(spec, float(snapped)) == snapped


@given(st.integers(min_value=-50, max_value=50))
def test_step_value_moves_by_whole_steps_within_bounds(steps: int) -> None:
    """Stepping from a grid value moves by whole grid steps and saturates at the bounds."""
    moved = step_value(_FLOAT, 0.35, steps)
    expected = min(max(0.35 + steps * 0.05, 0.2), 0.6)
    assert moved == pytest.approx(expected)
