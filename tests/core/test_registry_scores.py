"""Entry-threshold knobs in the registry: ``score``/``admits`` parsed, refused with dotted paths."""

from __future__ import annotations

from typing import Any

import pytest

from autolearn.core.knobs import KnobSpec, KnobType, Owner
from autolearn.core.ownership_doc import render_ownership_doc
from autolearn.core.registry import parse_registry
from autolearn.errors import ConfigError
from autolearn.settings import load_registry


def _doc(**knob: Any) -> dict[str, Any]:
    spec = {"owner": "tuner", "type": "float", "default": 0.65, "bounds": [0.55, 0.75]}
    spec |= {"step": 0.01}
    spec.update(knob)
    return {"schema_version": 1, "pockets": ["micro"], "knobs": {"strategies.A.min_conf": spec}}


class TestPackagedThresholds:
    @pytest.mark.parametrize(
        ("knob", "score"),
        [
            ("strategies.MomentumPulse.min_confidence", "confidence"),
            ("strategies.MicroVWAPRevert.vwap_z_min", "vwap_z_abs"),
            ("strategies.VolCompressionBreak.accel_pctile", "accel_pctile"),
        ],
    )
    def test_entry_thresholds_name_their_score(self, knob: str, score: str) -> None:
        """The three micro entry thresholds compare their score and admit above the value."""
        spec = load_registry(None).spec(knob)
        assert (spec.score, spec.admits) == (score, "above")

    def test_other_knobs_have_no_score(self) -> None:
        """A knob that is not an entry threshold carries neither field."""
        spec = load_registry(None).spec("exit.lowvol.upper_bound_max_sec")
        assert (spec.score, spec.admits) == (None, None)

    def test_ownership_doc_shows_the_admission_rule(self) -> None:
        """The generated table has an admits column with the score and its direction."""
        text = render_ownership_doc(load_registry(None))
        assert "| admits |" in text
        assert "`confidence` ≥ value" in text


class TestParsing:
    @pytest.mark.parametrize("admits", ["above", "below"])
    def test_score_and_admits_are_parsed(self, admits: str) -> None:
        """Both keys given: the spec carries them."""
        spec = parse_registry(_doc(score="conf", admits=admits)).spec("strategies.A.min_conf")
        assert (spec.score, spec.admits) == ("conf", admits)

    def test_int_knob_may_compare_a_score(self) -> None:
        """An int threshold (a percentile) is an entry threshold too."""
        doc = _doc(type="int", default=75, bounds=[60, 85], step=1, score="p", admits="above")
        assert parse_registry(doc).spec("strategies.A.min_conf").admits == "above"

    @pytest.mark.parametrize(
        ("knob", "fragment"),
        [
            ({"score": "conf"}, r"strategies\.A\.min_conf\.admits: score is set"),
            ({"admits": "above"}, r"strategies\.A\.min_conf\.score: admits is set"),
            ({"score": "conf", "admits": "over"}, r"min_conf\.admits: expected one of above"),
            ({"score": "", "admits": "above"}, r"min_conf\.score: expected a score name"),
            ({"score": 3, "admits": "above"}, r"min_conf\.score: expected a score name"),
            ({"score": "a b", "admits": "above"}, r"min_conf\.score: expected a score name"),
            (
                {"type": "bool", "default": True, "score": "c", "admits": "above"},
                r"min_conf\.score: only an int or float knob",
            ),
        ],
    )
    def test_each_invalid_combination_names_its_path(
        self, knob: dict[str, Any], fragment: str
    ) -> None:
        """A wrong or half-given score/admits is a ConfigError with the dotted path."""
        with pytest.raises(ConfigError, match=fragment):
            parse_registry(_doc(**knob))

    def test_pattern_knobs_keep_their_score(self) -> None:
        """A ``*`` knob resolves to a spec with the template's score and direction."""
        doc = _doc(score="conf", admits="below")
        doc["knobs"] = {"strategies.*.min_conf": doc["knobs"]["strategies.A.min_conf"]}
        spec = parse_registry(doc).spec("strategies.Anything.min_conf")
        assert (spec.score, spec.admits) == ("conf", "below")


class TestKnobSpecInvariant:
    @pytest.mark.parametrize(
        ("kwargs", "fragment"),
        [
            ({"score": "c"}, "go together"),
            ({"admits": "above"}, "go together"),
            ({"score": "c", "admits": "sideways"}, "admits must be one of"),
            ({"score": "c", "admits": "above", "type": KnobType.BOOL}, "int or float knob"),
        ],
    )
    def test_direct_construction_is_checked(self, kwargs: dict[str, Any], fragment: str) -> None:
        """A KnobSpec built in code obeys the registry's rule too."""
        fields: dict[str, Any] = {
            "name": "a.b",
            "owner": Owner.TUNER,
            "type": KnobType.FLOAT,
            "default": 1.0,
            "lower": 0.0,
            "upper": 2.0,
            "step": 0.5,
        }
        fields.update(kwargs)
        with pytest.raises(ValueError, match=fragment):
            KnobSpec(**fields)
