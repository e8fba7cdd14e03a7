"""The typed run record: exact round trips, older records, wrong types named by field."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autolearn.core.run_record import SCHEMA, KnobDiff, RunRecord, VerdictRecord, parse_runs
from autolearn.errors import StateError

AT = "2025-10-23T03:00:00.000000Z"
_NOT_TYPED = {"extra", "absent", "other_verdicts"}
RUN_KEYS = {f.name for f in dataclasses.fields(RunRecord)} - _NOT_TYPED
VERDICT_KEYS = {f.name for f in dataclasses.fields(VerdictRecord)} - _NOT_TYPED

# -- strategies ---------------------------------------------------------------------------------
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_objects = st.dictionaries(st.text(max_size=6), _json, max_size=3)
_opt_text = st.none() | st.text(max_size=12)
_opt_float = st.none() | st.integers(-1000, 1000) | st.floats(allow_nan=False, allow_infinity=False)
_opt_int = st.none() | st.integers(-(10**6), 10**6)


def _extra(reserved: set[str]) -> st.SearchStrategy[dict[str, Any]]:
    keys = st.text(max_size=8).filter(lambda k: k not in reserved)
    return st.dictionaries(keys, _json, max_size=3)


_diffs = st.lists(
    st.builds(
        KnobDiff,
        knob=st.text(max_size=12),
        before=_scalars,
        after=_scalars,
        extra=_extra({"knob", "before", "after"}),
    ),
    max_size=3,
).map(tuple)


@st.composite
def verdict_records(draw: st.DrawFn, *, with_outcome: bool = False) -> VerdictRecord:
    """A verdict with any typed keys absent (holding their defaults) and unknown extra keys."""
    values = {
        "outcome": _opt_text,
        "reason": _opt_text,
        "n_candidate": _opt_int,
        "n_baseline": _opt_int,
        "estimate": _opt_float,
        "lower": _opt_float,
        "upper": _opt_float,
        "stat": _opt_float,
        "trades_needed": _opt_int,
    }
    absent = draw(st.frozensets(st.sampled_from(sorted(values))))
    if with_outcome:
        absent -= {"outcome"}
    kwargs = {k: draw(s) for k, s in values.items() if k not in absent}
    return VerdictRecord(**kwargs, extra=draw(_extra(VERDICT_KEYS)), absent=absent)


_families = st.text(min_size=1, max_size=10).filter(lambda k: k != "outcome")


@st.composite
def run_records(draw: st.DrawFn) -> RunRecord:
    """Any record the type admits: absent keys, flat or per-family verdicts, unknown keys."""
    values: dict[str, st.SearchStrategy[Any]] = {
        "schema": st.integers(1, SCHEMA),
        "at": st.none()
        | st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)),
        "run_id": _opt_text,
        "mechanism": st.text(max_size=10),
        "mode": _opt_text,
        "decision": st.text(max_size=10),
        "intended": _opt_text,
        "reasons": st.lists(st.text(max_size=10), max_size=4).map(tuple),
        "applied": st.booleans(),
        "version_before": _opt_text,
        "version_after": _opt_text,
        "diff": _diffs,
        "knobs": st.lists(_objects, max_size=3).map(tuple),
        "proposed_diff": _diffs,
        "family": _opt_text,
        "target_version": _opt_text,
        "restored_snapshot": st.none() | st.booleans(),
        "in_flight": st.none() | _objects,
        "metrics": _objects,
    }
    absent = draw(st.frozensets(st.sampled_from(sorted(RUN_KEYS))))
    kwargs = {k: draw(s) for k, s in values.items() if k not in absent}
    if "verdicts" not in absent:
        if draw(st.booleans()):
            kwargs["verdicts"] = draw(verdict_records(with_outcome=True))
        else:
            families = draw(st.lists(_families, max_size=4, unique=True))
            split = draw(st.integers(0, len(families)))
            kwargs["verdicts"] = {f: draw(verdict_records()) for f in families[:split]}
            others = st.none() | st.booleans() | st.text(max_size=5) | st.lists(_json, max_size=2)
            kwargs["other_verdicts"] = {f: draw(others) for f in families[split:]}
    return RunRecord(**kwargs, extra=draw(_extra(RUN_KEYS)), absent=absent)


# -- properties ---------------------------------------------------------------------------------
class TestRoundTrip:
    @given(run_records())
    def test_from_json_inverts_to_json(self, record: RunRecord) -> None:
        """Any record survives to_json -> from_json unchanged."""
        assert RunRecord.from_json(record.to_json()) == record

    @given(run_records())
    def test_survives_json_text(self, record: RunRecord) -> None:
        """Through the JSON text the history stores, too (no tuple, no datetime left)."""
        text = json.dumps(record.to_json(), sort_keys=True, allow_nan=False)
        assert RunRecord.from_json(json.loads(text)) == record

    @given(run_records())
    def test_to_json_returns_copies(self, record: RunRecord) -> None:
        """Changing what to_json returned, at any depth, does not change the record."""
        doc = record.to_json()
        expected = copy.deepcopy(doc)
        _mutate(doc)
        assert record.to_json() == expected


def _mutate(value: object) -> None:
    if isinstance(value, dict):
        for inner in list(value.values()):
            _mutate(inner)
        value["mutated"] = True
    elif isinstance(value, list):
        for inner in value:
            _mutate(inner)
        value.append("mutated")


# -- shapes written today -----------------------------------------------------------------------
_LOCK_BUSY = {
    "at": AT,
    "run_id": "r1",
    "mechanism": "tuner",
    "mode": "live",
    "decision": "lock_busy",
    "intended": "lock_busy",
    "reasons": ["lock_busy"],
    "knobs": [],
    "diff": [],
    "metrics": {},
    "verdicts": {},
    "version_before": None,
    "version_after": None,
    "in_flight": None,
    "applied": False,
}
_JUDGED = {
    "outcome": "inconclusive",
    "reason": "interval straddles the band",
    "n_candidate": 18,
    "n_baseline": 120,
    "stat": None,
    "trades_needed": 42,
    "estimate": -0.12,
    "lower": -1.5,
    "upper": 1.25,
    "candidate_version": "vabc",
    "baseline_version": "v000",
    "started_at": AT,
    "unattributed": 0,
}
_SHAPES = {
    "lock_busy": _LOCK_BUSY,
    "policy": {
        **_LOCK_BUSY,
        "mechanism": "policy",
        "decision": "apply",
        "verdicts": {"scopes": {"micro": {"status": "blocked"}}, "skipped": [{"pocket": "x"}]},
        "transitions": [{"scope": "micro", "from": "active", "to": "blocked"}],
    },
    "judged": {
        **_LOCK_BUSY,
        "decision": "rollback",
        "applied": True,
        "diff": [{"knob": "a.b", "before": 0.67, "after": 0.65}],
        "verdicts": {"micro.entry": _JUDGED},
        "target_version": "v000",
        "restored_snapshot": True,
        "in_flight": {"micro.entry": {"version": "vabc"}},
        "considered": [{"knob": "a.b", "rule": "ev"}],
    },
    "shadow": {
        **_LOCK_BUSY,
        "decision": "shadow",
        "proposed_diff": [{"knob": "k", "before": 1, "after": 2}],
    },
    "flat_verdict": {"at": AT, "mechanism": "tuner", "verdicts": {"outcome": "fail", "n": 3}},
    "operator_freeze": {"at": AT, "mechanism": "tuner", "decision": "operator_freeze"},
    "reconcile": {
        "at": AT,
        "mechanism": "reconcile",
        "decision": "mismatch",
        "findings_total": 2,
        "findings": [{"kind": "missing"}],
        "period": {"since": AT, "until": AT},
    },
    "new_verdict_fields": {"verdicts": {"f": {"outcome": "pass", "sd": 1.5, "arms": [1, 2]}}},
    "int_in_float_field": {"verdicts": {"f": {"estimate": 3, "lower": -0.0}}},
    "empty": {},
}


class TestShapes:
    @pytest.mark.parametrize("doc", list(_SHAPES.values()), ids=list(_SHAPES))
    def test_every_shape_round_trips_exactly(self, doc: dict[str, Any]) -> None:
        """from_json(d).to_json() == d, keys absent stay absent, unknown keys survive."""
        assert RunRecord.from_json(doc).to_json() == doc

    def test_typed_fields_and_extra(self) -> None:
        """The shared fields are typed; a mechanism's own keys are in extra."""
        run = RunRecord.from_json(_SHAPES["judged"])
        assert run.at == datetime(2025, 10, 23, 3, 0, tzinfo=UTC)
        assert run.reasons == ("lock_busy",) and run.applied is True
        assert run.diff == (KnobDiff(knob="a.b", before=0.67, after=0.65),)
        assert not run.is_flat_verdict and isinstance(run.verdicts, dict)
        verdict = run.verdicts["micro.entry"]
        assert (verdict.outcome, verdict.n_candidate, verdict.trades_needed) == (
            "inconclusive",
            18,
            42,
        )
        assert verdict.stat is None and verdict.has("stat") and not verdict.has("sd")
        assert verdict.extra["candidate_version"] == "vabc"
        assert run.extra == {"considered": [{"knob": "a.b", "rule": "ev"}]}
        assert run.has("target_version") and not run.has("proposed_diff")

    def test_policy_verdict_entries_that_are_not_objects(self) -> None:
        """The policy's skipped list is kept as read beside its scopes."""
        run = RunRecord.from_json(_SHAPES["policy"])
        assert isinstance(run.verdicts, dict) and set(run.verdicts) == {"scopes"}
        assert run.other_verdicts == {"skipped": [{"pocket": "x"}]}

    def test_flat_verdict(self) -> None:
        """An older record's single verdict parses to one VerdictRecord."""
        run = RunRecord.from_json(_SHAPES["flat_verdict"])
        assert run.is_flat_verdict and isinstance(run.verdicts, VerdictRecord)
        assert run.verdicts.outcome == "fail" and run.verdicts.extra == {"n": 3}


class TestOlderRecords:
    def test_missing_keys_take_defaults(self) -> None:
        """A record with only a time and a decision reads with every other field defaulted."""
        run = RunRecord.from_json({"at": AT, "decision": "hold"})
        assert run.schema == 1 and run.mechanism == "" and run.run_id is None
        assert run.reasons == () and run.applied is False and run.diff == ()
        assert run.verdicts == {} and run.metrics == {} and run.in_flight is None
        assert run.absent == frozenset(RUN_KEYS - {"at", "decision"})

    def test_schema_is_written_back_only_when_read(self) -> None:
        """No schema key in, none out; a record built in code writes it."""
        assert "schema" not in RunRecord.from_json({"decision": "hold"}).to_json()
        assert RunRecord.from_json({"schema": 1}).to_json() == {"schema": 1}
        assert RunRecord(decision="hold").to_json()["schema"] == SCHEMA

    def test_a_newer_schema_is_refused(self) -> None:
        """A record from a newer writer is not misread."""
        with pytest.raises(StateError, match="schema 2 is newer"):
            RunRecord.from_json({"schema": SCHEMA + 1})

    def test_non_canonical_time_is_normalised(self) -> None:
        """Any UTC offset reads; it is written back in the canonical form every writer uses."""
        run = RunRecord.from_json({"at": "2025-10-23 12:00:00+09:00"})
        assert run.to_json() == {"at": AT}


class TestWrongTypes:
    @pytest.mark.parametrize(
        ("doc", "field"),
        [
            ({"reasons": "no_signal"}, "reasons"),
            ({"reasons": ["a", 3]}, r"reasons\[1\]"),
            ({"applied": "yes"}, "applied"),
            ({"applied": None}, "applied"),
            ({"mechanism": 5}, "mechanism"),
            ({"at": 1700000000}, "at"),
            ({"at": "yesterday"}, "at"),
            ({"at": "2025-10-23T03:00:00"}, "at"),  # naive: no offset
            ({"diff": {"knob": "a"}}, "diff"),
            ({"diff": [{"knob": "a", "before": 1}]}, r"diff\[0\]: missing after"),
            ({"diff": [{"knob": 1, "before": 1, "after": 2}]}, r"diff\[0\]\.knob"),
            ({"proposed_diff": ["a"]}, r"proposed_diff\[0\]"),
            ({"knobs": [1]}, r"knobs\[0\]"),
            ({"verdicts": []}, "verdicts"),
            ({"verdicts": {"f": {"n_candidate": "12"}}}, r"verdicts\['f'\]\.n_candidate"),
            ({"verdicts": {"f": {"n_baseline": True}}}, r"verdicts\['f'\]\.n_baseline"),
            ({"verdicts": {"f": {"stat": "nan"}}}, r"verdicts\['f'\]\.stat"),
            ({"verdicts": {"outcome": 1}}, r"verdicts\.outcome"),
            ({"in_flight": "vabc"}, "in_flight"),
            ({"metrics": None}, "metrics"),
            ({"restored_snapshot": "yes"}, "restored_snapshot"),
            ({"schema": "1"}, "schema"),
            ({"schema": 0}, "schema"),
        ],
    )
    def test_state_error_names_the_field(self, doc: dict[str, Any], field: str) -> None:
        """A wrong type is a StateError whose message names the field at fault."""
        with pytest.raises(StateError, match=rf"run record field {field}"):
            RunRecord.from_json(doc)

    @pytest.mark.parametrize("doc", [[], "x", None, 3])
    def test_not_an_object(self, doc: object) -> None:
        """A record must be a JSON object."""
        with pytest.raises(StateError, match="run record: expected an object"):
            RunRecord.from_json(doc)


class TestInvariants:
    def test_absent_fields_hold_their_defaults(self) -> None:
        """A field cannot be both absent and set: it would not survive the round trip."""
        with pytest.raises(ValueError, match="decision is listed as absent"):
            RunRecord(decision="hold", absent=frozenset({"decision"}))

    def test_extra_cannot_shadow_a_typed_key(self) -> None:
        """extra holds only keys the type does not."""
        with pytest.raises(ValueError, match="extra repeats typed keys"):
            RunRecord(extra={"decision": "hold"})

    def test_at_is_utc_aware(self) -> None:
        """A naive time is refused (every record time is UTC)."""
        with pytest.raises(ValueError, match="UTC-aware"):
            RunRecord(at=datetime(2025, 10, 23))

    def test_flat_verdict_needs_an_outcome(self) -> None:
        """A flat verdict without an outcome would read back as per-family verdicts."""
        with pytest.raises(ValueError, match="flat verdict"):
            RunRecord(verdicts=VerdictRecord(absent=frozenset({"outcome"})))


class TestParseRuns:
    def test_typed_pass_through_and_bad_ones_are_listed(self) -> None:
        """Typed records pass, JSON is parsed, and each one that fails is listed with why."""
        typed = RunRecord(decision="hold")
        runs, bad = parse_runs([typed, {"decision": "apply"}, {"reasons": "x"}])
        assert [r.decision for r in runs] == ["hold", "apply"]
        assert runs[0] is typed
        assert len(bad) == 1 and bad[0][0] == 2 and "reasons" in bad[0][1]
