"""param_eq on lists and mappings keeps its type rules: ``True`` is not ``1`` inside them either.

Before the fix, containers were compared with Python ``==``, so an ``auto`` rule meant for
``flags: [0, 1]`` also waved through ``[False, True]`` — a mistyped value made the decision
laxer instead of unknown.
"""

from __future__ import annotations

from typing import Any

import pytest

from aegis import Action, Policy
from aegis.core.risk import Approval

POLICY = """
version: "1"
defaults: {risk_level: high, approval: approve}
rules:
  - name: safe_flags
    match: {type: run}
    conditions: {param_eq: {flags: [0, 1]}}
    approval: auto
  - name: safe_opts
    match: {type: configure}
    conditions: {param_eq: {opts: {force: false, level: 2}}}
    approval: auto
"""


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.from_yaml_string(POLICY)


@pytest.mark.parametrize(
    ("type_", "params"),
    [
        ("run", {"flags": [False, True]}),
        ("run", {"flags": ["0", "1"]}),
        ("configure", {"opts": {"force": 0, "level": 2}}),
        ("configure", {"opts": {"force": False, "level": True}}),
    ],
)
def test_mistyped_container_members_do_not_match_an_auto_rule(
    policy: Policy, type_: str, params: dict[str, Any]
) -> None:
    decision = policy.evaluate(Action(type_, "crm", params=params))
    assert decision.approval is Approval.APPROVE
    assert decision.matched_rule is None


@pytest.mark.parametrize(
    ("type_", "params"),
    [
        ("run", {"flags": [0, 1]}),
        ("run", {"flags": (0, 1.0)}),
        ("configure", {"opts": {"force": False, "level": 2}}),
    ],
)
def test_equal_containers_still_match(policy: Policy, type_: str, params: dict[str, Any]) -> None:
    assert policy.evaluate(Action(type_, "crm", params=params)).approval is Approval.AUTO
