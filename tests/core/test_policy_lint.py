"""``aegis.core.policy_lint``: shadowed rules, overlaps with different decisions, auto default."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.core.action import Action
from aegis.core.policy import Policy
from aegis.core.policy_lint import lint


def _policy(*rules: dict[str, Any], defaults: str = "block", **extra: Any) -> Policy:
    return Policy.from_dict(
        {"version": "1", "defaults": {"approval": defaults}, "rules": list(rules), **extra}
    )


def _rule(name: str, approval: str = "block", **match: Any) -> dict[str, Any]:
    return {"name": name, "match": match, "approval": approval}


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ({"type": "delete*"}, {"type": "DELETE_user", "target": "crm"}),
        ({"type": "delete*"}, {"type": "delete_*"}),
        ({"type": ["read*", "delete*"]}, {"type": ["delete_a", "read"]}),
        ({}, {"type": "x"}),
        ({"type": "*"}, {"type": "a?c"}),
        ({"type": "a?c"}, {"type": "abc"}),
        ({"type": "x", "agent": "*"}, {"type": "x", "agent": "bot"}),
        ({"type": "x"}, {"type": "x"}),
    ],
)
def test_a_rule_an_earlier_unconditional_rule_covers_is_shadowed(
    earlier: dict[str, Any], later: dict[str, Any]
) -> None:
    found = lint(_policy(_rule("first", **earlier), _rule("second", **later)))
    assert any(m.startswith("rule 'second' can never match") for m in found), found


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ({"type": "delete_*"}, {"type": "delete*"}),  # the later one is wider
        ({"type": "delete*", "target": "crm"}, {"type": "delete*"}),
        ({"type": "x", "agent": "bot"}, {"type": "x"}),  # no agent id: unknown, not taken
        ({"type": "a?c"}, {"type": "a*"}),
    ],
)
def test_a_narrower_earlier_rule_does_not_shadow(
    earlier: dict[str, Any], later: dict[str, Any]
) -> None:
    found = lint(_policy(_rule("first", **earlier), _rule("second", **later)))
    assert not any("can never match" in m for m in found), found


def test_an_earlier_rule_with_conditions_does_not_shadow_but_overlaps() -> None:
    first = {**_rule("big", "block", type="export*"), "conditions": {"param_gt": {"n": 5}}}
    found = lint(_policy(first, _rule("exports", "approve", type="export*")))
    assert found == [
        "rules 'big' (block) and 'exports' (approve) overlap: an action fitting both "
        "(type export* / type export*) gets 'big''s decision whenever its conditions hold"
    ]


def test_disjoint_rules_and_same_decisions_are_not_overlaps() -> None:
    policy = _policy(
        _rule("a", "block", type="delete*"),
        _rule("b", "auto", type="read*"),
        _rule("c", "auto", type="read_x", target="t"),  # shadowed, reported once as such
        _rule("d", "approve", type="update*", target="note*"),
        _rule("e", "auto", type="update*", target="contact*"),
    )
    assert lint(policy) == [
        "rule 'c' can never match: the earlier rule 'b' (type read*, no conditions) takes "
        "every action it fits"
    ]


def test_an_auto_default_is_reported() -> None:
    assert lint(_policy(defaults="auto")) == [
        "defaults: approval is auto, so an action no rule names runs unattended (use approve "
        "or block)"
    ]
    assert lint(_policy(defaults="approve")) == []


NAME = st.sampled_from(["a", "ab", "abc", "b", "ba", "x"])
GLOB = st.sampled_from(["a*", "ab*", "ab", "*", "a?", "a?c", "b*", "[ab]"])


@settings(max_examples=300, deadline=None)
@given(GLOB, GLOB, st.booleans(), NAME, NAME)
def test_a_shadowed_rule_never_decides(
    first: str, second: str, with_target: bool, type_: str, target: str
) -> None:
    """If lint says a rule can never match, evaluate never picks it (for any action)."""
    later: dict[str, Any] = {"type": second}
    if with_target:
        later["target"] = first
    policy = _policy(_rule("first", "block", type=first), _rule("second", "auto", **later))
    if any("'second' can never match" in m for m in lint(policy)):
        assert policy.evaluate(Action(type_, target)).matched_rule != "second"
