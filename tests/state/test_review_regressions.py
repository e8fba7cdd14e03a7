"""Regressions from the safety review: each test reproduces a bug that once slipped through."""

from __future__ import annotations

import copy
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from autolearn.adapters import gitguard
from autolearn.adapters.state import StateStore
from autolearn.core.apply_guard import ApplyKind, GuardCode, guard_changes
from autolearn.core.knobs import Owner
from autolearn.core.registry import parse_registry
from autolearn.errors import ConfigError, StateError, TrackedPathError
from autolearn.settings import load_registry, packaged_registry_text

REGISTRY = load_registry(None)
NOW = datetime(2025, 10, 23, 3, 0, tzinfo=UTC)
UPPER = "exit.lowvol.upper_bound_max_sec"


class TestRegistryLimits:
    def test_float_knob_needs_a_grid(self) -> None:
        """A float knob without a step is refused (it used to round every value to 0 decimals)."""
        doc = {
            "schema_version": 1,
            "pockets": [],
            "knobs": {
                "a.share": {
                    "owner": "tuner",
                    "type": "float",
                    "default": 0.35,
                    "bounds": [0.2, 0.6],
                }
            },
        }
        with pytest.raises(ConfigError, match=r"a\.share\.step: a float knob needs a step"):
            parse_registry(doc)

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("max_drift_per_day", float("nan")),
            ("max_step", float("nan")),
            ("step", float("inf")),
            ("min_interval", float("inf")),
            ("bounds", [3.2, float("inf")]),
        ],
    )
    def test_non_finite_limits_are_config_errors(self, field: str, value: object) -> None:
        """NaN/inf limits are ConfigErrors, never a silently disabled limit or a crash."""
        doc = copy.deepcopy(yaml.safe_load(packaged_registry_text()))
        doc["knobs"][UPPER][field] = value
        with pytest.raises(ConfigError, match=field):
            parse_registry(doc)


class TestGuardValues:
    def test_huge_int_is_a_code_not_a_crash(self) -> None:
        """An integer beyond float range is an invalid value, not an OverflowError."""
        (decision,) = guard_changes(
            REGISTRY,
            Owner.OPERATOR,
            REGISTRY.defaults(),
            {},
            {"strategies.TrendMA.fast_window": 10**400},
            NOW,
            ApplyKind.OPERATOR,
        )
        assert decision.code is GuardCode.INVALID_VALUE

    def test_negative_zero_is_zero(self, tmp_path: Path) -> None:
        """-0.0 and 0.0 are one value and one version."""
        store = StateStore(tmp_path / "s", REGISTRY)
        result = store.apply(
            Owner.OPERATOR, {"pockets.micro.size_mult": -0.0}, NOW, kind=ApplyKind.OPERATOR
        )
        assert result.version_after == store.version_of({"pockets.micro.size_mult": 0.0})


def test_recovery_does_not_duplicate_after_many_records(tmp_path: Path) -> None:
    """An apply followed by 200+ other records is not appended again as 'recovered'."""
    store = StateStore(tmp_path / "s", REGISTRY)
    store.apply(Owner.TUNER, {UPPER: 3.7}, NOW, record={"run_id": "R1", "mechanism": "tuner"})
    for i in range(205):
        store.record({"run_id": f"hold{i}", "applied": False})
    store.apply(Owner.TUNER, {UPPER: 3.8}, NOW + timedelta(hours=2), record={"run_id": "R2"})
    run_ids = [r["run_id"] for r in store.history.read().records]
    assert run_ids.count("R1") == 1 and run_ids[-1] == "R2"


def test_restore_is_exact_or_nothing(tmp_path: Path) -> None:
    """A restore the guard cannot complete changes nothing and names the refused knob."""
    store = StateStore(tmp_path / "s", REGISTRY)
    first = store.apply(Owner.TUNER, {UPPER: 3.7}, NOW)
    store.apply(Owner.TUNER, {UPPER: 3.8}, NOW + timedelta(hours=2))
    with pytest.raises(StateError, match=f"{UPPER}: not_owner"):
        store.restore(first.version_after, Owner.POLICY, NOW, kind=ApplyKind.ROLLBACK)
    assert store.current_values()[UPPER] == 3.8
    result = store.restore(first.version_after, Owner.OPERATOR, NOW)
    assert result.version_after == first.version_after


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the checkout another owner")
def test_gitguard_fails_closed_when_git_refuses(tmp_path: Path) -> None:
    """When git refuses to answer (dubious ownership), writes are refused, not allowed."""
    repo = tmp_path / "bot"
    (repo / "logs" / "tuning").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "logs" / "tuning" / "history.jsonl").write_text("")
    subprocess.run(["git", "-C", str(repo), "add", "-f", "logs/tuning/history.jsonl"], check=True)
    os.chown(repo, 12345, 12345)  # owned by the deploy user; the worker runs as another uid
    gitguard.git_toplevel.cache_clear()
    try:
        store = StateStore(repo / "logs" / "tuning", REGISTRY)
        with pytest.raises((TrackedPathError, StateError), match=r"safe\.directory|tracks"):
            store.record({"run_id": "x"})
        assert (repo / "logs" / "tuning" / "history.jsonl").read_text() == ""
    finally:
        gitguard.git_toplevel.cache_clear()


def _registry_with_default(knob: str, default: float):  # -> Registry
    doc = copy.deepcopy(yaml.safe_load(packaged_registry_text()))
    doc["knobs"][knob]["default"] = default
    doc["knobs"][knob]["doc"] = "edited"  # a doc-only edit must not matter
    return parse_registry(doc)


def test_a_preset_change_is_a_new_config_version(tmp_path: Path) -> None:
    """Same overrides over different presets get a different version, attributable by snapshot."""
    from autolearn.runtime import Tuning

    store = StateStore(tmp_path / "s", REGISTRY)
    applied = store.apply(Owner.TUNER, {UPPER: 3.7}, NOW, record={"run_id": "a"})
    share = "alloc.regime.quiet_low_vol.micro_share"
    deployed = _registry_with_default(share, 0.4)  # a deploy moved a preset
    after = StateStore(tmp_path / "s", deployed)
    rebased = after.read_effective()
    assert rebased.version != applied.version_after and rebased.values == {UPPER: 3.7}
    assert Tuning(after.root, deployed, refresh_s=0).config_version == rebased.version
    assert after.read_snapshot(rebased.version)["values"] == {UPPER: 3.7}  # attributable now
    nxt = after.apply(Owner.POLICY, {"pockets.micro.allow_new": False}, NOW, record={"run_id": "b"})
    assert nxt.version_before == rebased.version
    assert (after.snapshots_dir / f"{rebased.version}.json").exists()  # kept for attribution
    assert after.read_snapshot(applied.version_after)["values"] == {UPPER: 3.7}  # old one too
    doc_only = _registry_with_default(share, 0.35)  # same presets, edited docs
    assert StateStore(tmp_path / "t", doc_only).base_version() == store.base_version()
