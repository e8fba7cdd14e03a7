"""The worker loader: precedence, tuned zeros, cheap reads, and no silent fall-through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from autolearn.adapters.state import StateStore
from autolearn.core.apply_guard import ApplyKind
from autolearn.core.knobs import Owner
from autolearn.runtime import Tuning
from autolearn.settings import load_registry

REGISTRY = load_registry(None)
T0 = datetime(2025, 10, 23, tzinfo=UTC)
UPPER = "exit.lowvol.upper_bound_max_sec"
GRACE = "exit.lowvol.min_grace_before_scratch_ms"


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(name="bot")
def fixture_bot(tmp_path: Path) -> Path:
    """A bot root with legacy tracked files holding stale values and an unregistered key."""
    (tmp_path / "config").mkdir()
    (tmp_path / "configs").mkdir()
    (tmp_path / "config" / "tuning_overlay.yaml").write_text(
        "meta: {generated_at: x}\nexit: {lowvol: {upper_bound_max_sec: 3.7}}\n"
        "strategies: {RangeRevertLite: {band_z: 1.4}}\n"
    )
    (tmp_path / "configs" / "scalp_active_params.json").write_text('{"M1Scalper": {"x": 0}}')
    return tmp_path


class TestPrecedence:
    def test_runtime_over_preset_over_legacy(self, bot: Path) -> None:
        """Runtime beats presets; presets beat legacy; legacy serves only unregistered keys."""
        store = StateStore(bot / "logs" / "tuning", REGISTRY)
        tuning = Tuning(store.root, REGISTRY, bot_root=bot, refresh_s=0)
        assert tuning.get(UPPER) == 3.6  # preset, not the stale legacy 3.7
        assert tuning.explain(UPPER).layer == "preset"
        assert tuning.get("strategies.RangeRevertLite.band_z") == 1.4
        assert tuning.explain("strategies.RangeRevertLite.band_z").layer.startswith("legacy:")
        assert tuning.get("meta.generated_at", None) is None  # meta is not a knob
        store.apply(Owner.TUNER, {UPPER: 3.8}, T0, record={"run_id": "a"})
        assert tuning.get(UPPER) == 3.8
        info = tuning.explain(UPPER)
        assert (info.layer, info.writer) == ("runtime", "tuner")
        assert info.version == tuning.config_version == store.read_effective().version

    def test_tuned_zero_is_a_value(self, bot: Path) -> None:
        """A tuned 0 (and a tuned false) is returned, never replaced by a default."""
        store = StateStore(bot / "logs" / "tuning", REGISTRY)
        tuning = Tuning(store.root, REGISTRY, refresh_s=0)
        store.apply(
            Owner.OPERATOR,
            {GRACE: 0, "pockets.micro.allow_new": False},
            T0,
            kind=ApplyKind.OPERATOR,
        )
        assert tuning.get(GRACE) == 0
        assert tuning.get("pockets.micro.allow_new") is False
        assert tuning.get(GRACE, 600) == 0

    def test_missing_key(self, bot: Path) -> None:
        """An unknown key raises KeyError unless a default is given."""
        tuning = Tuning(bot / "logs" / "tuning", REGISTRY, refresh_s=0)
        with pytest.raises(KeyError):
            tuning.get("no.such.knob")
        assert tuning.get("no.such.knob", 7) == 7


class TestCorruption:
    def test_torn_file_keeps_last_good_and_logs(self, bot: Path) -> None:
        """A corrupt effective.json keeps the last good version in memory, loudly."""
        store = StateStore(bot / "logs" / "tuning", REGISTRY)
        store.apply(Owner.TUNER, {UPPER: 3.8}, T0, record={"run_id": "a"})
        clock = _Clock()
        tuning = Tuning(store.root, REGISTRY, bot_root=bot, refresh_s=1.0, clock=clock)
        good = tuning.config_version
        assert tuning.get(UPPER) == 3.8
        store.effective_path.write_text('{"schema_version": 1, "version": "v1", "val')
        clock.t += 2
        with capture_logs() as logs:
            assert tuning.get(UPPER) == 3.8  # not the preset, not the legacy 3.7
        assert tuning.config_version == good and tuning.degraded
        assert any(e["event"] == "runtime_state_unreadable" for e in logs)

    def test_cold_start_on_corrupt_file_recovers_from_history(self, bot: Path) -> None:
        """A worker starting on a corrupt file gets the last recorded version, not legacy."""
        store = StateStore(bot / "logs" / "tuning", REGISTRY)
        result = store.apply(Owner.TUNER, {UPPER: 3.8}, T0, record={"run_id": "a"})
        store.effective_path.write_text("garbage")
        with capture_logs():
            tuning = Tuning(store.root, REGISTRY, bot_root=bot, refresh_s=0)
            assert tuning.get(UPPER) == 3.8
            assert tuning.config_version == result.version_after
            assert tuning.degraded


class TestCaching:
    def test_reads_are_cached_until_refresh(self, bot: Path) -> None:
        """Within refresh_s no file is re-read; after it a change is seen."""
        store = StateStore(bot / "logs" / "tuning", REGISTRY)
        clock = _Clock()
        tuning = Tuning(store.root, REGISTRY, refresh_s=5.0, clock=clock)
        assert tuning.get(UPPER) == 3.6
        store.apply(Owner.TUNER, {UPPER: 3.7}, T0)
        assert tuning.get(UPPER) == 3.6  # cached
        clock.t += 6
        assert tuning.get(UPPER) == 3.7


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from([3.2, 3.4, 3.6, 3.8, 4.0]), min_size=1, max_size=6))
def test_loader_always_sees_a_recorded_version(tmp_path_factory, values) -> None:
    """After any sequence of applies, the loader's version is one the store recorded."""
    root = tmp_path_factory.mktemp("s")
    store = StateStore(root, REGISTRY)
    tuning = Tuning(root, REGISTRY, refresh_s=0)
    versions = {store.base_version()}
    for i, value in enumerate(values):
        result = store.apply(
            Owner.OPERATOR, {UPPER: value}, T0 + timedelta(hours=i), kind=ApplyKind.OPERATOR
        )
        versions.add(result.version_after)
        assert tuning.config_version in versions
        assert tuning.get(UPPER) == value
