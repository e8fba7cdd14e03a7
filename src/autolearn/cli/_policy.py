"""Placeholder: filled by the mechanism's module."""

__all__: list[str] = []
