"""Typer's value coercion, built only for an option that was given a value.

Typer 0.29 coerces every non-flag parameter through a pydantic ``TypeAdapter``, built on first
use, and it uses each parameter on every run, value or not: a bare ``autolearn tune`` (systemd
passes its settings in the environment) imported pydantic and built a dozen adapters to turn
``None`` into ``None``, ~50 ms of a run that must cost little (issue 16).
:func:`defer_coercion` gives each parameter a stand-in that answers ``None`` (or ``()``) as
typer's own ``RuntimeParam.coerce`` does, and builds typer's real coercion for any other value,
so what a value becomes, and every message about a bad one, is typer's.

Typer's private API (``typer._coercion``, ``_TyperParameter._runtime_param``): when it moves,
this returns the command untouched (``tests/test_cli_lazy.py`` notices the cost coming back).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

__all__ = ["defer_coercion"]

# A text option given a text value is returned as is by typer's adapter (lax ``str``), and
# building that adapter imports pydantic (~45 ms of ``history --since 24h``): answered here.
_TEXT: tuple[Any, ...] = (str, str | None)


@cache
def _on_value() -> Any:
    """The stand-in ``RuntimeParam`` class (None: a typer without these internals)."""
    try:
        from typer._coercion import RuntimeParam, build_runtime_param
    except ImportError:  # pragma: no cover - then typer coerces as it always did
        return None

    @dataclass(frozen=True)
    class OnValue(RuntimeParam):
        """``RuntimeParam.coerce`` as typer's (``None`` stays ``None`` there); typer's
        coercion of the descriptor is built for a real value only."""

        descriptor: Any

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if isinstance(value, str) and self.descriptor.annotation in _TEXT:
                return value  # str -> str: what typer's adapter returns, without pydantic
            real = build_runtime_param(self.descriptor)
            param._runtime_param = real  # the next value goes straight to typer's
            return real._coerce_value(value, param=param, ctx=ctx)

    return OnValue


def defer_coercion(command: Any) -> Any:
    """Give every typer parameter of ``command`` and its subcommands the lazy coercion;
    returns ``command``."""
    on_value = _on_value()
    if on_value is None:  # pragma: no cover - see the module docstring
        return command
    # --help is one of typer's parameters too, made on first use and cached: make it now
    help_option = command.get_help_option(
        command.context_class(command, **command.context_settings)
    )
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        desc = getattr(param, "type_descriptor", None)  # typer's parameters only
        if desc is not None and getattr(param, "_runtime_param", False) is None:
            param._runtime_param = on_value(
                parameter_info=desc.parameter_info, annotation=desc.annotation, descriptor=desc
            )
    for sub in (getattr(command, "commands", None) or {}).values():
        defer_coercion(sub)
    return command
