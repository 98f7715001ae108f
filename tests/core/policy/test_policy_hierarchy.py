"""Org → team → agent: the most restrictive level wins and disagreements are reported."""

from __future__ import annotations

import pytest

from aegis import Action, Approval, Policy, PolicyError, PolicyHierarchy, RiskLevel

ORG = Policy.from_dict(
    {
        "defaults": {"risk_level": "low", "approval": "auto"},
        "rules": [
            {
                "name": "no_prod_deletes",
                "match": {"type": "delete*", "target": "prod*"},
                "risk_level": "critical",
                "approval": "block",
            }
        ],
    }
)
TEAM = Policy.from_dict(
    {
        "defaults": {"risk_level": "low", "approval": "auto"},
        "rules": [
            {
                "name": "deletes_need_ok",
                "match": {"type": "delete*"},
                "risk_level": "high",
                "approval": "approve",
            },
            {"name": "reads", "match": {"type": "read*"}, "approval": "auto"},
        ],
    }
)
AGENT = Policy.from_dict(
    {
        "defaults": {"risk_level": "medium", "approval": "auto"},
        "rules": [{"name": "agent_reads", "match": {"type": "read*"}, "approval": "auto"}],
    }
)


def hierarchy() -> PolicyHierarchy:
    return PolicyHierarchy([("org", ORG), ("team", TEAM), ("agent", AGENT)])


def test_most_restrictive_level_wins():
    decision = hierarchy().evaluate(Action("delete", "prod_db"))
    assert decision.approval is Approval.BLOCK
    assert decision.risk_level is RiskLevel.CRITICAL
    assert decision.matched_rule == "org/no_prod_deletes"
    assert "conflicts" in decision.reason


def test_risk_is_the_highest_even_when_approval_comes_from_elsewhere():
    decision = hierarchy().evaluate(Action("delete", "staging"))
    assert decision.approval is Approval.APPROVE
    assert decision.matched_rule == "team/deletes_need_ok"
    assert decision.risk_level is RiskLevel.HIGH


def test_lower_level_cannot_loosen():
    strict_org = Policy.from_dict({"rules": [{"name": "all", "approval": "block"}]})
    lax_agent = Policy.from_dict({"rules": [{"name": "all_ok", "approval": "auto"}]})
    decision = PolicyHierarchy([("org", strict_org), ("agent", lax_agent)]).evaluate(
        Action("read", "x")
    )
    assert decision.approval is Approval.BLOCK


def test_conflicts_for_an_action():
    found = hierarchy().conflicts(Action("delete", "prod_db"))
    pairs = {(c.level_a, c.level_b) for c in found}
    assert pairs == {("org", "team"), ("org", "agent"), ("team", "agent")}
    assert hierarchy().conflicts(Action("read", "x")) == []


def test_detect_conflicts_statically():
    found = hierarchy().detect_conflicts()
    described = {(c.level_a, c.rule_a, c.level_b, c.rule_b) for c in found}
    assert ("org", "no_prod_deletes", "team", "deletes_need_ok") in described
    # read rules agree (auto), and read* cannot overlap delete*.
    assert not any("reads" in (c.rule_a or "") or "reads" in (c.rule_b or "") for c in found)


def test_level_names_must_be_unique():
    with pytest.raises(PolicyError):
        PolicyHierarchy([("org", ORG), ("org", TEAM)])
