"""Folding a record against a base and expanding it gives the record back (Hypothesis)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.core.record_delta import (
    FOLD_KEY,
    apply_patch,
    delta_line,
    diff_record,
    expand_delta,
    strict_equal,
)

# "_fold_items" as a record's own key can fool the patch format: the writer's check catches
# that (tests/state/test_history_rotation.py); the pure round trip is about everything else
_KEYS = st.sampled_from(["a", "b", "c", "at", "run_id", "decision", "x.y"])
_LEAVES = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2) | st.text(max_size=3)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=12,
)
_RECORDS = st.dictionaries(_KEYS, _VALUES, max_size=5)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _fresh(value: dict[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(_canonical(value))
    return parsed


class TestRoundTrip:
    @settings(max_examples=300, deadline=None)
    @given(base=_RECORDS, new=_RECORDS)
    def test_expand_gives_back_an_equal_record(
        self, base: dict[str, Any], new: dict[str, Any]
    ) -> None:
        """Whatever the two records, the delta expands to a record equal to the new one.

        Equal by ``==``; where ``==`` hides a type (1 vs 1.0 vs true) the writer's canonical
        text check writes the record in full (tests/state/test_history_rotation.py).
        """
        line = delta_line(base, 0, new)
        assert FOLD_KEY in line
        expanded = expand_delta(_fresh(base), json.loads(_canonical(line)))
        assert expanded == new
        assert list(expanded) == sorted(expanded)  # iterates like a parsed sorted-key line

    @settings(max_examples=200, deadline=None)
    @given(record=_RECORDS)
    def test_a_repeat_is_only_its_header(self, record: dict[str, Any]) -> None:
        """A record folded against itself carries no change at all."""
        patch, removed = diff_record(record, record)
        assert patch == {} and removed == []


class TestDetails:
    def test_strict_equal_tells_numbers_and_booleans_apart(self) -> None:
        """1, 1.0 and true are three values to the history."""
        assert not strict_equal({"a": [1]}, {"a": [1.0]})
        assert not strict_equal(True, 1)
        assert strict_equal({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]})

    def test_a_base_of_another_run_is_refused(self) -> None:
        """A delta names its base's run id: a different line at that offset is not expanded."""
        line = delta_line({"run_id": "a", "v": 1}, 0, {"run_id": "b", "v": 2})
        try:
            expand_delta({"run_id": "other", "v": 1}, line)
        except ValueError as exc:
            assert "not 'a'" in str(exc)
        else:
            raise AssertionError("expanded against the wrong base")

    def test_patch_recurses_into_objects_and_list_items(self) -> None:
        """Only the changed leaf is stored, inside objects and same-length lists."""
        base = {"f": {"x": [{"d": "6:21 old", "c": 1}, {"d": "k"}]}, "n": 1}
        new = {"f": {"x": [{"d": "6:31 old", "c": 1}, {"d": "k"}]}, "n": 1}
        patch, removed = diff_record(base, new)
        assert patch == {"f": {"x": {"_fold_items": {"0": {"d": "6:31 old"}}}}}
        assert removed == []
        assert apply_patch(_fresh(base), patch) == new
