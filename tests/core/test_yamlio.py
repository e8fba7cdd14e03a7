"""``adapters.yamlio``: strict safe YAML on libyaml's parser, equal to the pure-Python one.

The loader moved onto ``yaml.CSafeLoader`` (the registry parses in ~2 ms instead of ~17 ms, at
every command and worker start; issue 16). What must not move: the values, the refusal of
duplicate keys with their line, and safe loading (no Python objects from tags).
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import pytest
import yaml

from autolearn.adapters import yamlio
from autolearn.errors import ConfigError


class _PureStrict(yaml.SafeLoader):
    """The previous loader: the pure-Python SafeLoader with the same duplicate-key check."""


_PureStrict.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    yamlio._construct_mapping,
)


def _pure(text: str) -> Any:
    return yaml.load(text, Loader=_PureStrict)


def test_libyaml_is_used_when_pyyaml_has_it() -> None:
    if not yaml.__with_libyaml__:
        pytest.skip("this PyYAML was built without libyaml: the pure loader is used")
    assert issubclass(yamlio._StrictLoader, yaml.CSafeLoader)


@pytest.mark.parametrize("name", ["knobs.yaml", "gates.yaml", "quantrabbit_paths.yaml"])
def test_packaged_files_load_to_the_same_values(name: str) -> None:
    text = (files("autolearn") / "data" / name).read_text(encoding="utf-8")
    assert yamlio.load_yaml_text(text, name) == _pure(text)


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\nb: [1, 2.5, -3e2, .inf, .nan]\nc: {d: null, e: ~, f: true, g: 'x'}\n",
        "t: 2025-10-22T08:00:00Z\nd: 2025-10-22\nn: 0o17\nh: 0x1F\ns: '010'\n",
        "multi: |\n  line one\n  line two\nfolded: >\n  a\n  b\nanchor: &x {k: 1}\nref: *x\n",
        "unicode: ユーロ円\nempty:\nlist:\n- - nested\n",
    ],
)
def test_values_equal_the_pure_loaders(text: str) -> None:
    ours, theirs = yamlio.load_yaml_text(text, "t"), _pure(text)
    assert repr(ours) == repr(theirs)  # repr: nan compares unequal to itself


def test_a_duplicate_key_is_refused_with_its_line() -> None:
    with pytest.raises(ConfigError, match=r"duplicate key 'a' \(first at line 2\)") as info:
        yamlio.load_yaml_text("x: 0\na: 1\nb: 2\na: 3\n", "knobs.yaml")
    assert "knobs.yaml" in str(info.value) and "line 4" in str(info.value)


def test_python_tags_are_refused() -> None:
    with pytest.raises(ConfigError, match="invalid YAML"):
        yamlio.load_yaml_text("x: !!python/object/apply:os.system ['true']\n", "evil.yaml")


def test_malformed_yaml_names_the_source() -> None:
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML"):
        yamlio.load_yaml_text("a: [1, 2\nb: 3\n", "bad.yaml")
