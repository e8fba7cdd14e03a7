"""YAML reading for tracked configuration: ``safe_load`` only, and duplicate keys are errors.

PyYAML silently keeps the last of two equal keys; in the registry that would hide a knob
defined twice (two owners). Errors carry the file and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from autolearn.errors import ConfigError

__all__ = ["load_yaml", "load_yaml_text"]


# libyaml's parser when PyYAML has it (the wheels do): the registry parses in ~2 ms instead of
# ~17 ms, paid by every command and worker start (issue 16). Same constructor (SafeConstructor,
# so still safe_load), same values, same duplicate-key check.
if TYPE_CHECKING:  # the same interface, as far as this module uses it
    _SafeBase = yaml.SafeLoader
else:
    _SafeBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_SafeBase):
    """SafeLoader that refuses duplicate mapping keys."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {seen[key] + 1}); a knob has one owner",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml_text(text: str, source: str) -> Any:
    """Parse YAML text strictly; ``ConfigError`` names ``source`` and the line on failure."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from exc


def load_yaml(path: Path) -> Any:
    """Read and parse a YAML file strictly."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return load_yaml_text(text, str(path))
