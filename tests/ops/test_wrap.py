"""Operator text wraps at words and name segments, never past the width."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autolearn.ops.wrap import wrap_segments


class TestWrapSegments:
    def test_words_move_whole_to_the_next_line(self) -> None:
        """A line breaks at a space; short words are never split."""
        assert wrap_segments("freeze: stale_ledger, min_trades", 14) == [
            "freeze:",
            "stale_ledger,",
            "min_trades",
        ]

    def test_a_long_name_breaks_after_its_separators(self) -> None:
        """A token wider than the column breaks after '.', '_' or ':', keeping each segment."""
        lines = wrap_segments("exit.lowvol.upper_bound_max_sec", 12)
        assert lines == ["exit.lowvol.", "upper_bound_", "max_sec"]

    def test_a_long_token_first_finishes_the_current_line(self) -> None:
        """A timestamp after "at" starts on the same line and breaks after a separator."""
        assert wrap_segments("enabled at 2026-12-01T22:13:04.151299Z: go", 23) == [
            "enabled at 2026-12-",
            "01T22:13:04.151299Z: go",
        ]

    def test_a_segment_wider_than_the_column_is_cut(self) -> None:
        """Only a segment longer than the width itself is cut (no better place exists)."""
        assert wrap_segments("abcdefghij", 4) == ["abcd", "efgh", "ij"]

    def test_rejects_a_width_below_one(self) -> None:
        """A zero width is a caller bug, not an empty result."""
        with pytest.raises(ValueError, match="width"):
            wrap_segments("x", 0)

    @given(
        st.text(alphabet=st.sampled_from("ab._:/ -"), max_size=80),
        st.integers(min_value=1, max_value=30),
    )
    def test_fits_and_loses_nothing(self, text: str, width: int) -> None:
        """Every line fits; the non-space characters come back in order."""
        lines = wrap_segments(text, width)
        assert all(len(line) <= width for line in lines)
        assert "".join(lines).replace(" ", "") == text.replace(" ", "")

    @given(
        st.lists(st.text(alphabet="abc", min_size=1, max_size=8), min_size=1, max_size=12),
        st.integers(min_value=8, max_value=40),
    )
    def test_words_that_fit_are_never_split(self, words: list[str], width: int) -> None:
        """Words no wider than the column each land whole on one line."""
        lines = wrap_segments(" ".join(words), width)
        assert [w for line in lines for w in line.split()] == words
