"""One loader for every YAML config (the knob registry aside): a document -> a frozen dataclass.

The config types stay stdlib frozen dataclasses: defaults, ``__post_init__`` checks and a
``problems()`` method live there, once. :func:`load_config` reads the dataclass's type hints
(``typing.get_type_hints``, so a field added later needs no parser change) and validates a loaded
document against them, all problems at once, each with its dotted path:

- strict types: ``true`` is not an int, ``"7"`` is not an int; an int is accepted for a float;
  NaN and infinities are refused (``x > nan`` is False: a NaN limit would never trip);
- unknown keys are refused at every nesting level (a typo must not fall back to a default);
- nested dataclasses take mappings, merged over the field's default (a partial ``flight:``
  section keeps the rest of the mechanism's own defaults); an empty section (``null``) is the
  default;
- ``timedelta`` takes what :func:`autolearn.core.registry.parse_duration` takes (``"90s"``,
  ``"3h"``, ``"7d"`` or a number of seconds >= 0); enums take their values; tuples take lists;
  ``X | None`` takes ``null``; ``Mapping[str, V]`` takes a mapping with string keys;
- ``__post_init__`` ``ValueError``s become problems at the section's path, beside the type
  problems of the other sections; once everything builds, every dataclass's ``problems()``
  (when it has one, at any depth) is asked too, its findings prefixed the same way.

Why pydantic through a ``TypeAdapter`` over a ``TypedDict`` derived from each dataclass, rather
than a generated ``BaseModel`` or pydantic's own dataclass support (``__pydantic_config__`` on
each config class, i.e. pydantic in every config module): a ``total=False`` TypedDict
yields exactly the keys the document gave, so the dataclass's defaults (and default factories)
fill the rest and are never restated; keys are plain strings (a field named ``schema`` or
``model_x`` would clash with ``BaseModel``); and every leaf gets explicit semantics (pydantic's
strict mode alone refuses YAML lists for tuples and plain values for enums, its lax mode takes
``"7"`` for an int and ISO strings for durations). Pydantic collects every error with its
location, which is what the operator needs.

Pure: no I/O (the YAML is read by ``autolearn.adapters.yamlio``); the one third-party import of
``core``, pydantic, is the validation engine and never leaks out: callers see dataclasses and
``ConfigError``.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import Field, fields, is_dataclass, replace
from datetime import timedelta
from enum import Enum
from functools import cache, partial
from typing import Annotated, Any, Literal, TypeVar

import typing_extensions  # pydantic's own dependency: it needs this TypedDict before 3.12
from pydantic import (
    AfterValidator,
    AllowInfNan,
    BeforeValidator,
    ConfigDict,
    PlainValidator,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    with_config,
)

from autolearn.core.registry import parse_duration
from autolearn.errors import ConfigError

__all__ = ["config_to_doc", "load_config"]

T = TypeVar("T")
_SECTION = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
_FLOAT = Annotated[float, Strict(), AllowInfNan(False)]
_MESSAGES = {
    "int_type": "expected an integer",
    "float_type": "expected a number",
    "finite_number": "expected a finite number",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "tuple_type": "expected a list",
    "dict_type": "expected a mapping",
    "invalid_key": "keys must be strings",
}
_MAX_REPR = 80
# ``typing_extensions.TypedDict`` is a special form mypy only accepts with a literal field dict.
_TypedDict: Any = typing_extensions.TypedDict


def load_config(cls: type[T], doc: object, source: str, *, path: str = "") -> T:
    """Validate a loaded YAML document (a mapping, or ``None`` for the defaults) into ``cls``.

    Args:
        cls: a frozen dataclass whose fields all have defaults.
        doc: what ``yaml.safe_load`` returned.
        source: where the document came from (a path), for the message.
        path: dotted prefix of every problem, when ``doc`` is one section of a larger file.

    Raises:
        ConfigError: ``invalid config <source>:`` with every problem, dotted path first.
    """
    try:
        value = _adapter(typing.cast(type, cls)).validate_python({} if doc is None else doc)
    except ValidationError as exc:
        problems = [_describe(cls, error, path) for error in exc.errors(include_url=False)]
        raise ConfigError(f"invalid config {source}:", problems) from exc
    if not isinstance(value, cls):  # pragma: no cover - the adapter builds cls or raises
        raise TypeError(f"{cls.__name__} adapter returned {type(value).__name__}")
    found = list(_invariants(value, path))
    if found:
        raise ConfigError(f"invalid config {source}:", found)
    return value


def config_to_doc(value: object) -> Any:
    """The document :func:`load_config` reads back into an equal value (YAML-safe types only)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: config_to_doc(getattr(value, f.name)) for f in _init_fields(value)}
    if isinstance(value, timedelta):
        return _duration_text(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [config_to_doc(v) for v in value]
    if isinstance(value, Mapping):
        return {k: config_to_doc(v) for k, v in value.items()}
    return value


# -- building the validator from the type hints -------------------------------------------------


@cache
def _adapter(cls: type) -> TypeAdapter[Any]:
    return TypeAdapter(_section(cls, cls, cls.__qualname__))


def _init_fields(cls: object) -> list[Field[Any]]:
    return [f for f in fields(cls) if f.init]  # type: ignore[arg-type]


def _section(cls: type, default: Callable[[], object], where: str) -> Any:
    """``cls`` as a strict mapping whose keys are merged over ``default()`` (a fresh instance
    each time: a default's dict must not be shared between two loaded configs)."""
    hints = typing.get_type_hints(cls)
    keys = {
        f.name: _leaf(hints[f.name], partial(_field_default, default, f.name), f"{where}.{f.name}")
        for f in _init_fields(cls)
    }
    doc_type = with_config(_SECTION)(_TypedDict(f"{cls.__name__}Doc", keys, total=False))

    def build(given: dict[str, Any]) -> object:
        try:
            return replace(default(), **given)  # type: ignore[type-var]  # runs __post_init__
        except TypeError as exc:  # a check comparing what it did not expect: still a problem
            raise ValueError(str(exc)) from exc

    return Annotated[doc_type, BeforeValidator(_none_as_empty), AfterValidator(build)]


def _field_default(parent: Callable[[], object], name: str) -> object:
    return getattr(parent(), name)


def _leaf(tp: Any, default: Callable[[], object], where: str) -> Any:  # noqa: C901 - per kind
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return Any
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1 or len(args) != 2:
            raise TypeError(f"{where}: unsupported config field type {tp!r} (only X | None)")
        return typing.Optional[_leaf(inner[0], default, where)]  # noqa: UP045 - built at runtime
    if tp is bool:
        return StrictBool
    if tp is int:
        return StrictInt
    if tp is float:
        return _FLOAT
    if tp is str:
        return StrictStr
    if tp is timedelta:
        return Annotated[timedelta, PlainValidator(_duration)]
    if isinstance(tp, type) and issubclass(tp, Enum):
        return Annotated[tp, PlainValidator(_enum_value(tp))]
    if isinstance(tp, type) and is_dataclass(tp):
        return _section(tp, partial(_instance_of, tp, default), where)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            items: Any = tuple[_leaf(args[0], args[0], f"{where}[]"), ...]  # type: ignore[misc]
        else:
            items = tuple.__class_getitem__(tuple(_leaf(a, a, f"{where}[]") for a in args))
        return Annotated[items, BeforeValidator(_list_as_tuple)]
    if origin in (dict, Mapping) and args and args[0] is str:
        return dict.__class_getitem__((StrictStr, _leaf(args[1], args[1], f"{where}[]")))
    if origin is Literal:
        return tp
    raise TypeError(f"{where}: unsupported config field type {tp!r}")


def _instance_of(tp: type, default: Callable[[], object]) -> object:
    """The field's default when it is a ``tp`` (not ``None``), else ``tp``'s own defaults."""
    value = default()
    return value if isinstance(value, tp) else tp()


def _none_as_empty(value: object) -> object:
    return {} if value is None else value


def _list_as_tuple(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta) and value >= timedelta(0):
        return value
    return parse_duration(value)  # ValueError names the accepted forms and the value


def _enum_value(tp: type[Enum]) -> Callable[[object], Enum]:
    def check(value: object) -> Enum:
        if isinstance(value, tp):
            return value
        for member in tp:
            if type(value) is type(member.value) and value == member.value:
                return member
        known = ", ".join(repr(m.value) for m in tp)
        raise ValueError(f"expected one of {known}, got {_short(value)}")

    return check


# -- problems -----------------------------------------------------------------------------------


def _describe(cls: type, error: Mapping[str, Any], prefix: str) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{_dotted(prefix, loc)}: {_unknown(cls, loc)}"
    if kind == "value_error":  # a validator or __post_init__: its message names the value
        return f"{_dotted(prefix, loc)}: {(error.get('ctx') or {}).get('error', error['msg'])}"
    if loc and loc[-1] == "[key]":  # a mapping key itself failed: name the key, not an index
        loc, kind = (*loc[:-2], str(loc[-2])), "invalid_key"
    elif kind == "invalid_key":
        loc = (*loc[:-1], str(loc[-1]))
    ctx = error.get("ctx") or {}
    if kind in ("too_long", "too_short"):
        text = f"expected {ctx.get('max_length', ctx.get('min_length'))} items"
    else:
        text = _MESSAGES.get(kind, error["msg"][:1].lower() + error["msg"][1:])
    return f"{_dotted(prefix, loc)}: {text}, got {_short(error['input'])}"


def _dotted(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out or "<top>"


def _unknown(cls: type, loc: tuple[int | str, ...]) -> str:
    """``unknown key``, a close match and the known keys of the section holding it."""
    section: Any = cls
    for part in loc[:-1]:
        section = _child(section, part)
    if not (isinstance(section, type) and is_dataclass(section)):
        return "unknown key"
    known = [f.name for f in _init_fields(section)]
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key ({hint}known: {', '.join(known)})"


def _child(tp: Any, part: int | str) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if isinstance(tp, type) and is_dataclass(tp):
        return typing.get_type_hints(tp).get(str(part))
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (dict, Mapping) and len(args) == 2:
        return args[1]
    if typing.get_origin(tp) is tuple and isinstance(part, int) and args:
        return args[0] if args[-1] is Ellipsis else args[min(part, len(args) - 1)]
    return None


def _invariants(value: object, path: str) -> Iterator[str]:
    """Every dataclass's own ``problems()`` in the built tree, outermost first."""
    if not is_dataclass(value) or isinstance(value, type):
        return
    check = getattr(value, "problems", None)
    if callable(check):
        yield from (f"{path}.{p}" if path else str(p) for p in check())
    for f in _init_fields(value):
        yield from _invariants(getattr(value, f.name), f"{path}.{f.name}" if path else f.name)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


def _duration_text(value: timedelta) -> str | float:
    seconds = value.total_seconds()
    if value.microseconds or seconds < 0:
        return seconds
    whole = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"
