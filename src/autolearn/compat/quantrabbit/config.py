"""The QuantRabbit compat config: which export files are on, and where each knob goes.

Two tracked files, both read-only for autolearn:

- the packaged ``data/quantrabbit_paths.yaml``: export file -> path under the bot checkout, and
  knob (registry name or pattern) -> the original's path in that file, plus the knobs the
  original has no reader for (``unexported``, each with its reason);
- the bot's ``config/autolearn_compat.yaml`` (found by :func:`find_compat_config`): the opt-in,
  one switch per file (all off by default, so any other bot is unaffected), the strategies of
  each pocket (a strategy block becomes the pocket's allow-list) and optional extra mappings::

      schema_version: 1
      quantrabbit:
        exports: {tuning_overlay: true, policy_overlay: true, scalp_active_params: false}
        pocket_strategies: {micro: [MomentumPulse, MicroVWAPRevert]}
        knob_paths: {}        # more knob -> {file, path} entries (a custom registry)
        presets: config/tuning_presets.yaml          # base of tuning_overlay.yaml
        scalp_base: configs/scalp_active_params.json # base of scalp_active_params.json
        policy_base: null                            # optional base PolicySnapshot (JSON)

Every problem is collected and raised as one ``ConfigError`` listing each dotted path.
Pure parsing plus two file reads; writes nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from autolearn.adapters.yamlio import load_yaml, load_yaml_text
from autolearn.core.knob_names import KEY_SEGMENT
from autolearn.core.registry import Registry
from autolearn.errors import ConfigError

__all__ = [
    "COMPAT_CONFIG_NAME",
    "EXPORT_FILES",
    "CompatConfig",
    "KnobPath",
    "find_compat_config",
    "load_compat_config",
    "mapping_report",
    "parse_compat_config",
]

COMPAT_CONFIG_NAME = "autolearn_compat.yaml"
EXPORT_FILES = ("tuning_overlay", "policy_overlay", "scalp_active_params")
_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class KnobPath:
    """Where one registry name (or pattern) lands in an export file."""

    knob: str  # as in the registry: may hold {pocket} and *
    file: str
    path: str  # the original's dotted path; may hold {pocket}
    regex: re.Pattern[str] = field(compare=False, repr=False)

    def resolve(self, knob: str) -> str | None:
        """The original path for concrete ``knob``, or None when this entry does not match."""
        match = self.regex.match(knob)
        if match is None:
            return None
        if self.path == "{knob}":  # a catch-all: the original reads the same dotted path
            return knob
        return self.path.replace("{pocket}", match.groupdict().get("pocket") or "")


@dataclass(frozen=True, slots=True, kw_only=True)
class CompatConfig:
    """The validated compat config of one bot checkout."""

    bot_root: Path
    source: str
    enabled: frozenset[str] = frozenset()
    files: Mapping[str, Path] = field(default_factory=dict)  # absolute export paths
    knob_paths: tuple[KnobPath, ...] = ()
    unexported: Mapping[str, str] = field(default_factory=dict)
    pocket_strategies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    presets: Path | None = None
    scalp_base: Path | None = None
    policy_base: Path | None = None

    @property
    def is_on(self) -> bool:
        return bool(self.enabled)

    def path_of(self, knob: str) -> KnobPath | None:
        """The first mapping entry that matches concrete (or pattern) name ``knob``."""
        for entry in self.knob_paths:
            if entry.knob == knob or entry.resolve(knob) is not None:
                return entry
        return None

    def unexported_reason(self, knob: str) -> str | None:
        for name, why in self.unexported.items():
            if name == knob or _pattern(name).match(knob):
                return why
        return None


def _pattern(name: str) -> re.Pattern[str]:
    """A registry name with ``{pocket}`` and ``*`` as a regex (one segment each)."""
    parts = []
    for piece in re.split(r"(\{pocket\}|\*)", name):
        if piece == "{pocket}":
            parts.append(r"(?P<pocket>[A-Za-z0-9_]+|\{pocket\})")
        elif piece == "*":
            parts.append(f"(?:{KEY_SEGMENT}|\\*)")
        else:
            parts.append(re.escape(piece))
    return re.compile("^" + "".join(parts) + "$")


def find_compat_config(
    state_dir: Path, env: Mapping[str, str] | None = None, *, bot_root: Path | None = None
) -> Path | None:
    """The bot's compat config: ``$AUTOLEARN_COMPAT_CONFIG``, else ``config/autolearn_compat.yaml``
    under ``bot_root``, ``$AUTOLEARN_BOT_ROOT``, or the checkout a default ``<root>/logs/tuning``
    state dir belongs to. None when there is none (exports off)."""
    env = os.environ if env is None else env
    named = env.get("AUTOLEARN_COMPAT_CONFIG")
    if named:
        return Path(named)
    roots = [bot_root] if bot_root is not None else []
    if env.get("AUTOLEARN_BOT_ROOT"):
        roots.append(Path(env["AUTOLEARN_BOT_ROOT"]))
    state = Path(state_dir).resolve()
    if state.name == "tuning" and state.parent.name == "logs":
        roots.append(state.parent.parent)
    for root in roots:
        candidate = root / "config" / COMPAT_CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


def _packaged_doc() -> Any:
    text = resources.files("autolearn").joinpath("data/quantrabbit_paths.yaml").read_text("utf-8")
    return load_yaml_text(text, "<packaged quantrabbit_paths.yaml>")


def load_compat_config(path: Path | None, *, bot_root: Path | None = None) -> CompatConfig:
    """The packaged mapping merged with the bot's opt-in file at ``path`` (None: all off).

    ``bot_root`` defaults to the parent of the ``config/`` directory holding ``path``.

    Raises:
        ConfigError: either file is unreadable or invalid (every problem listed).
    """
    doc: Any = {} if path is None else load_yaml(path)
    root = bot_root or (path.resolve().parent.parent if path is not None else Path.cwd())
    return parse_compat_config(_packaged_doc(), doc, root, str(path or "<no compat config>"))


def parse_compat_config(
    packaged: Any, doc: Any, bot_root: Path, source: str = "<compat config>"
) -> CompatConfig:
    """Validate both documents; every problem in one ``ConfigError``."""
    problems: list[str] = []
    files, knob_paths, unexported = _parse_mapping(packaged, problems, "quantrabbit_paths")
    section: Mapping[str, Any] = {}
    if doc in (None, {}):
        doc = {}
    elif not isinstance(doc, Mapping):
        problems.append(f"{source}: expected a mapping, got {type(doc).__name__}")
        doc = {}
    else:
        if doc.get("schema_version", _SCHEMA_VERSION) != _SCHEMA_VERSION:
            problems.append(
                f"schema_version: expected {_SCHEMA_VERSION}, got {doc.get('schema_version')!r}"
            )
        unknown = set(doc) - {"schema_version", "quantrabbit"}
        problems += [
            f"{k}: unknown key (known: schema_version, quantrabbit)" for k in sorted(unknown)
        ]
        raw = doc.get("quantrabbit") or {}
        if not isinstance(raw, Mapping):
            problems.append("quantrabbit: expected a mapping")
        else:
            section = raw
    allowed = {
        "exports",
        "pocket_strategies",
        "knob_paths",
        "presets",
        "scalp_base",
        "policy_base",
        "paths",
    }
    problems += [
        f"quantrabbit.{k}: unknown key (known: {', '.join(sorted(allowed))})"
        for k in sorted(set(section) - allowed)
    ]
    enabled = _parse_exports(section.get("exports") or {}, problems)
    for name, rel in (section.get("paths") or {}).items():
        if name not in EXPORT_FILES or not isinstance(rel, str) or not rel:
            problems.append(f"quantrabbit.paths.{name}: expected one of {EXPORT_FILES} -> a path")
        else:
            files[name] = rel
    extra = section.get("knob_paths") or {}
    if isinstance(extra, Mapping):
        knob_paths = _parse_knob_paths(extra, problems, "quantrabbit.knob_paths") + knob_paths
    else:
        problems.append("quantrabbit.knob_paths: expected a mapping knob -> {file, path}")
    strategies = _parse_pocket_strategies(section.get("pocket_strategies") or {}, problems)

    def opt_path(key: str, default: str | None) -> Path | None:
        value = section.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            problems.append(f"quantrabbit.{key}: expected a path relative to the bot checkout")
            return None
        return bot_root / value

    presets = opt_path("presets", "config/tuning_presets.yaml")
    scalp_base = opt_path("scalp_base", "configs/scalp_active_params.json")
    policy_base = opt_path("policy_base", None)
    if problems:
        raise ConfigError(f"compat config {source} is invalid:", problems)
    return CompatConfig(
        bot_root=bot_root,
        source=source,
        enabled=frozenset(enabled),
        files={name: bot_root / rel for name, rel in files.items()},
        knob_paths=knob_paths,
        unexported=unexported,
        pocket_strategies=strategies,
        presets=presets,
        scalp_base=scalp_base,
        policy_base=policy_base,
    )


def _parse_mapping(
    doc: Any, problems: list[str], where: str
) -> tuple[dict[str, str], tuple[KnobPath, ...], dict[str, str]]:
    if not isinstance(doc, Mapping):
        problems.append(f"{where}: expected a mapping")
        return {}, (), {}
    files = {}
    for name, rel in (doc.get("files") or {}).items():
        if name not in EXPORT_FILES or not isinstance(rel, str):
            problems.append(f"{where}.files.{name}: expected one of {EXPORT_FILES} -> a path")
        else:
            files[name] = rel
    knob_paths = _parse_knob_paths(doc.get("knobs") or {}, problems, f"{where}.knobs")
    unexported = {str(k): str(v) for k, v in (doc.get("unexported") or {}).items()}
    return files, knob_paths, unexported


def _parse_knob_paths(
    doc: Mapping[str, Any], problems: list[str], where: str
) -> tuple[KnobPath, ...]:
    out = []
    for knob, entry in doc.items():
        if not isinstance(entry, Mapping) or set(entry) != {"file", "path"}:
            problems.append(f"{where}.{knob}: expected {{file, path}}, got {entry!r}")
            continue
        if entry["file"] not in EXPORT_FILES:
            problems.append(
                f"{where}.{knob}.file: expected one of {EXPORT_FILES}, got {entry['file']!r}"
            )
            continue
        path = entry["path"]
        if not isinstance(path, str) or not path or any(not p for p in path.split(".")):
            problems.append(f"{where}.{knob}.path: expected a dotted path, got {path!r}")
            continue
        out.append(
            KnobPath(knob=str(knob), file=entry["file"], path=path, regex=_pattern(str(knob)))
        )
    return tuple(out)


def _parse_exports(doc: Any, problems: list[str]) -> set[str]:
    if not isinstance(doc, Mapping):
        problems.append("quantrabbit.exports: expected a mapping file -> true/false")
        return set()
    enabled = set()
    for name, on in doc.items():
        if name not in EXPORT_FILES:
            problems.append(
                f"quantrabbit.exports.{name}: unknown export (known: {', '.join(EXPORT_FILES)})"
            )
        elif not isinstance(on, bool):
            problems.append(f"quantrabbit.exports.{name}: expected true or false, got {on!r}")
        elif on:
            enabled.add(str(name))
    return enabled


def _parse_pocket_strategies(doc: Any, problems: list[str]) -> dict[str, tuple[str, ...]]:
    if not isinstance(doc, Mapping):
        problems.append(
            "quantrabbit.pocket_strategies: expected a mapping pocket -> [strategy, ...]"
        )
        return {}
    out = {}
    for pocket, names in doc.items():
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            problems.append(f"quantrabbit.pocket_strategies.{pocket}: expected a list of names")
            continue
        out[str(pocket)] = tuple(names)
    return out


def mapping_report(registry: Registry, config: CompatConfig) -> tuple[list[str], list[str]]:
    """(problems, notes) of the registry against the mapping, for ``knobs --check``.

    Only when an export is on: a knob of the registry that neither has an original path in an
    enabled file's mapping nor an ``unexported`` reason is a problem (QuantRabbit's workers would
    never see it); an unexported one is a note with its reason.
    """
    if not config.is_on:
        return [], []
    problems: list[str] = []
    notes: list[str] = []
    names = [s.name for s in registry] + [t.name for _, t in registry.patterns]
    for name in names:
        entry = config.path_of(name)
        if entry is not None:
            if entry.file not in config.enabled:
                notes.append(f"{name}: maps to {entry.file}, which is not exported (off)")
            continue
        why = config.unexported_reason(name)
        if why is not None:
            notes.append(f"{name}: not exported ({why})")
        else:
            problems.append(
                f"{name}: no QuantRabbit path (add it to quantrabbit.knob_paths in "
                f"{config.source}, or the original's workers never see its value)"
            )
    return problems, notes
