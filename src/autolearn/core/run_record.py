"""The run record: one typed, versioned value per mechanism run, as the decision history holds it.

Every run (tuner, policy, scalp trainer, autotune, reconcile, an operator's set, rollback or
freeze) appends one JSON object to ``history.jsonl``. :class:`RunRecord` is that object typed:
the fields every record shares are attributes, the judge's verdicts are :class:`VerdictRecord`
values and the knob changes :class:`KnobDiff` values; every other key (a mechanism's own:
``transitions``, ``findings_total``, ``considered``...) stays in ``extra`` as JSON.

Exact round trip. ``RunRecord.from_json(d).to_json() == d`` for every record shape written so
far: a typed key the record did not carry is listed in ``absent`` (and holds its default) so it
is written back absent, not as ``null``; unknown keys survive in ``extra``. Timestamps are read
into UTC datetimes and written back in the canonical ``format_utc`` form every writer uses.

Schema. Records without a ``schema`` key are schema 1 (every record written so far); ``to_json``
writes the key only when the record carried it (or was built in code, which lists nothing as
``absent``). A record of a newer schema than :data:`SCHEMA` is refused, never misread.

Older records parse: missing keys take their defaults. A key of the wrong type raises
:class:`~autolearn.errors.StateError` naming the field (``verdicts['exit.lowvol'].n_candidate``);
the history reader counts such a record as malformed, beside its corrupt lines.

Shapes kept as read: ``verdicts`` is per family, or (older records) one flat verdict object,
which parses to a single :class:`VerdictRecord`; entries of ``verdicts`` that are not objects
(the policy's ``skipped`` list) are kept in ``other_verdicts``.

Pure: no I/O, no clock. JSON subtrees (``metrics``, ``knobs``, ``in_flight``, ``extra``) are
held as read, not copied: treat them as read-only; ``to_json`` returns fresh copies.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias, TypeVar

from autolearn.core.timestamps import TimestampError, format_utc, parse_utc
from autolearn.errors import StateError

__all__ = ["SCHEMA", "KnobDiff", "RunRecord", "VerdictRecord", "parse_runs"]

SCHEMA = 1  # the newest record schema this code reads and writes

_T = TypeVar("_T")


# -- reading one JSON object --------------------------------------------------------------------
def _kind(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _expected(where: str, what: str, value: object) -> StateError:
    return StateError(f"run record field {where}: expected {what}, got {_kind(value)}")


def _str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _expected(where, "a string", value)
    return value


def _opt_str(value: object, where: str) -> str | None:
    return None if value is None else _str(value, where)


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise _expected(where, "true or false", value)
    return value


def _opt_bool(value: object, where: str) -> bool | None:
    return None if value is None else _bool(value, where)


def _opt_int(value: object, where: str) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise _expected(where, "an integer or null", value)


def _opt_float(value: object, where: str) -> float | None:
    # an int stays an int: JSON writes 3 and 3.0 differently and the round trip is exact
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    raise _expected(where, "a number or null", value)


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _expected(where, "an object", value)
    return dict(value)


def _opt_object(value: object, where: str) -> dict[str, Any] | None:
    return None if value is None else _object(value, where)


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise _expected(where, "a list", value)
    return list(value)


def _strs(value: object, where: str) -> tuple[str, ...]:
    return tuple(_str(v, f"{where}[{i}]") for i, v in enumerate(_list(value, where)))


def _objects(value: object, where: str) -> tuple[dict[str, Any], ...]:
    return tuple(_object(v, f"{where}[{i}]") for i, v in enumerate(_list(value, where)))


def _at(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_utc(_str(value, where))
    except TimestampError as exc:
        raise StateError(f"run record field {where}: {exc}") from exc


def _schema(value: object, where: str) -> int:
    number = _opt_int(value, where)
    if number is None or number < 1:
        raise _expected(where, "a schema number >= 1", value)
    if number > SCHEMA:
        raise StateError(
            f"run record field {where}: schema {number} is newer than this reader "
            f"(schema {SCHEMA}); upgrade autolearn to read it"
        )
    return number


class _Fields:
    """Takes the typed keys out of one JSON object; what is left over is its ``extra``."""

    def __init__(self, doc: object, where: str) -> None:
        if not isinstance(doc, Mapping) and where:
            raise _expected(where, "an object", doc)
        if not isinstance(doc, Mapping):
            raise StateError(f"run record: expected an object, got {_kind(doc)}")
        self.rest = {str(k): v for k, v in doc.items()}
        self.where = where
        self.absent: set[str] = set()

    def take(self, key: str, parse: Callable[[object, str], _T], default: _T) -> _T:
        if key not in self.rest:
            self.absent.add(key)
            return default
        return parse(self.rest.pop(key), f"{self.where}.{key}" if self.where else key)


def _check_absent(value: Any, names: frozenset[str]) -> None:
    """Invariants of ``absent`` and ``extra`` (a bug in the caller, hence ValueError)."""
    unknown = value.absent - names
    if unknown:
        raise ValueError(f"absent names unknown fields: {sorted(unknown)}")
    for f in dataclasses.fields(value):
        if f.name not in value.absent:
            continue
        factory = f.default_factory
        default = f.default if factory is dataclasses.MISSING else factory()
        if getattr(value, f.name) != default:
            raise ValueError(f"{f.name} is listed as absent but holds {getattr(value, f.name)!r}")
    clash = names & set(value.extra)
    if clash:
        raise ValueError(f"extra repeats typed keys: {sorted(clash)}")


# -- knob changes -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class KnobDiff:
    """One knob's change: ``before`` and ``after`` are knob values (``after`` null: the preset)."""

    knob: str
    before: Any
    after: Any
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return copy.deepcopy(
            {"knob": self.knob, "before": self.before, "after": self.after, **self.extra}
        )

    @classmethod
    def from_json(cls, doc: object, where: str = "diff") -> KnobDiff:
        fields = _Fields(doc, where)
        missing = [k for k in ("knob", "before", "after") if k not in fields.rest]
        if missing:
            raise StateError(f"run record field {where}: missing {', '.join(missing)}")
        return cls(
            knob=fields.take("knob", _str, ""),
            before=fields.rest.pop("before"),
            after=fields.rest.pop("after"),
            extra=fields.rest,
        )


def _diffs(value: object, where: str) -> tuple[KnobDiff, ...]:
    return tuple(KnobDiff.from_json(v, f"{where}[{i}]") for i, v in enumerate(_list(value, where)))


# -- verdicts -----------------------------------------------------------------------------------
_VERDICT_KEYS = frozenset(
    {
        "outcome",
        "reason",
        "n_candidate",
        "n_baseline",
        "estimate",
        "lower",
        "upper",
        "stat",
        "trades_needed",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class VerdictRecord:
    """The judge's verdict on one family's change in flight, as recorded.

    ``outcome`` is ``pass`` / ``fail`` / ``inconclusive``; the numbers are the judge's (floats
    are ``None`` when not finite). Other keys (``candidate_version``, ``unattributed``, fields
    a newer judge adds) are kept in ``extra``; ``absent`` lists the typed keys not recorded.
    """

    outcome: str | None = None
    reason: str | None = None
    n_candidate: int | None = None
    n_baseline: int | None = None
    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None
    stat: float | None = None
    trades_needed: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    absent: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        _check_absent(self, _VERDICT_KEYS)

    def has(self, key: str) -> bool:
        """Whether the recorded verdict carried ``key`` (a typed one, or one in ``extra``)."""
        return key in self.extra if key not in _VERDICT_KEYS else key not in self.absent

    def to_json(self) -> dict[str, Any]:
        typed = {
            "outcome": self.outcome,
            "reason": self.reason,
            "n_candidate": self.n_candidate,
            "n_baseline": self.n_baseline,
            "estimate": self.estimate,
            "lower": self.lower,
            "upper": self.upper,
            "stat": self.stat,
            "trades_needed": self.trades_needed,
        }
        out = {k: v for k, v in typed.items() if k not in self.absent}
        return out | copy.deepcopy(dict(self.extra))

    @classmethod
    def from_json(cls, doc: object, where: str = "verdict") -> VerdictRecord:
        f = _Fields(doc, where)
        return cls(
            outcome=f.take("outcome", _opt_str, None),
            reason=f.take("reason", _opt_str, None),
            n_candidate=f.take("n_candidate", _opt_int, None),
            n_baseline=f.take("n_baseline", _opt_int, None),
            estimate=f.take("estimate", _opt_float, None),
            lower=f.take("lower", _opt_float, None),
            upper=f.take("upper", _opt_float, None),
            stat=f.take("stat", _opt_float, None),
            trades_needed=f.take("trades_needed", _opt_int, None),
            extra=f.rest,
            absent=frozenset(f.absent),
        )


Verdicts: TypeAlias = Mapping[str, VerdictRecord] | VerdictRecord


def _verdicts(value: object, where: str) -> tuple[Verdicts, dict[str, Any]]:
    doc = _object(value, where)
    if "outcome" in doc:  # an older record's one flat verdict, not one per family
        return VerdictRecord.from_json(doc, where), {}
    typed: dict[str, VerdictRecord] = {}
    other: dict[str, Any] = {}
    for family, entry in doc.items():
        if isinstance(entry, Mapping):
            typed[family] = VerdictRecord.from_json(entry, f"{where}[{family!r}]")
        else:
            other[family] = entry
    return typed, other


# -- the record ---------------------------------------------------------------------------------
_RUN_KEYS = frozenset(
    {
        "schema",
        "at",
        "run_id",
        "mechanism",
        "mode",
        "decision",
        "intended",
        "reasons",
        "applied",
        "version_before",
        "version_after",
        "diff",
        "knobs",
        "proposed_diff",
        "verdicts",
        "family",
        "target_version",
        "restored_snapshot",
        "in_flight",
        "metrics",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """One run of one mechanism, as recorded in the decision history.

    ``decision`` is what happened (``apply``, ``hold``, ``shadow``, ``frozen``, ``lock_busy``,
    ``rollback``, ``operator_freeze``...), ``intended`` what the logic decided; ``reasons`` the
    codes behind it. ``applied`` says a knob changed (``diff``: what changed, ``version_before``
    -> ``version_after``); ``proposed_diff`` is what a shadow or frozen run would have changed.
    ``knobs`` holds the apply guard's code per knob considered. ``other_verdicts`` holds the
    entries of ``verdicts`` that are not verdict objects; ``extra`` every key not typed here.
    ``absent`` lists the typed keys the record did not carry (each holds its default).
    """

    schema: int = SCHEMA
    at: datetime | None = None
    run_id: str | None = None
    mechanism: str = ""
    mode: str | None = None
    decision: str = ""
    intended: str | None = None
    reasons: tuple[str, ...] = ()
    applied: bool = False
    version_before: str | None = None
    version_after: str | None = None
    diff: tuple[KnobDiff, ...] = ()
    knobs: tuple[Mapping[str, Any], ...] = ()
    proposed_diff: tuple[KnobDiff, ...] = ()
    verdicts: Verdicts = field(default_factory=dict)
    other_verdicts: Mapping[str, Any] = field(default_factory=dict)
    family: str | None = None
    target_version: str | None = None
    restored_snapshot: bool | None = None
    in_flight: Mapping[str, Any] | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    absent: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.at is not None and self.at.utcoffset() is None:
            raise ValueError(f"at must be UTC-aware, got {self.at.isoformat()!r}")
        if isinstance(self.verdicts, VerdictRecord):
            if self.other_verdicts or not self.verdicts.has("outcome"):
                raise ValueError("a flat verdict carries an outcome and no other entries")
        elif "outcome" in self.verdicts or "outcome" in self.other_verdicts:
            raise ValueError("no family may be named 'outcome' (it marks a flat verdict)")
        elif set(self.verdicts) & set(self.other_verdicts):
            raise ValueError("verdicts and other_verdicts share a family")
        if "verdicts" in self.absent and self.other_verdicts:
            raise ValueError("verdicts is listed as absent but other_verdicts has entries")
        _check_absent(self, _RUN_KEYS)

    @property
    def is_flat_verdict(self) -> bool:
        """Whether ``verdicts`` is an older record's single verdict (not one per family)."""
        return isinstance(self.verdicts, VerdictRecord)

    def has(self, key: str) -> bool:
        """Whether the record carried ``key`` (a typed one, or one in ``extra``)."""
        return key in self.extra if key not in _RUN_KEYS else key not in self.absent

    def to_json(self) -> dict[str, Any]:
        """The record as the history holds it (the inverse of :meth:`from_json`)."""
        if isinstance(self.verdicts, VerdictRecord):
            verdicts: dict[str, Any] = self.verdicts.to_json()
        else:
            verdicts = {k: v.to_json() for k, v in self.verdicts.items()}
            verdicts |= copy.deepcopy(dict(self.other_verdicts))
        typed: dict[str, Any] = {
            "schema": self.schema,
            "at": format_utc(self.at) if self.at is not None else None,
            "run_id": self.run_id,
            "mechanism": self.mechanism,
            "mode": self.mode,
            "decision": self.decision,
            "intended": self.intended,
            "reasons": list(self.reasons),
            "applied": self.applied,
            "version_before": self.version_before,
            "version_after": self.version_after,
            "diff": [d.to_json() for d in self.diff],
            "knobs": [copy.deepcopy(dict(k)) for k in self.knobs],
            "proposed_diff": [d.to_json() for d in self.proposed_diff],
            "verdicts": verdicts,
            "family": self.family,
            "target_version": self.target_version,
            "restored_snapshot": self.restored_snapshot,
            "in_flight": None if self.in_flight is None else copy.deepcopy(dict(self.in_flight)),
            "metrics": copy.deepcopy(dict(self.metrics)),
        }
        out = {k: v for k, v in typed.items() if k not in self.absent}
        return out | copy.deepcopy(dict(self.extra))

    @classmethod
    def from_json(cls, doc: object) -> RunRecord:
        """Parse one history record; missing keys take their defaults.

        Raises:
            StateError: ``doc`` is not an object, a key has the wrong type (the message names
                the field), or the record's schema is newer than :data:`SCHEMA`.
        """
        f = _Fields(doc, "")
        none: tuple[Verdicts, dict[str, Any]] = ({}, {})
        verdicts, other = f.take("verdicts", _verdicts, none)
        return cls(
            schema=f.take("schema", _schema, SCHEMA),
            at=f.take("at", _at, None),
            run_id=f.take("run_id", _opt_str, None),
            mechanism=f.take("mechanism", _str, ""),
            mode=f.take("mode", _opt_str, None),
            decision=f.take("decision", _str, ""),
            intended=f.take("intended", _opt_str, None),
            reasons=f.take("reasons", _strs, ()),
            applied=f.take("applied", _bool, False),
            version_before=f.take("version_before", _opt_str, None),
            version_after=f.take("version_after", _opt_str, None),
            diff=f.take("diff", _diffs, ()),
            knobs=f.take("knobs", _objects, ()),
            proposed_diff=f.take("proposed_diff", _diffs, ()),
            verdicts=verdicts,
            other_verdicts=other,
            family=f.take("family", _opt_str, None),
            target_version=f.take("target_version", _opt_str, None),
            restored_snapshot=f.take("restored_snapshot", _opt_bool, None),
            in_flight=f.take("in_flight", _opt_object, None),
            metrics=f.take("metrics", _object, {}),
            extra=f.rest,
            absent=frozenset(f.absent),
        )


def parse_runs(
    records: Iterable[RunRecord | Mapping[str, Any]],
) -> tuple[list[RunRecord], list[tuple[int, str]]]:
    """Typed records (typed ones pass through) and ``(index, why)`` of each that did not parse."""
    runs: list[RunRecord] = []
    bad: list[tuple[int, str]] = []
    for index, record in enumerate(records):
        if isinstance(record, RunRecord):
            runs.append(record)
            continue
        try:
            runs.append(RunRecord.from_json(record))
        except StateError as exc:
            bad.append((index, str(exc)))
    return runs, bad
