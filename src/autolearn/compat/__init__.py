"""Adapters that let an existing bot consume autolearn unchanged (one subpackage per bot)."""

__all__: list[str] = []
