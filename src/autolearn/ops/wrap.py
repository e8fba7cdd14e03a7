"""Wrap operator text at word and segment boundaries, never inside a token if it can be helped.

Pure: text and a width in, lines out. Rich folds a token longer than its column at any
character, so a status row read ``block_negati`` / ``ve_expectancy`` and a knob
``strategi`` / ``es.TrendMA``. Here a line breaks at a space; a token longer than the width
breaks after a segment separator (``.`` ``_`` ``/`` ``:`` ``,`` ``-`` ``=``), so each piece
is still a readable part of the name; only a segment longer than the width is cut, as a last
resort.
"""

from __future__ import annotations

import re

__all__ = ["wrap_segments"]

_PIECES = re.compile(r"[^._/:,=\-]*[._/:,=\-]|[^._/:,=\-]+")


def _split_token(token: str, width: int, start: str = "") -> list[str]:
    """``start`` (the line so far, may be empty) continued by a token longer than ``width``,
    as lines of whole segments; a segment is cut only when it alone is wider than ``width``."""
    lines: list[str] = []
    current = f"{start} " if start else ""
    for piece in _PIECES.findall(token):
        if len(current) + len(piece) > width and current.strip():
            lines.append(current.rstrip())
            current = ""
        while len(current) + len(piece) > width:  # one segment wider than the column
            cut = width - len(current)
            lines.append(current + piece[:cut])
            current, piece = "", piece[cut:]
        current += piece
    if current:
        lines.append(current)
    return lines


def wrap_segments(text: str, width: int) -> list[str]:
    """``text`` as lines of at most ``width`` characters, broken at spaces, then segments.

    Joining the lines (with a space where a space was, nothing where a token was split) gives
    ``text`` back with runs of spaces collapsed. Existing newlines are kept.
    """
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    out: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if len(candidate) <= width:
                line = candidate
                continue
            if len(word) <= width:
                out.append(line)
                line = word
                continue
            # a token wider than the column: its first segments finish the current line
            *full, line = _split_token(word, width, line)
            out.extend(full)
        out.append(line)
    return out
