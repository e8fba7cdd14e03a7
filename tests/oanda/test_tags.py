"""Client-extensions convention: our tag format, QuantRabbit fallbacks, the 128-char limit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autolearn.oanda.tags import (
    MAX_CLIENT_FIELD_CHARS,
    ClientTags,
    format_client_tag,
    parse_client_extensions,
)

_VALUE = st.from_regex(r"[A-Za-z0-9_.:+-]{1,30}", fullmatch=True)


class TestOurConvention:
    def test_full_tag_gives_pocket_strategy_and_config(self):
        """pocket=;strategy=;cfg= are read back, and the id becomes the client order id."""
        tags = parse_client_extensions(
            {"id": "al-1-micro-X", "tag": "pocket=micro;strategy=MicroVWAPRevert;cfg=v42"}
        )
        assert tags == ClientTags(
            pocket="micro",
            strategy="MicroVWAPRevert",
            config_version="v42",
            client_order_id="al-1-micro-X",
        )

    def test_order_spaces_and_unknown_keys_do_not_matter(self):
        """Keys in any order, spaces around them and unknown keys are all tolerated."""
        tags = parse_client_extensions({"tag": " cfg=7 ; x=1;strategy=S ;pocket=MACRO"})
        assert (tags.pocket, tags.strategy, tags.config_version) == ("macro", "S", "7")

    @given(pocket=_VALUE, strategy=_VALUE, cfg=_VALUE)
    def test_format_then_parse_round_trips(self, pocket, strategy, cfg):
        """Whatever format_client_tag accepts, parse_client_extensions reads back unchanged."""
        try:
            tag = format_client_tag(pocket=pocket, strategy=strategy, config_version=cfg)
        except ValueError:
            return  # only the length limit can refuse these values
        tags = parse_client_extensions({"tag": tag})
        assert (tags.pocket, tags.strategy, tags.config_version) == (
            pocket.lower(),
            strategy,
            cfg,
        )

    def test_tag_over_128_characters_is_refused(self):
        """OANDA refuses 129-character tags, so the writer side refuses them first."""
        with pytest.raises(ValueError, match="OANDA allows 128"):
            format_client_tag(pocket="micro", strategy="S" * 120)
        assert len(format_client_tag(pocket="m", strategy="s" * 110)) == MAX_CLIENT_FIELD_CHARS

    @pytest.mark.parametrize("value", ["a;b", "a=b", "a b", ""])
    def test_separators_in_values_are_refused(self, value):
        """A value containing ';', '=' or spaces would corrupt the tag, so it is refused."""
        with pytest.raises(ValueError, match="client tag"):
            format_client_tag(pocket="micro", strategy=value)


class TestQuantRabbitFallbacks:
    @pytest.mark.parametrize(
        ("ext", "expected"),
        [
            # Real pairs from QuantRabbit's orders.db: the tag's pocket wins over the id's.
            (
                {"id": "qr-1761123266662-macro-BBRSIlong", "tag": "pocket=micro"},
                ("micro", "BBRSIlong"),
            ),
            (
                {"id": "qr-1761123266218-macro-TrendMAbe", "tag": "pocket=macro"},
                ("macro", "TrendMAbe"),
            ),
            (
                {"id": "qr-fast-1761810778001-s243aa6", "tag": "pocket=scalp_fast"},
                ("scalp_fast", "fast_scalp"),
            ),
            # Id only: the pocket segment is used when it is a known pocket.
            ({"id": "qr-1761123266218-scalp-M1Scalper"}, ("scalp", "M1Scalper")),
            ({"id": "qr-micro-1761123266-RangeFader"}, ("micro", "RangeFader")),
            ({"id": "qr-1761123266218-robot-X"}, ("manual", "X")),
            ({"id": "qs-fast-1761810778001-l9f04ce"}, ("scalp", "fast_scalp")),
            # Nothing usable: manual / unknown.
            ({}, ("manual", "unknown")),
            ({"id": "my-own-order", "tag": "hello", "comment": "by hand"}, ("manual", "unknown")),
        ],
    )
    def test_pocket_and_strategy(self, ext, expected):
        """Each documented fallback form yields the documented pocket and strategy."""
        tags = parse_client_extensions(ext)
        assert (tags.pocket, tags.strategy) == expected

    def test_fill_client_order_id_is_the_last_resort(self):
        """With no extensions, the fill's clientOrderID still yields the strategy."""
        tags = parse_client_extensions(None, fallback_id="qr-1761123266218-macro-TrendMAbe")
        assert (tags.pocket, tags.strategy, tags.client_order_id) == (
            "macro",
            "TrendMAbe",
            "qr-1761123266218-macro-TrendMAbe",
        )


@given(
    ext=st.one_of(
        st.none(),
        st.dictionaries(
            st.sampled_from(["id", "tag", "comment", "x"]),
            st.one_of(st.text(max_size=200), st.integers(), st.none(), st.lists(st.integers())),
        ),
    ),
    fallback=st.text(max_size=50),
)
def test_parse_never_raises_and_always_names_a_pocket_and_strategy(ext, fallback):
    """Any junk in the extensions still yields a non-empty pocket and strategy."""
    tags = parse_client_extensions(ext, fallback_id=fallback)
    assert tags.pocket and tags.strategy
