"""Render the knob-ownership document from the registry (so review of writers is mechanical).

Pure: registry in, Markdown out. ``docs/KNOB_OWNERSHIP.md`` is this function's output; a test
fails when the two disagree.
"""

from __future__ import annotations

from collections import Counter

from autolearn.core.knobs import KnobSpec, KnobType, Owner
from autolearn.core.registry import Registry

__all__ = ["ownership_problems", "render_ownership_doc"]

_CADENCE = {
    Owner.TUNER: "every 10 min (`autolearn tune`)",
    Owner.POLICY: "every 15 min (`autolearn policy`)",
    Owner.SCALP_TRAINER: "every 3 h, opt-in (`autolearn scalp-train`)",
    Owner.AUTOTUNE: "hourly, own timer (`autolearn autotune`)",
    Owner.OPERATOR: "by hand (`autolearn set`, `rollback --to`)",
}


def _limits(spec: KnobSpec) -> str:
    if spec.type is KnobType.BOOL:
        return "true/false"
    return f"[{spec.lower:g}, {spec.upper:g}] step {spec.step:g}, max {spec.max_step:g}/apply"


def _pace(spec: KnobSpec) -> str:
    parts = []
    if spec.min_interval.total_seconds():
        parts.append(f"≥ {spec.min_interval} apart")
    if spec.max_drift_per_day is not None:
        parts.append(f"≤ {spec.max_drift_per_day:g}/day")
    return ", ".join(parts) or "-"


def _score(spec: KnobSpec) -> str:
    """An entry threshold's admission rule, e.g. ``confidence ≥ value`` (``-``: not one)."""
    if spec.score is None:
        return "-"
    return f"`{spec.score}` {'≥' if spec.admits == 'above' else '≤'} value"


def render_ownership_doc(registry: Registry) -> str:
    """Markdown table: which mechanism owns which knob, its bounds and its cadence."""
    lines = [
        "# Knob ownership",
        "",
        "Generated from the knob registry by `autolearn knobs --doc`; do not edit by hand",
        "(`make test` fails when this file and the registry disagree). Every knob has exactly",
        "one owner; the state store rejects a write by anyone else (`not_owner`). An entry",
        "threshold's `admits` says which score of a logged signal it compares: a signal is",
        "admitted when the rule holds for the knob's value (the counterfactual replays them).",
        "",
        f"Registry fingerprint: `{registry.fingerprint}`. Pockets: {', '.join(registry.pockets)}.",
        "",
    ]
    if registry.patterns:
        lines += [
            "A `*` segment is one strategy key: the strategy's name with every character",
            "outside `[A-Za-z0-9_]` written as `%XX` per UTF-8 byte, `%` included (`TrendMA`",
            "stays `TrendMA`, `Micro-VWAP` is `Micro%2DVWAP`, `モ` is `%E3%83%A2`). The rule is",
            "injective and reversible (`autolearn.core.knob_names`), so every strategy name the",
            "ledger can hold has exactly one knob; status and metrics show the name itself.",
            "",
        ]
    for owner in Owner:
        specs = sorted(registry.owned_by(owner), key=lambda s: s.name)
        patterns = sorted(
            (t for _, t in registry.patterns if t.owner is owner), key=lambda s: s.name
        )
        if not specs and not patterns:
            continue
        lines += [f"## {owner.value}: {_CADENCE[owner]}", ""]
        lines += ["| knob | type | default | limits | pace | family | read by | admits |"]
        lines += ["|---|---|---|---|---|---|---|---|"]
        for spec in [*specs, *patterns]:
            default = str(spec.default).lower() if spec.type is KnobType.BOOL else spec.default
            lines.append(
                f"| `{spec.name}` | {spec.type.value} | {default} | {_limits(spec)} | "
                f"{_pace(spec)} | {spec.family} | {spec.reader or '-'} | {_score(spec)} |"
            )
        lines.append("")
    return "\n".join(lines)


def ownership_problems(registry: Registry) -> list[str]:
    """Findings a reviewer must fix (the parser already refuses two owners of one name)."""
    problems: list[str] = []
    family_owners: dict[str, set[Owner]] = {}
    for spec in registry:
        family_owners.setdefault(spec.family, set()).add(spec.owner)
    for family, owners in sorted(family_owners.items()):
        if len(owners) > 1:
            names = ", ".join(sorted(o.value for o in owners))
            problems.append(
                f"family {family!r} has several owners ({names}): judge cannot attribute"
            )
    counts = Counter(spec.name.lower() for spec in registry)
    problems += [f"knob names differ only by case: {n}" for n, c in counts.items() if c > 1]
    return problems
