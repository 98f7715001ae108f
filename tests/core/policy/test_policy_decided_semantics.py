"""The cases the README's "Decided semantics" settles, one test each (schema, loader, evaluator).

A differential test against an evaluator written from the README found these open; each test
here pins the decision so a change of mind has to be made on purpose.
"""

from __future__ import annotations

import pytest

from aegis import Action, Approval, Policy, PolicyError
from aegis.core.schema import policy_schema


def _policy(rules: str, defaults: str = "{risk_level: low, approval: auto}") -> Policy:
    return Policy.from_yaml_string(f"defaults: {defaults}\nrules:\n{rules}", source="policy.yaml")


# --- null is a type like any other --------------------------------------------------------

NULL_BLOCK = """\
  - {name: no_tags, match: {type: tag}, conditions: {param_eq: {tags: null}}, approval: block}
  - {name: tag_ok, match: {type: tag}, approval: auto}
"""


@pytest.mark.parametrize("value", [-1.5, 0, "", [], {}, False])
def test_null_against_a_non_null_value_is_unknown_and_a_block_rule_holds(value: object) -> None:
    decision = _policy(NULL_BLOCK).evaluate(Action("tag", "t", {"tags": value}))
    assert (decision.matched_rule, decision.approval) == ("no_tags", Approval.BLOCK)
    assert decision.unknown_conditions == ("param_eq",)


def test_null_equals_null_and_a_non_null_operand_against_null_is_unknown() -> None:
    assert _policy(NULL_BLOCK).evaluate(Action("tag", "t", {"tags": None})).unknown_conditions == ()
    zero = _policy(
        "  - {name: z, match: {type: tag}, conditions: {param_eq: {n: 0}}, approval: block}\n"
    ).evaluate(Action("tag", "t", {"n": None}))
    assert (zero.approval, zero.unknown_conditions) == (Approval.BLOCK, ("param_eq",))


def test_null_mismatch_on_an_auto_rule_falls_through() -> None:
    policy = _policy(
        "  - {name: untagged_ok, match: {type: tag}, conditions: {param_eq: {tags: null}},"
        " approval: auto}\n",
        defaults="{approval: approve}",
    )
    decision = policy.evaluate(Action("tag", "t", {"tags": ["x"]}))
    assert (decision.matched_rule, decision.approval) == (None, Approval.APPROVE)


# --- list indexes are ASCII digits ----------------------------------------------------------

INDEX_AUTO = """\
  - {name: first_ok, match: {type: op}, conditions: {param_eq: {"items.0": ok}}, approval: auto}
"""


@pytest.mark.parametrize("segment", ["\u0660", "\u00b2", "01", "\uff10"])
def test_non_ascii_or_padded_digits_do_not_index_a_list(segment: str) -> None:
    policy = _policy(
        "  - {name: first_ok, match: {type: op}, conditions: {param_eq: {"
        f'"items.{segment}": ok}}}}, approval: auto}}\n',
        defaults="{approval: block}",
    )
    decision = policy.evaluate(Action("op", "t", {"items": ["ok"]}))
    assert decision.approval is Approval.BLOCK  # missing -> unknown -> the auto rule is skipped


def test_ascii_digits_index_a_list() -> None:
    policy = _policy(INDEX_AUTO, defaults="{approval: block}")
    assert policy.evaluate(Action("op", "t", {"items": ["ok"]})).matched_rule == "first_ok"


# --- a literal dotted key ------------------------------------------------------------------

DOTTED = """\
  - {name: admins, match: {type: op}, conditions: {param_eq: {user.role: admin}}, approval: block}
"""


def test_a_literal_dotted_key_is_used_when_the_nested_path_is_absent() -> None:
    decision = _policy(DOTTED).evaluate(Action("op", "t", {"user.role": "admin"}))
    assert (decision.matched_rule, decision.unknown_conditions) == ("admins", ())


def test_literal_and_nested_values_that_differ_are_unknown() -> None:
    params = {"user.role": "guest", "user": {"role": "admin"}}
    decision = _policy(DOTTED).evaluate(Action("op", "t", params))
    assert (decision.approval, decision.unknown_conditions) == (Approval.BLOCK, ("param_eq",))


# --- actions without an agent id ----------------------------------------------------------


def test_no_agent_id_matches_star_and_is_unknown_for_other_agent_globs() -> None:
    policy = _policy(
        "  - {name: bots_ok, match: {agent: 'bot*'}, approval: auto}\n"
        "  - {name: anyone, match: {agent: '*', type: 'delete*'}, approval: block}\n",
        defaults="{approval: approve}",
    )
    read = policy.evaluate(Action("read", "t"))
    assert (read.matched_rule, read.approval) == (None, Approval.APPROVE)
    assert read.unknown_conditions == ("match.agent",)
    assert policy.evaluate(Action("read", "t", agent_id="bot-1")).approval is Approval.AUTO
    assert policy.evaluate(Action("delete_x", "t")).matched_rule == "anyone"


# --- approve through unknown: a stricter later rule wins ----------------------------------


def test_approve_through_unknown_lets_a_later_block_rule_win() -> None:
    policy = _policy(
        "  - {name: big, match: {type: pay}, conditions: {param_gt: {amount: 100}},"
        " approval: approve}\n"
        "  - {name: to_sanctioned, match: {type: pay, target: 'sanctioned*'}, approval: block}\n"
        "  - {name: rest, match: {type: pay}, approval: auto}\n"
    )
    blocked = policy.evaluate(Action("pay", "sanctioned_bank", {"amount": "lots"}))
    assert (blocked.matched_rule, blocked.approval) == ("to_sanctioned", Approval.BLOCK)
    held = policy.evaluate(Action("pay", "bank", {"amount": "lots"}))
    assert (held.matched_rule, held.approval) == ("big", Approval.APPROVE)  # auto is not stricter


# --- time_after == time_before ---------------------------------------------------------------


@pytest.mark.parametrize(("after", "before"), [("10:00", "10:00"), ("10:00", "10:00:00")])
def test_equal_time_window_is_rejected_at_load_with_a_position(after: str, before: str) -> None:
    with pytest.raises(PolicyError) as info:
        _policy(
            "  - name: never\n    conditions:\n"
            f"      time_after: '{after}'\n      time_before: '{before}'\n"
        )
    assert str(info.value).startswith("policy.yaml:6:20: rules[0].conditions.time_before: ")
    assert "empty" in str(info.value)


def test_the_schema_says_equal_times_are_rejected() -> None:
    props = policy_schema()["$defs"]["conditions"]["properties"]
    assert "rejected when the policy is loaded" in props["time_before"]["description"]
