"""Folded run records: a record stored as what changed since an earlier full one of its mechanism.

A tuner run that freezes again writes a record that differs from the last one only in its time,
its run id and a few strings ("6:31:00 old" instead of "6:21:00"). The history stores such a
record as a *delta line*: the keys every reader greps for (``at``, ``run_id``, ``mechanism``,
``decision``) in full, plus ``_fold``: the byte offset and run id of its *base* (an earlier full
line of the same mechanism in the same segment), a merge patch of what changed and the paths of
what was removed. Expanding a delta line gives back exactly the record that was appended.

Patch format (JSON Merge Patch, RFC 7386, without its "null deletes"): an object value means
"recurse into this key" (a non-object there is replaced by ``{}`` first), any other value
replaces; removals are listed apart as key paths (a list index is an integer), so ``null``
stays an ordinary value. A list of the same length is patched per item:
``{"_fold_items": {"<index>": patch}}``; any other changed list is replaced whole.

The diff compares with ``==``, which cannot tell ``1``, ``1.0`` and ``true`` apart: the writer
therefore checks each delta by expanding it and comparing the canonical JSON text with the
record's, and writes the record in full when they differ (:func:`strict_equal` is the same
check on values). Lossless by construction, whatever the diff misses.

Pure: no I/O, no clock. Works on JSON values as ``json.loads`` returns them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "FOLD_KEY",
    "HEADER_KEYS",
    "apply_patch",
    "delta_line",
    "diff_record",
    "expand_delta",
    "is_delta",
    "strict_equal",
]

FOLD_KEY = "_fold"
ITEMS_KEY = "_fold_items"
# kept in full on every line: what `grep`/`jq` and the fast readers look at without expanding
HEADER_KEYS = ("at", "run_id", "mechanism", "decision")


def strict_equal(a: Any, b: Any) -> bool:
    """JSON equality that tells ``1``, ``1.0`` and ``true`` apart."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strict_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def diff_record(
    base: Mapping[str, Any], new: Mapping[str, Any]
) -> tuple[dict[str, Any], list[list[str | int]]]:
    """``(patch, removed paths)`` that turn ``base`` into ``new`` (both JSON objects)."""
    patch: dict[str, Any] = {}
    removed: list[list[str | int]] = []
    _diff_into(base, new, [], patch, removed)
    return patch, removed


def _diff_into(
    base: Mapping[str, Any],
    new: Mapping[str, Any],
    path: list[str | int],
    patch: dict[str, Any],
    removed: list[list[str | int]],
) -> None:
    for key in base:
        if key not in new:
            removed.append([*path, key])
    for key, value in new.items():
        if key not in base:
            patch[key] = value
            continue
        old = base[key]
        if old == value:  # C speed; a 1 == 1.0 == true miss is caught by the writer's check
            continue
        patch[key] = _diff_value(old, value, [*path, key], removed)


def _diff_value(old: Any, value: Any, path: list[str | int], removed: list[list[str | int]]) -> Any:
    """The patch entry that turns ``old`` into ``value`` (they differ)."""
    if isinstance(old, dict) and isinstance(value, dict):
        inner: dict[str, Any] = {}
        _diff_into(old, value, path, inner, removed)
        return inner  # never empty unless ``value`` is: an emptied object stays an object
    if isinstance(old, list) and isinstance(value, list) and len(old) == len(value) and old:
        items = {
            str(i): _diff_value(a, b, [*path, i], removed)
            for i, (a, b) in enumerate(zip(old, value, strict=True))
            if a != b
        }
        return {ITEMS_KEY: items}
    return value


def apply_patch(target: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``target`` (modified in place and returned) with ``patch`` merged in.

    Keys stay sorted where ``target`` was sorted (as ``json.loads`` of a line written with
    ``sort_keys`` is), so an expanded record iterates like the record read from a full line.
    """
    added = False
    for key, value in patch.items():
        if key not in target:
            added = True
        target[key] = _patched(target.get(key), value)
    if added:
        ordered = dict(sorted(target.items()))
        target.clear()
        target.update(ordered)
    return target


def _patched(current: Any, value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    items = value.get(ITEMS_KEY)
    if len(value) == 1 and isinstance(items, dict) and isinstance(current, list):
        for index, item in items.items():
            i = int(index)
            if not 0 <= i < len(current):
                raise ValueError(f"{ITEMS_KEY} index {i} outside a list of {len(current)}")
            current[i] = _patched(current[i], item)
        return current
    return apply_patch(current if isinstance(current, dict) else {}, value)


def _remove(target: dict[str, Any], path: Sequence[str | int]) -> None:
    node: Any = target
    for key in path[:-1]:
        if isinstance(node, dict) and isinstance(key, str):
            node = node.get(key)
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            return
    if isinstance(node, dict) and isinstance(path[-1], str):
        node.pop(path[-1], None)


def is_delta(line: Mapping[str, Any]) -> bool:
    """Whether a parsed history line is a delta line (to expand against its base)."""
    return isinstance(line.get(FOLD_KEY), dict)


def delta_line(base: Mapping[str, Any], base_offset: int, new: Mapping[str, Any]) -> dict[str, Any]:
    """The delta line of ``new`` against ``base`` (a full line at ``base_offset``)."""
    patch, removed = diff_record(base, new)
    fold: dict[str, Any] = {"base": base_offset, "base_run_id": base.get("run_id")}
    header = {k: new[k] for k in HEADER_KEYS if k in new}
    for key in header:
        patch.pop(key, None)  # carried in full beside the patch
    if patch:
        fold["set"] = patch
    if removed:
        fold["unset"] = removed
    return header | {FOLD_KEY: fold}


def expand_delta(base: dict[str, Any], line: Mapping[str, Any]) -> dict[str, Any]:
    """The record a delta ``line`` stands for; ``base`` is a fresh parse of its base line.

    Raises:
        ValueError: ``base`` is not the line the delta names (another run id), or the delta's
            fields are malformed.
    """
    fold = line[FOLD_KEY]
    if base.get("run_id") != fold.get("base_run_id"):
        raise ValueError(
            f"base at offset {fold.get('base')} is run {base.get('run_id')!r}, "
            f"not {fold.get('base_run_id')!r}"
        )
    patch = fold.get("set", {})
    removed = fold.get("unset", [])
    if not isinstance(patch, dict) or not isinstance(removed, list):
        raise ValueError("_fold.set must be an object and _fold.unset a list")
    for path in removed:
        if (
            not isinstance(path, list)
            or not path
            or not all(isinstance(k, str | int) for k in path)
        ):
            raise ValueError(f"_fold.unset entry {path!r} is not a key path")
        _remove(base, path)
    header = {k: v for k, v in line.items() if k != FOLD_KEY}
    for key in HEADER_KEYS:
        if key not in header:
            base.pop(key, None)  # the record had no such key (the base did)
    record = apply_patch(base, patch)
    added = any(key not in record for key in header)
    record.update(header)  # assigned, never merged: a header value replaces whatever was there
    return dict(sorted(record.items())) if added else record
