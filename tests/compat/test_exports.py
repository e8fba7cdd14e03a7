"""The compat exports: shapes, determinism, fail-closed writes, and what status says."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autolearn.adapters.state import StateStore
from autolearn.compat.quantrabbit.config import (
    find_compat_config,
    load_compat_config,
    mapping_report,
    parse_compat_config,
)
from autolearn.compat.quantrabbit.health import compat_problems
from autolearn.compat.quantrabbit.loader import OriginalReader
from autolearn.compat.quantrabbit.render import (
    NO_STRATEGY,
    ExportMeta,
    RenderError,
    render_policy_overlay,
    render_tuning_overlay,
)
from autolearn.core.knobs import KnobType, Owner
from autolearn.errors import ConfigError
from autolearn.ops.status import LedgerProbe, StatusInputs, build_status
from autolearn.settings import load_registry
from tests.compat.pretend import git, make_checkout

T0 = datetime(2026, 2, 2, 3, 0, tzinfo=UTC)
META = ExportMeta(version="vabc", seq=3, generated_at="2026-02-02T03:00:00Z", generated_ts=1.0)
POCKETS = ("macro", "micro", "scalp")
ON = {"quantrabbit": {"exports": {"tuning_overlay": True, "policy_overlay": True}}}


def config(tmp_path: Path, doc: dict | None = None):  # type: ignore[no-untyped-def]
    from importlib import resources

    packaged = yaml.safe_load(
        resources.files("autolearn").joinpath("data/quantrabbit_paths.yaml").read_text()
    )
    return parse_compat_config(packaged, doc if doc is not None else ON, tmp_path)


class TestConfig:
    def test_off_by_default(self, tmp_path: Path) -> None:
        """No compat file, or one without switches: nothing is exported, nothing reported."""
        assert find_compat_config(tmp_path / "state", {}) is None
        off = config(tmp_path, {})
        assert not off.is_on
        assert mapping_report(load_registry(None), off) == ([], [])

    def test_every_packaged_knob_is_mapped_or_explained(self, tmp_path: Path) -> None:
        """With exports on, the packaged registry has no knob without a path or a reason."""
        problems, notes = mapping_report(load_registry(None), config(tmp_path))
        assert problems == []
        assert any("size_mult" in n for n in notes)

    def test_unmapped_knob_is_a_problem(self, tmp_path: Path) -> None:
        """A knob the mapping does not know is reported, naming it."""
        from importlib import resources

        packaged = yaml.safe_load(
            resources.files("autolearn").joinpath("data/quantrabbit_paths.yaml").read_text()
        )
        del packaged["knobs"]["exit.lowvol.upper_bound_max_sec"]
        cfg = parse_compat_config(packaged, ON, tmp_path)
        problems, _ = mapping_report(load_registry(None), cfg)
        assert problems and "exit.lowvol.upper_bound_max_sec" in problems[0]

    @pytest.mark.parametrize(
        ("doc", "where"),
        [
            ({"quantrabbit": {"exports": {"tuning_overlay": "yes"}}}, "exports.tuning_overlay"),
            ({"quantrabbit": {"exports": {"overlay": True}}}, "exports.overlay"),
            ({"quantrabbit": {"typo": 1}}, "quantrabbit.typo"),
            ({"quantrabbit": {"pocket_strategies": {"micro": "A"}}}, "pocket_strategies.micro"),
        ],
    )
    def test_bad_config_names_the_key(self, tmp_path: Path, doc: dict, where: str) -> None:
        """A wrong-typed switch, an unknown export or key: ConfigError naming its dotted path."""
        with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
            config(tmp_path, doc)


class TestRender:
    def test_policy_block_is_allow_new_false(self, tmp_path: Path) -> None:
        """pockets.micro.allow_new false -> pockets.micro.entry_gates.allow_new false."""
        doc = json.loads(
            render_policy_overlay(
                None, {"pockets.micro.allow_new": False}, POCKETS, config(tmp_path), META
            )
        )
        assert doc["pockets"]["micro"]["entry_gates"]["allow_new"] is False
        assert doc["pockets"]["macro"]["entry_gates"]["allow_new"] is True
        assert doc["version"] == 3 and doc["notes"]["autolearn_version"] == "vabc"

    def test_strategy_block_is_an_allow_list(self, tmp_path: Path) -> None:
        """A blocked strategy leaves the pocket's other strategies as its allow-list."""
        cfg = config(
            tmp_path,
            {"quantrabbit": {**ON["quantrabbit"], "pocket_strategies": {"micro": ["A", "B"]}}},
        )
        values = {"pockets.micro.strategies.A.allow_new": False}
        doc = json.loads(render_policy_overlay(None, values, POCKETS, cfg, META))
        assert doc["pockets"]["micro"]["strategies"] == ["B"]
        values["pockets.micro.strategies.B.allow_new"] = False
        doc = json.loads(render_policy_overlay(None, values, POCKETS, cfg, META))
        assert doc["pockets"]["micro"]["strategies"] == [NO_STRATEGY]
        reader_doc = {"pockets": doc["pockets"]}
        root = tmp_path / "bot"
        (root / "logs").mkdir(parents=True)
        (root / "logs/policy_overlay.json").write_text(json.dumps(reader_doc))
        assert OriginalReader(root).entry_allowed("micro", "B-long", "long") == (
            False,
            "policy_strategy_block",
        )

    def test_strategy_block_without_known_strategies_fails(self, tmp_path: Path) -> None:
        """Without the pocket's strategy list the block cannot be written: an error, no file."""
        with pytest.raises(RenderError, match=r"pocket_strategies\.micro"):
            render_policy_overlay(
                None,
                {"pockets.micro.strategies.A.allow_new": False},
                POCKETS,
                config(tmp_path),
                META,
            )

    def test_deterministic(self, tmp_path: Path) -> None:
        """The same inputs render the same bytes (the rollback guarantee rests on it)."""
        values = {"exit.lowvol.upper_bound_max_sec": 3.7}
        cfg = config(tmp_path)
        assert render_tuning_overlay({"a": 1}, values, cfg, META) == render_tuning_overlay(
            {"a": 1}, dict(values), cfg, META
        )


TUNING = [
    s
    for s in load_registry(None)
    if s.name.startswith(("exit.", "strategies.", "alloc.")) and s.type is not KnobType.BOOL
]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_overlay_round_trips_through_the_original_loader(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Any in-bounds values (tuned 0 included) read back unchanged through get_tuning_value,
    from the runtime overlay, whatever stale legacy overlay the checkout still tracks."""
    root = tmp_path_factory.mktemp("bot")
    cfg = config(root)
    values = {}
    for spec in TUNING:
        entry = cfg.path_of(spec.name)
        if entry is None or entry.file != "tuning_overlay":
            continue
        steps = round((spec.upper - spec.lower) / spec.step)
        k = data.draw(st.integers(0, steps))
        value = spec.lower + k * spec.step
        values[spec.name] = round(value) if spec.type is KnobType.INT else round(value, 6)
    (root / "logs/tuning").mkdir(parents=True)
    (root / "config").mkdir()
    (root / "config/tuning_overlay.yaml").write_text("exit: {lowvol: {upper_bound_max_sec: 99}}\n")
    overlay = render_tuning_overlay({"exit": {"lowvol": {"x": 1}}}, values, cfg, META)
    (root / "logs/tuning/tuning_overlay.yaml").write_bytes(overlay)
    reader = OriginalReader(root)
    for knob, value in values.items():
        path = cfg.path_of(knob).resolve(knob)  # type: ignore[union-attr]
        assert reader.get_tuning_value(path.split(".")) == value, knob
    assert reader.get_tuning_value(["exit", "lowvol", "x"]) == 1


def checkout(tmp_path: Path, compat: dict) -> tuple[Path, StateStore]:
    root = make_checkout(tmp_path / "bot")
    (root / "config" / "autolearn_compat.yaml").write_text(yaml.safe_dump(compat))
    git(root, "add", ".")
    git(root, "commit", "-qm", "compat")
    return root, StateStore(root / "logs" / "tuning", load_registry(None))


def status_problems(store: StateStore) -> list[str]:
    effective = store.read_effective()
    inputs = StatusInputs(
        records=store.history.read_runs().runs,
        history_path="history.jsonl",
        mechanism_states={"compat": store.read_mechanism("compat")},
        effective_version=effective.version,
        ledger=LedgerProbe(source="test", last_close_at=T0, trades=1),
    )
    return list(build_status(inputs, T0 + timedelta(minutes=1)).problems)


class TestWrite:
    def test_failed_export_keeps_the_old_file_and_degrades(self, tmp_path: Path) -> None:
        """A block the policy file cannot express: the previous file stays, byte for byte, and
        status names the file; the apply itself stands."""
        root, store = checkout(tmp_path, ON)
        store.apply(Owner.POLICY, {"pockets.micro.allow_new": False}, T0)
        policy = root / "logs/policy_overlay.json"
        before = policy.read_bytes()
        assert json.loads(before)["pockets"]["micro"]["entry_gates"]["allow_new"] is False
        assert status_problems(store) == []
        store.apply(Owner.POLICY, {"pockets.micro.strategies.A.allow_new": False}, T0)
        assert policy.read_bytes() == before
        assert store.read_effective().values["pockets.micro.strategies.A.allow_new"] is False
        problems = status_problems(store)
        assert any("policy_overlay FAILED" in p and str(policy) in p for p in problems), problems
        assert git(root, "status", "--porcelain") == ""

    def test_tracked_target_is_refused(self, tmp_path: Path) -> None:
        """An export path git tracks is never written; status names it."""
        doc = {
            "quantrabbit": {
                **ON["quantrabbit"],
                "paths": {"tuning_overlay": "config/tuning_presets.yaml"},
            }
        }
        root, store = checkout(tmp_path, doc)
        presets = (root / "config/tuning_presets.yaml").read_bytes()
        store.apply(Owner.TUNER, {"exit.lowvol.upper_bound_max_sec": 3.7}, T0)
        assert (root / "config/tuning_presets.yaml").read_bytes() == presets
        assert git(root, "status", "--porcelain") == ""
        assert any("tuning_overlay FAILED" in p for p in status_problems(store))

    def test_shadow_writes_nothing(self, tmp_path: Path) -> None:
        """A dry run (shadow) leaves every export untouched."""
        root, store = checkout(tmp_path, ON)
        store.apply(Owner.TUNER, {"exit.lowvol.upper_bound_max_sec": 3.7}, T0)
        before = (root / "logs/tuning/tuning_overlay.yaml").read_bytes()
        store.apply(
            Owner.TUNER,
            {"exit.lowvol.upper_bound_max_sec": 3.8},
            T0 + timedelta(hours=2),
            dry_run=True,
        )
        assert (root / "logs/tuning/tuning_overlay.yaml").read_bytes() == before

    def test_rollback_restores_bytes(self, tmp_path: Path) -> None:
        """restore() to an earlier version re-renders exactly that version's bytes."""
        root, store = checkout(tmp_path, ON)
        first = store.apply(Owner.TUNER, {"exit.lowvol.upper_bound_max_sec": 3.7}, T0)
        files = [root / "logs/tuning/tuning_overlay.yaml", root / "logs/policy_overlay.json"]
        snap = [f.read_bytes() for f in files]
        store.apply(Owner.TUNER, {"exit.lowvol.upper_bound_max_sec": 3.8}, T0 + timedelta(hours=2))
        assert [f.read_bytes() for f in files] != snap
        store.restore(first.version_after, Owner.OPERATOR, T0 + timedelta(hours=3))
        assert [f.read_bytes() for f in files] == snap

    def test_no_config_no_files(self, tmp_path: Path) -> None:
        """A bot without the opt-in file gets no export and no compat state."""
        root = make_checkout(tmp_path / "bot")
        store = StateStore(root / "logs" / "tuning", load_registry(None))
        store.apply(Owner.TUNER, {"exit.lowvol.upper_bound_max_sec": 3.7}, T0)
        assert not (root / "logs/policy_overlay.json").exists()
        assert store.read_mechanism("compat") == {}


def test_stale_export_is_reported() -> None:
    """Exports behind the runtime layer's version are a status problem naming the file."""
    state = {"exports": {"tuning_overlay": {"path": "logs/x.yaml", "version": "v1"}}, "failed": {}}
    assert compat_problems(state, "v1") == []
    assert "logs/x.yaml" in compat_problems(state, "v2")[0]


def test_load_compat_config_reads_the_bot_file(tmp_path: Path) -> None:
    """The bot root is the checkout the tracked config/ file belongs to."""
    root, _ = checkout(tmp_path, ON)
    cfg = load_compat_config(root / "config" / "autolearn_compat.yaml")
    assert cfg.bot_root == root.resolve() and cfg.enabled == {"tuning_overlay", "policy_overlay"}
