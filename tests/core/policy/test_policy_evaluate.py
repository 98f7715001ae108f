"""Matching: globs, case, first match wins, defaults, agents, and the Policy API around it."""

from __future__ import annotations

import pickle

import pytest

from aegis import Action, Approval, Policy, PolicyError, RiskLevel
from quickstart_policy import QUICKSTART_POLICY

README_POLICY = QUICKSTART_POLICY


def test_readme_policy(make_policy):
    policy = make_policy(README_POLICY)
    read = policy.evaluate(Action("read", "crm"))
    assert (read.risk_level, read.approval, read.matched_rule) == (
        RiskLevel.LOW,
        Approval.AUTO,
        "read_safe",
    )
    bulk = policy.evaluate(Action("bulk_update", "crm", params={"count": 150}))
    assert (bulk.risk_level, bulk.approval) == (RiskLevel.HIGH, Approval.APPROVE)
    small = policy.evaluate(Action("bulk_update", "crm", params={"count": 5}))
    assert (small.matched_rule, small.approval) == (None, Approval.APPROVE)
    delete = policy.evaluate(Action("delete", "crm"))
    assert (delete.approval, delete.is_allowed) == (Approval.BLOCK, False)
    assert delete.policy_fingerprint == policy.fingerprint


@pytest.mark.parametrize("action_type", ["DELETE_user", "Delete", "delete", "dElEtE_all"])
def test_globs_are_case_insensitive_by_default(make_policy, action_type):
    decision = make_policy(README_POLICY).evaluate(Action(action_type, "crm"))
    assert decision.matched_rule == "no_deletes"


def test_case_sensitive_opt_in(make_policy):
    policy = make_policy(README_POLICY.replace('version: "1"', "case_sensitive: true"))
    assert policy.evaluate(Action("DELETE_user", "crm")).matched_rule is None
    assert policy.evaluate(Action("delete_user", "crm")).matched_rule == "no_deletes"


def test_non_ascii_case_folding_is_not_a_way_around(make_policy):
    policy = make_policy(
        """
        rules:
          - name: kill
            match: {type: "kill*"}
            approval: block
          - name: rest
            approval: auto
        """
    )
    # U+212A KELVIN SIGN folds to "k" under re.IGNORECASE.
    assert policy.evaluate(Action("\u212aill_all", "x")).matched_rule == "kill"
    assert policy.evaluate(Action("KILL", "x")).matched_rule == "kill"


def test_first_match_wins(make_policy):
    policy = make_policy(
        """
        rules:
          - {name: first, match: {type: "write*"}, risk_level: low, approval: auto}
          - {name: second, match: {type: "write_db"}, risk_level: critical, approval: block}
        """
    )
    assert policy.evaluate(Action("write_db", "x")).matched_rule == "first"


def test_match_fields_lists_and_absent(make_policy):
    policy = make_policy(
        """
        defaults: {approval: auto, risk_level: low}
        rules:
          - name: prod_writes
            match: {type: [write*, update*], target: ["prod-*", "*-prod"]}
            approval: approve
          - name: any_target_drop
            match: {type: drop}
            approval: block
          - name: bot_only
            match: {agent: "bot-?"}
            approval: block
        """
    )

    def rule_for(type_: str, target: str) -> str | None:
        return policy.evaluate(Action(type_, target, agent_id="ops")).matched_rule

    assert rule_for("update", "db-prod") == "prod_writes"
    assert rule_for("write", "prod-db") == "prod_writes"
    assert rule_for("write", "staging") is None
    assert rule_for("drop", "anything") == "any_target_drop"
    assert rule_for("drop_x", "anything") is None
    assert policy.evaluate(Action("read", "x", agent_id="bot-1")).matched_rule == "bot_only"
    assert policy.evaluate(Action("read", "x", agent_id="bot-12")).matched_rule is None


def test_agent_rule_without_agent_id_is_unknown(make_policy):
    policy = make_policy(
        """
        defaults: {approval: auto, risk_level: low}
        rules:
          - {name: trusted, match: {agent: "trusted-*"}, approval: auto}
          - {name: untrusted, match: {agent: "intern-*"}, approval: block}
        """
    )
    decision = policy.evaluate(Action("read", "x"))
    assert decision.matched_rule == "untrusted"
    assert decision.unknown_conditions == ("match.agent",)
    assert policy.evaluate(Action("read", "x", agent_id="trusted-1")).approval is Approval.AUTO


def test_no_defaults_means_approve(make_policy):
    policy = make_policy("rules: []\n")
    decision = policy.evaluate(Action("anything", "x"))
    assert (decision.approval, decision.risk_level) == (Approval.APPROVE, RiskLevel.MEDIUM)
    assert policy.defaults.approval is Approval.APPROVE


def test_rule_inherits_missing_fields_from_defaults(make_policy):
    policy = make_policy(
        """
        defaults: {risk_level: high}
        rules:
          - {name: a, match: {type: a}}
          - {name: b, match: {type: b}, approval: auto}
        """
    )
    a = policy.evaluate(Action("a", "x"))
    assert (a.risk_level, a.approval) == (RiskLevel.HIGH, Approval.APPROVE)
    b = policy.evaluate(Action("b", "x"))
    assert (b.risk_level, b.approval) == (RiskLevel.HIGH, Approval.AUTO)


def test_fingerprint_is_canonical(make_policy):
    one = make_policy(README_POLICY)
    reordered = Policy.from_dict(one.to_dict())
    assert reordered.fingerprint == one.fingerprint
    changed = make_policy(README_POLICY.replace("count: 100", "count: 101"))
    assert changed.fingerprint != one.fingerprint


def test_to_dict_round_trip_and_pickle(make_policy):
    policy = make_policy(README_POLICY)
    again = pickle.loads(pickle.dumps(policy))
    assert again.fingerprint == policy.fingerprint
    assert again.to_dict() == policy.to_dict()
    action = Action("bulk_update", "crm", params={"count": 150})
    assert again.evaluate(action).matched_rule == policy.evaluate(action).matched_rule
    assert (policy.version, policy.source) == ("1", "policy.yaml")


def test_merge_and_from_yaml_files(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text(
        "defaults: {risk_level: low, approval: auto}\n"
        "rules:\n  - {name: reads, match: {type: read*}, approval: auto}\n"
    )
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        "timezone: Europe/Berlin\ndefaults: {approval: block}\n"
        "rules:\n  - {name: deletes, match: {type: delete*}, approval: block}\n"
    )
    policy = Policy.from_yaml_files(base, extra)
    assert [r.name for r in policy.rules] == ["reads", "deletes"]
    # Later defaults override only what they set.
    assert (policy.defaults.risk_level, policy.defaults.approval) == (RiskLevel.LOW, Approval.BLOCK)
    assert policy.timezone == "Europe/Berlin"
    assert policy.sources == (str(base), str(extra))
    assert policy.evaluate(Action("delete_x", "y")).matched_rule == "deletes"
    merged = Policy.from_yaml(base).merge(Policy.from_yaml(extra))
    assert merged.fingerprint == policy.fingerprint


def test_merge_rejects_duplicate_rule_names_naming_both_places(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text("rules:\n  - name: shared\n    approval: auto\n")
    b = tmp_path / "b.yaml"
    b.write_text("rules:\n  - name: other\n  - name: shared\n    approval: block\n")
    with pytest.raises(PolicyError) as info:
        Policy.from_yaml_files(a, b)
    assert str(info.value) == (
        f"{b}:3:11: rules[1].name: duplicate rule name 'shared' (first defined at {a}:2:11)"
    )


def test_evaluate_is_stable_under_many_distinct_actions(make_policy):
    # More distinct actions than the candidate cache holds: answers must not change.
    policy = make_policy(README_POLICY)
    for i in range(5000):
        assert policy.evaluate(Action(f"read_{i}", f"t{i}")).matched_rule == "read_safe"
    assert policy.evaluate(Action("read_1", "t1")).matched_rule == "read_safe"
