"""The one config loader: strict types, unknown keys, every problem at once, dotted paths."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import timedelta
from enum import Enum, StrEnum
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from autolearn.autotune.config import AutotuneConfig
from autolearn.core.config_loader import config_to_doc, load_config
from autolearn.errors import ConfigError
from autolearn.gates.config import GatesConfig, merge_docs, parse_gates_config
from autolearn.scalp_trainer.config import ScalpTrainerConfig, parse_frozen_config
from autolearn.tuner.config import TunerConfig, parse_tuner_config


class Mode(StrEnum):
    ROLLBACK = "rollback"
    SHADOW = "shadow"


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    max_loss_streak: int = 10
    max_drawdown: float | None = None

    def __post_init__(self) -> None:
        if self.max_loss_streak < 1:
            raise ValueError(f"max_loss_streak must be >= 1, got {self.max_loss_streak}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Flight:
    limits: Limits = field(default_factory=Limits)
    cooldown: timedelta = timedelta(hours=6)
    deadline_trades: int = 400

    def problems(self) -> list[str]:
        return [] if self.deadline_trades >= 1 else ["deadline_trades: must be >= 1"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    min_trades: int = 100
    share: float = 0.7
    enabled: bool = True
    pocket: str = "micro"
    lookback: timedelta = timedelta(hours=48)
    on_fail: Mode = Mode.ROLLBACK
    exit_pockets: tuple[str, ...] = ("scalp",)
    knob_map: tuple[tuple[str, str], ...] = (("fast_window", "fast"),)
    cooldown_s: Mapping[str, float] = field(default_factory=lambda: {"micro": 600.0})
    hard_limits: Limits = field(default_factory=Limits)
    # a field default that differs from the nested class's defaults
    flight: Flight = field(default_factory=lambda: Flight(cooldown=timedelta(hours=12)))

    def problems(self) -> list[str]:
        return (
            [] if 0 <= self.share <= 1 else [f"share: 0 <= share <= 1 must hold, got {self.share}"]
        )


def _problems(doc: object, cls: type = Sample) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(cls, doc, "sample.yaml")
    assert info.value.exit_code == 78
    assert str(info.value).startswith("invalid config sample.yaml:")
    return info.value.problems


class TestStrictTypes:
    def test_a_bool_is_not_an_int(self) -> None:
        """``max_loss_streak: true`` is refused with its dotted path, not read as 1."""
        assert _problems({"hard_limits": {"max_loss_streak": True}}) == [
            "hard_limits.max_loss_streak: expected an integer, got True"
        ]

    @pytest.mark.parametrize(
        ("doc", "expected"),
        [
            ({"min_trades": "7"}, "min_trades: expected an integer, got '7'"),
            ({"min_trades": 7.0}, "min_trades: expected an integer, got 7.0"),
            ({"share": "0.5"}, "share: expected a number, got '0.5'"),
            ({"share": True}, "share: expected a number, got True"),
            ({"enabled": 1}, "enabled: expected true or false, got 1"),
            ({"enabled": "yes"}, "enabled: expected true or false, got 'yes'"),
            ({"pocket": 3}, "pocket: expected a string, got 3"),
            ({"share": float("nan")}, "share: expected a finite number, got nan"),
            ({"share": float("inf")}, "share: expected a finite number, got inf"),
            ({"cooldown_s": {"micro": "fast"}}, "cooldown_s.micro: expected a number, got 'fast'"),
            ({"cooldown_s": {1: 2.0}}, "cooldown_s.1: keys must be strings, got 1"),
            ({"exit_pockets": "scalp"}, "exit_pockets: expected a list, got 'scalp'"),
            ({"exit_pockets": ["scalp", 2]}, "exit_pockets[1]: expected a string, got 2"),
            ({"knob_map": [["a", "b", "c"]]}, "knob_map[0]: expected 2 items, got ('a', 'b', 'c')"),
            ({"hard_limits": [1]}, "hard_limits: expected a mapping, got [1]"),
        ],
    )
    def test_wrong_types_are_refused_with_their_path(self, doc: object, expected: str) -> None:
        """Strings, floats and bools never pass for one another; NaN never passes at all."""
        assert _problems(doc) == [expected]

    def test_an_int_is_a_float_and_lists_are_tuples(self) -> None:
        """YAML's ``1`` is a fine float; YAML lists become the tuples the dataclass holds."""
        value = load_config(
            Sample,
            {"share": 1, "exit_pockets": ["scalp", "micro"], "knob_map": [["slow_window", "slow"]]},
            "sample.yaml",
        )
        assert value.share == 1.0 and isinstance(value.share, float)
        assert value.exit_pockets == ("scalp", "micro")
        assert value.knob_map == (("slow_window", "slow"),)

    def test_a_top_level_that_is_not_a_mapping_is_refused(self) -> None:
        """A list or a scalar document is one problem, not a crash."""
        assert _problems([1, 2]) == ["<top>: expected a mapping, got [1, 2]"]


class TestUnknownKeys:
    def test_unknown_keys_are_refused_at_every_level(self) -> None:
        """A typo at the top, one level and two levels down: three problems, with the known keys."""
        problems = _problems(
            {"min_trade": 5, "hard_limits": {"max_los_streak": 3}, "flight": {"limits": {"x": 1}}}
        )
        top = next(p for p in problems if p.startswith("min_trade:"))
        assert top.startswith(
            "min_trade: unknown key (did you mean 'min_trades'? known: min_trades,"
        )
        assert set(problems) - {top} == {
            "hard_limits.max_los_streak: unknown key "
            "(did you mean 'max_loss_streak'? known: max_loss_streak, max_drawdown)",
            "flight.limits.x: unknown key (known: max_loss_streak, max_drawdown)",
        }

    def test_a_non_string_key_is_refused(self) -> None:
        """YAML ``1: 2`` at the top level names the key."""
        assert _problems({1: 2}) == ["1: keys must be strings, got 1"]


class TestAllAtOnce:
    def test_every_problem_is_listed_in_one_error(self) -> None:
        """Bad types, an unknown key, a bad duration and a bad enum in one file: one error."""
        problems = _problems(
            {
                "min_trades": True,
                "lookback": "two days",
                "on_fail": "explode",
                "hard_limits": {"max_loss_streak": "7", "typo": 1},
                "flight": {"cooldown": -1},
            }
        )
        assert [p.split(":")[0] for p in problems] == [
            "min_trades",
            "lookback",
            "on_fail",
            "hard_limits.max_loss_streak",
            "hard_limits.typo",
            "flight.cooldown",
        ]

    def test_post_init_errors_carry_the_section_path(self) -> None:
        """A ``__post_init__`` ValueError is a problem at its section, beside the type errors."""
        problems = _problems({"hard_limits": {"max_loss_streak": 0}, "min_trades": "x"})
        assert problems == [
            "min_trades: expected an integer, got 'x'",
            "hard_limits: max_loss_streak must be >= 1, got 0",
        ]

    def test_problems_methods_run_at_every_level_once_types_pass(self) -> None:
        """``problems()`` of the config and of a nested section are both reported, prefixed."""
        problems = _problems({"share": 1.5, "flight": {"deadline_trades": 0}})
        assert problems == [
            "share: 0 <= share <= 1 must hold, got 1.5",
            "flight.deadline_trades: must be >= 1",
        ]

    def test_a_section_of_a_larger_file_is_prefixed(self) -> None:
        """``path=`` prefixes every problem (a partial override validated on its own)."""
        with pytest.raises(ConfigError) as info:
            load_config(Limits, {"max_loss_streak": True}, "gates.yaml", path="pockets.scalp")
        assert info.value.problems == [
            "pockets.scalp.max_loss_streak: expected an integer, got True"
        ]


class TestDurations:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("90s", timedelta(seconds=90)),
            ("30m", timedelta(minutes=30)),
            ("3h", timedelta(hours=3)),
            ("7d", timedelta(days=7)),
            ("1.5h", timedelta(minutes=90)),
            (3600, timedelta(hours=1)),  # parse_duration takes a number of seconds
            (0.5, timedelta(milliseconds=500)),
        ],
    )
    def test_duration_strings_and_seconds(self, text: object, expected: timedelta) -> None:
        """Durations take what ``parse_duration`` takes."""
        assert load_config(Sample, {"lookback": text}, "sample.yaml").lookback == expected

    @pytest.mark.parametrize("text", ["3 hours", "-1h", -5, True, "", None, [1], "99999d"])
    def test_bad_durations_are_refused(self, text: object) -> None:
        """Unknown units, negatives, bools, null and more than 10 years are refused."""
        (problem,) = _problems({"lookback": text})
        assert problem.startswith("lookback: expected a duration like '30m' or '6h'")


class TestEnums:
    def test_an_enum_takes_its_values(self) -> None:
        """``on_fail: shadow`` is the member."""
        assert load_config(Sample, {"on_fail": "shadow"}, "s").on_fail is Mode.SHADOW

    @pytest.mark.parametrize("value", ["explode", "SHADOW", 1, None])
    def test_other_values_are_refused_listing_the_known_ones(self, value: object) -> None:
        """A wrong case, a number or null is not a member; the message lists the members."""
        assert _problems({"on_fail": value}) == [
            f"on_fail: expected one of 'rollback', 'shadow', got {value!r}"
        ]


class TestDefaultsAndNone:
    def test_none_and_empty_mean_the_defaults(self) -> None:
        """An empty file (``None``) and ``{}`` give the dataclass's defaults."""
        assert load_config(Sample, None, "s") == Sample() == load_config(Sample, {}, "s")

    def test_an_empty_section_is_the_fields_default(self) -> None:
        """``flight:`` with nothing under it keeps the field's own default."""
        assert load_config(Sample, {"flight": None}, "s").flight == Sample().flight

    def test_a_partial_section_merges_over_the_fields_default(self) -> None:
        """Overriding one key of ``flight`` keeps the config's 12 h cooldown, not the class's."""
        value = load_config(Sample, {"flight": {"deadline_trades": 50}}, "s")
        assert value.flight == Flight(cooldown=timedelta(hours=12), deadline_trades=50)

    def test_two_loads_share_no_default_mapping(self) -> None:
        """Each load builds fresh defaults: one config's dict is never another's."""
        first, second = (load_config(Sample, {"share": 0.5}, "s") for _ in range(2))
        assert first == second and first.cooldown_s is not second.cooldown_s

    def test_optional_floats_take_null(self) -> None:
        """``max_drawdown: null`` is None; a number is a float."""
        off = load_config(Sample, {"hard_limits": {"max_drawdown": None}}, "s")
        on = load_config(Sample, {"hard_limits": {"max_drawdown": 3000}}, "s")
        assert off.hard_limits.max_drawdown is None and on.hard_limits.max_drawdown == 3000.0


# -- the real configs -------------------------------------------------------------------------

CONFIGS: list[type] = [TunerConfig, ScalpTrainerConfig, AutotuneConfig, GatesConfig]


def _leaves(cls: type, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every non-dataclass field of ``cls`` and its sections: (path, type hint)."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        tp = hints[f.name]
        if isinstance(tp, type) and is_dataclass(tp):
            out += _leaves(tp, (*prefix, f.name))
        else:
            out.append(((*prefix, f.name), tp))
    return out


def _nest(path: tuple[str, ...], value: object) -> dict[str, Any]:
    doc: Any = value
    for key in reversed(path):
        doc = {key: doc}
    return doc


def _merge(docs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for doc in docs:
        out = merge_docs(out, doc)
    return out


def _values(tp: Any) -> st.SearchStrategy[Any]:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = next(a for a in args if a is not type(None))
        return st.none() | _values(inner)
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(0, 2000)
    if tp is float:
        return st.floats(0, 5, allow_nan=False) | st.integers(0, 3)
    if tp is str:
        return st.sampled_from(["scalp", "micro", "M1Scalper", "sma_cross", "TrendMA", ""])
    if tp is timedelta:
        return st.integers(1, 10**7).map(lambda s: f"{s}s") | st.sampled_from(["90m", "3h", "7d"])
    if isinstance(tp, type) and issubclass(tp, Enum):
        return st.sampled_from([m.value for m in tp])
    if origin is tuple and args[-1] is Ellipsis:
        return st.lists(_values(args[0]), max_size=4)
    if origin is tuple:
        return st.tuples(*(_values(a) for a in args)).map(list)
    if origin in (dict, Mapping) and args[1] is float:
        return st.dictionaries(st.sampled_from(["macro", "micro", "scalp"]), _values(float))
    return st.just({})  # Mapping[str, Mapping[str, Any]]: partial overrides (gates' own tests)


@st.composite
def _overrides(draw: st.DrawFn, cls: type) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(_leaves(cls)), max_size=3, unique_by=lambda x: x[0]))
    return _merge([_nest(path, draw(_values(tp))) for path, tp in chosen])


class TestRealConfigs:
    @pytest.mark.parametrize("cls", CONFIGS)
    def test_defaults_load_and_dump_back(self, cls: type) -> None:
        """Every config's defaults are valid and their document reads back as the defaults."""
        assert load_config(cls, None, "<defaults>") == cls()
        assert load_config(cls, config_to_doc(cls()), "<dumped>") == cls()

    @pytest.mark.parametrize(
        ("cls", "path"),
        [(cls, path) for cls in CONFIGS for path, tp in _leaves(cls) if tp is int],
        ids=lambda x: ".".join(x) if isinstance(x, tuple) else x.__name__,
    )
    def test_no_int_field_anywhere_takes_a_bool_or_a_string(
        self, cls: type, path: tuple[str, ...]
    ) -> None:
        """Every int in every config (fields added later too) refuses ``true`` and ``"7"``."""
        dotted = ".".join(path)
        for bad in (True, "7"):
            with pytest.raises(ConfigError) as info:
                load_config(cls, _nest(path, bad), "x.yaml")
            assert f"{dotted}: expected an integer, got {bad!r}" in info.value.problems

    @pytest.mark.parametrize("cls", CONFIGS)
    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
    )
    @given(data=st.data())
    def test_any_valid_config_round_trips(self, cls: type, data: st.DataObject) -> None:
        """A config that loads dumps to a document (and YAML text) that loads back equal."""
        doc = data.draw(_overrides(cls))
        try:
            value = load_config(cls, doc, "<generated>")
        except ConfigError:
            reject()
        dumped = config_to_doc(value)
        assert load_config(cls, dumped, "<dumped>") == value
        assert load_config(cls, yaml.safe_load(yaml.safe_dump(dumped)), "<yaml>") == value

    def test_the_old_entry_points_use_the_loader(self) -> None:
        """``parse_tuner_config``, ``parse_frozen_config`` and the gates parser share its rules."""
        int_path = next(path for path, tp in _leaves(TunerConfig) if tp is int and len(path) > 1)
        with pytest.raises(ConfigError) as tuner:
            parse_tuner_config(_nest(int_path, True), "tuner.yaml")
        assert f"{'.'.join(int_path)}: expected an integer, got True" in tuner.value.problems
        with pytest.raises(ConfigError) as scalp:
            parse_frozen_config(ScalpTrainerConfig, {"min_trades": "7"}, "scalp.yaml")
        assert scalp.value.problems == ["min_trades: expected an integer, got '7'"]
        with pytest.raises(ConfigError) as gates:
            parse_gates_config({"perf_guard": {"min_trades": True}}, "gates.yaml")
        assert gates.value.problems == [
            "perf_guard.rules.min_trades: expected an integer, got True"
        ]
