"""Hostile or broken policy files end in one PolicyError naming the place, never a traceback."""

from __future__ import annotations

import pytest

from aegis import Policy
from aegis.errors import PolicyError


def _rule_with_conditions(conditions: str) -> str:
    return f'version: "1"\nrules:\n  - name: r\n    conditions: {conditions}\n    approval: block\n'


def test_integer_with_more_digits_than_python_converts() -> None:
    text = _rule_with_conditions("{param_gt: {amount: " + "9" * 5000 + "}}")
    with pytest.raises(PolicyError) as caught:
        Policy.from_yaml_string(text, source="p.yaml")
    assert "p.yaml:4:" in str(caught.value)
    assert "too large" in str(caught.value)


@pytest.mark.parametrize("depth", [300, 3000])
def test_deeply_nested_conditions(depth: int) -> None:
    nested = "{not: " * depth + "{param_eq: {a: 1}}" + "}" * depth
    with pytest.raises(PolicyError) as caught:
        Policy.from_yaml_string(_rule_with_conditions(nested), source="p.yaml")
    assert "nested too deeply" in str(caught.value)
