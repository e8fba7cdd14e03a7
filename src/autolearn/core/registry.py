"""The knob registry: every knob, its single owner and its limits, parsed and validated.

The registry is tracked configuration (``config/knobs.yaml``). Parsing collects *every* problem
with its dotted path before failing, so one edit fixes them all. Only registered knobs can be
written; a name may use ``{pocket}`` (expanded over the registry's pockets) or ``*`` (one
name segment such as a strategy) so the policy can own ``pockets.micro.allow_new`` without the
registry listing every strategy. A ``*`` segment matches any strategy key of
``autolearn.core.knob_names`` (``[A-Za-z0-9_]`` and ``%XX`` escapes: ``Micro%2DVWAP`` is
``Micro-VWAP``), so every strategy name the ledger can hold has a registrable knob.

Pure: takes the already-loaded document; the YAML reading lives in ``autolearn.adapters.yamlio``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from autolearn.core.knob_names import KEY_SEGMENT
from autolearn.core.knobs import (
    ADMITS,
    Admits,
    KnobSpec,
    KnobType,
    KnobValue,
    Owner,
    problems_with_value,
)
from autolearn.errors import ConfigError, OwnershipError

__all__ = ["REGISTRY_SCHEMA_VERSION", "Registry", "parse_duration", "parse_registry"]

REGISTRY_SCHEMA_VERSION = 1
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.([A-Za-z_][A-Za-z0-9_]*|\*|\{pocket\}))+$")
_SCORE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # a signal's score name (EntrySignal.scores)
_SEGMENT = KEY_SEGMENT  # what ``*`` matches: one strategy key (core.knob_names)
_MAX_DURATION_S = 10 * 365 * 86400.0
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_KNOB_KEYS = {
    "owner",
    "type",
    "default",
    "bounds",
    "step",
    "max_step",
    "min_interval",
    "max_drift_per_day",
    "family",
    "doc",
    "reader",
    "score",
    "admits",
}


def parse_duration(text: object) -> timedelta:
    """``"90s"``, ``"30m"``, ``"6h"``, ``"1d"`` (or a number of seconds) as a timedelta."""
    seconds: float | None = None
    if _is_number(text) and float(text) >= 0:  # type: ignore[arg-type]
        seconds = float(text)  # type: ignore[arg-type]
    elif isinstance(text, str):
        match = _DURATION.match(text)
        if match:
            unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
            seconds = float(match.group(1)) * unit
    if seconds is None or seconds > _MAX_DURATION_S:
        raise ValueError(f"expected a duration like '30m' or '6h' (at most 10 years), got {text!r}")
    return timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class Registry:
    """All registered knobs by name (patterns kept separately) plus the known pockets."""

    knobs: Mapping[str, KnobSpec]
    pockets: tuple[str, ...]
    patterns: tuple[tuple[re.Pattern[str], KnobSpec], ...] = ()
    source: str = "<registry>"
    fingerprint: str = field(default="")

    def __iter__(self) -> Iterator[KnobSpec]:
        return iter(self.knobs.values())

    def __len__(self) -> int:
        return len(self.knobs)

    def find(self, name: str) -> KnobSpec | None:
        """The spec for ``name`` (exact names first, then ``*`` patterns), else ``None``."""
        spec = self.knobs.get(name)
        if spec is not None:
            return spec
        for pattern, template in self.patterns:
            if pattern.match(name):
                return KnobSpec(**{**_spec_fields(template), "name": name})
        return None

    def spec(self, name: str) -> KnobSpec:
        """Like :meth:`find` but raises ``OwnershipError`` for an unregistered name."""
        found = self.find(name)
        if found is None:
            raise OwnershipError(
                f"knob {name!r} is not registered in {self.source}; only registered knobs can "
                "be written (add it to the registry with one owner)"
            )
        return found

    def owned_by(self, owner: Owner | str) -> list[KnobSpec]:
        return [s for s in self.knobs.values() if s.owner == Owner(owner)]

    def defaults(self) -> dict[str, KnobValue]:
        return {name: spec.default for name, spec in self.knobs.items()}

    def families(self, owner: Owner | str | None = None) -> dict[str, list[KnobSpec]]:
        out: dict[str, list[KnobSpec]] = {}
        for spec in self.knobs.values():
            if owner is None or spec.owner == Owner(owner):
                out.setdefault(spec.family, []).append(spec)
        return out


def _spec_fields(spec: KnobSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in KnobSpec.__dataclass_fields__}


def parse_registry(doc: object, source: str = "<registry>") -> Registry:
    """Validate a loaded registry document. Raises ``ConfigError`` listing every problem."""
    problems: list[str] = []
    if not isinstance(doc, Mapping):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got {type(doc).__name__}"
        )
    version = doc.get("schema_version")
    if version != REGISTRY_SCHEMA_VERSION:
        problems.append(
            f"schema_version: expected {REGISTRY_SCHEMA_VERSION}, got {version!r}"
            " (a newer registry needs a newer autolearn)"
        )
    unknown_top = set(doc) - {"schema_version", "pockets", "knobs"}
    problems += [f"{key}: unknown top-level key" for key in sorted(map(str, unknown_top))]
    pockets = doc.get("pockets", [])
    if not isinstance(pockets, list) or not all(isinstance(p, str) and p for p in pockets):
        problems.append(f"pockets: expected a list of pocket names, got {pockets!r}")
        pockets = []
    raw_knobs = doc.get("knobs")
    if not isinstance(raw_knobs, Mapping) or not raw_knobs:
        problems.append("knobs: expected a non-empty mapping of knob name -> spec")
        raw_knobs = {}
    knobs: dict[str, KnobSpec] = {}
    patterns: list[tuple[re.Pattern[str], KnobSpec]] = []
    for name, raw in raw_knobs.items():
        spec = _parse_knob(str(name), raw, problems)
        if spec is None:
            continue
        for expanded in _expand(spec, tuple(pockets)):
            if "*" in expanded.name:
                regex = re.escape(expanded.name).replace(r"\*", _SEGMENT)
                patterns.append((re.compile(f"^{regex}$"), expanded))
            elif expanded.name in knobs:
                problems.append(f"knobs.{expanded.name}: defined twice (two owners?)")
            else:
                knobs[expanded.name] = expanded
    if problems:
        raise ConfigError(f"invalid knob registry {source}:", problems)
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
    return Registry(knobs, tuple(pockets), tuple(patterns), source, digest[:12])


def _expand(spec: KnobSpec, pockets: tuple[str, ...]) -> list[KnobSpec]:
    if "{pocket}" not in spec.name:
        return [spec]
    return [
        KnobSpec(
            **{
                **_spec_fields(spec),
                "name": spec.name.replace("{pocket}", p),
                "family": spec.family.replace("{pocket}", p),
            }
        )
        for p in pockets
    ]


def _parse_knob(name: str, raw: object, problems: list[str]) -> KnobSpec | None:  # noqa: C901
    where = f"knobs.{name}"
    before = len(problems)
    if not _NAME.match(name):
        problems.append(f"{where}: a knob name is dotted segments like 'exit.lowvol.max_sec'")
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected a mapping, got {raw!r}")
        return None
    for key in sorted(set(map(str, raw)) - _KNOB_KEYS):
        problems.append(f"{where}.{key}: unknown key (known: {', '.join(sorted(_KNOB_KEYS))})")
    owner_raw = raw.get("owner")
    if isinstance(owner_raw, list):
        problems.append(f"{where}.owner: a knob has exactly one owner, got {owner_raw!r}")
    elif owner_raw not in {o.value for o in Owner}:
        known = ", ".join(o.value for o in Owner)
        problems.append(f"{where}.owner: unknown owner {owner_raw!r} (known: {known})")
    type_raw = raw.get("type")
    if type_raw not in {t.value for t in KnobType}:
        problems.append(f"{where}.type: expected float, int or bool, got {type_raw!r}")
        return None
    knob_type = KnobType(type_raw)
    lower = upper = step = max_step = drift = None
    if knob_type is not KnobType.BOOL:
        bounds = raw.get("bounds")
        if (
            not isinstance(bounds, list)
            or len(bounds) != 2
            or not all(_is_number(b) for b in bounds)
            or not bounds[0] < bounds[1]
        ):
            problems.append(
                f"{where}.bounds: expected [lower, upper] with lower < upper, got {bounds!r}"
            )
        else:
            lower, upper = float(bounds[0]), float(bounds[1])
        step = _positive(
            raw.get("step", 1 if knob_type is KnobType.INT else None), f"{where}.step", problems
        )
        if knob_type is KnobType.FLOAT and "step" not in raw:
            # Values are rounded to the grid's decimals; without a grid a float knob has none.
            problems.append(f"{where}.step: a float knob needs a step (its grid)")
        max_step = _positive(raw.get("max_step", step), f"{where}.max_step", problems)
        if step and max_step and abs(max_step / step - round(max_step / step)) > 1e-6:
            problems.append(f"{where}.max_step: {max_step:g} must be a multiple of step {step:g}")
        if "max_drift_per_day" in raw:
            drift = _positive(raw["max_drift_per_day"], f"{where}.max_drift_per_day", problems)
    score, admits = _score(raw, knob_type, where, problems)
    try:
        interval = parse_duration(raw.get("min_interval", 0))
    except ValueError as exc:
        problems.append(f"{where}.min_interval: {exc}")
        interval = timedelta(0)
    if len(problems) > before:
        return None
    spec = KnobSpec(
        name=name,
        owner=Owner(str(owner_raw)),
        type=knob_type,
        default=_typed_default(knob_type, raw.get("default")),
        lower=lower,
        upper=upper,
        step=step,
        max_step=max_step,
        min_interval=interval,
        max_drift_per_day=drift,
        family=str(raw.get("family") or name.rsplit(".", 1)[0]),
        doc=str(raw.get("doc", "")),
        reader=str(raw.get("reader", "")),
        score=score,
        admits=admits,
    )
    for problem in problems_with_value(spec, raw.get("default")):
        problems.append(f"{where}.default: {problem}")
    return None if len(problems) > before else spec


def _score(
    raw: Mapping[str, Any], knob_type: KnobType, where: str, problems: list[str]
) -> tuple[str | None, Admits | None]:
    """``score``/``admits`` of an entry-threshold knob: both or neither, on int/float knobs."""
    score, admits = raw.get("score"), raw.get("admits")
    if score is None and admits is None:
        return None, None
    before = len(problems)
    if score is None or admits is None:
        given, missing = ("score", "admits") if admits is None else ("admits", "score")
        problems.append(
            f"{where}.{missing}: {given} is set, so {missing} must be too (an entry threshold "
            "names the signal score it compares and whether it admits above or below)"
        )
    if knob_type is KnobType.BOOL:
        problems.append(f"{where}.score: only an int or float knob can compare a score")
    if score is not None and (not isinstance(score, str) or not _SCORE.match(score)):
        problems.append(
            f"{where}.score: expected a score name like 'vwap_z_abs' ([A-Za-z_][A-Za-z0-9_]*), "
            f"got {score!r}"
        )
    if admits is not None and admits not in ADMITS:
        problems.append(f"{where}.admits: expected one of {', '.join(ADMITS)}, got {admits!r}")
    if len(problems) > before:
        return None, None
    return str(score), cast(Admits, admits)


def _is_number(value: object) -> bool:
    """A finite int or float (NaN would silently disable a limit: ``x > nan`` is False)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _positive(value: object, where: str, problems: list[str]) -> float | None:
    if value is None:
        return None
    if not _is_number(value) or float(value) <= 0:  # type: ignore[arg-type]  # NaN/inf refused
        problems.append(f"{where}: expected a number > 0, got {value!r}")
        return None
    return float(value)  # type: ignore[arg-type]


def _typed_default(knob_type: KnobType, value: object) -> KnobValue:
    if knob_type is KnobType.BOOL:
        return bool(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0  # already reported by problems_with_value
    return int(value) if knob_type is KnobType.INT else float(value)
