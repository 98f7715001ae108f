"""Each built-in condition, with the edge cases that decide whether a policy has a gap."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pytest

from aegis import Action, Approval

RULES = """
version: "1"
defaults: {{risk_level: low, approval: auto}}
rules:
  - name: guarded
    match: {{type: "op"}}
    conditions: {conditions}
    risk_level: high
    approval: {approval}
"""


def decide(make_policy, conditions: str, params=None, approval="block", now=None):
    policy = make_policy(RULES.format(conditions=conditions, approval=approval))
    return policy.evaluate(Action("op", "t", params=params or {}), now=now)


@pytest.mark.parametrize(
    ("cond", "value", "expected"),
    [
        ("param_gt: {n: 10}", 11, True),
        ("param_gt: {n: 10}", 10, False),
        ("param_gte: {n: 10}", 10, True),
        ("param_gte: {n: 10}", 9.5, False),
        ("param_lt: {n: 10}", 9, True),
        ("param_lt: {n: 10}", 10, False),
        ("param_lte: {n: 10}", 10, True),
        ("param_lte: {n: 10}", 10.01, False),
        ("param_gt: {n: 0.5}", Decimal("0.6"), True),
        ("param_eq: {n: 3}", 3, True),
        ("param_eq: {n: 3}", 3.0, True),
        ("param_eq: {n: 3}", 4, False),
        ("param_eq: {n: abc}", "abc", True),
        ("param_eq: {n: abc}", "ABC", False),
        ("param_eq: {n: true}", True, True),
        ("param_eq: {n: null}", None, True),
        ("param_eq: {n: [1, 2]}", [1, 2], True),
        ("param_contains: {n: DROP}", "x; DROP TABLE y", True),
        ("param_contains: {n: DROP}", "drop table", False),
        ("param_contains: {n: admin}", ["user", "admin"], True),
        ("param_contains: {n: admin}", ["user"], False),
        ("param_contains: {n: 3}", [1, 2, 3], True),
        ("param_matches: {n: '^rm\\s+-rf'}", "rm  -rf /", True),
        ("param_matches: {n: 'prod'}", "my-prod-db", True),
        ("param_matches: {n: '^prod'}", "my-prod-db", False),
        ("param_matches: {n: '(?i)^drop'}", "DROP table", True),
    ],
)
def test_condition_true_false(make_policy, cond, value, expected):
    decision = decide(make_policy, "{" + cond + "}", {"n": value})
    assert (decision.matched_rule == "guarded") is expected
    assert decision.unknown_conditions == ()


@pytest.mark.parametrize(
    ("cond", "params"),
    [
        ("param_gt: {n: 10}", {}),  # missing
        ("param_gt: {n: 10}", {"n": "11"}),  # string where number expected
        ("param_gt: {n: 10}", {"n": True}),  # bool is not a number
        ("param_gt: {n: 10}", {"n": math.nan}),
        ("param_lt: {n: 10}", {"n": None}),
        ("param_eq: {n: 1}", {"n": True}),  # True is not 1
        ("param_eq: {n: '5'}", {"n": 5}),
        ("param_eq: {n: null}", {"n": 0}),  # null is a type: a mismatch, as 0 vs None is
        ("param_eq: {n: 0}", {"n": None}),
        ("param_contains: {n: x}", {"n": 5}),
        ("param_contains: {n: x}", {"n": {"x": 1}}),
        ("param_matches: {n: x}", {"n": 5}),
        ("param_matches: {n: x}", {"n": "x" * 10_001}),  # too large to check
    ],
)
def test_unevaluable_is_unknown_and_blocks(make_policy, cond, params):
    decision = decide(make_policy, "{" + cond + "}", params, approval="block")
    assert decision.approval is Approval.BLOCK
    assert decision.matched_rule == "guarded"
    assert decision.unknown_conditions == (cond.split(":")[0],)
    assert "unknown" in decision.reason


def test_unknown_on_auto_rule_falls_through(make_policy):
    policy = make_policy(
        """
        defaults: {risk_level: medium, approval: approve}
        rules:
          - name: small_is_fine
            match: {type: pay}
            conditions: {param_lt: {amount: 100}}
            risk_level: low
            approval: auto
        """
    )
    ok = policy.evaluate(Action("pay", "bank", {"amount": 5}))
    assert ok.approval is Approval.AUTO
    for params in ({}, {"amount": "5"}, {"amount": math.nan}, {"amount": False}):
        decision = policy.evaluate(Action("pay", "bank", params))
        assert decision.approval is Approval.APPROVE, params
        assert decision.matched_rule is None
        assert decision.unknown_conditions == ("param_lt",)
        assert "skipped" in decision.reason


def test_unknown_on_approve_rule_matches(make_policy):
    decision = decide(make_policy, "{param_gt: {n: 1}}", {}, approval="approve")
    assert decision.approval is Approval.APPROVE
    assert decision.matched_rule == "guarded"
    assert decision.unknown_conditions == ("param_gt",)


def test_never_laxer_a_later_block_rule_still_blocks(make_policy):
    policy = make_policy(
        """
        defaults: {risk_level: low, approval: auto}
        rules:
          - name: big_needs_approval
            match: {type: "transfer*"}
            conditions: {param_gt: {amount: 1000}}
            risk_level: high
            approval: approve
          - name: no_transfers_to_offshore
            match: {type: "transfer*", target: "offshore*"}
            risk_level: critical
            approval: block
        """
    )
    # amount missing: the approve rule only matches through unknown; the block rule behind it
    # would have decided otherwise, and is stricter.
    decision = policy.evaluate(Action("transfer", "offshore_acct", {}))
    assert decision.approval is Approval.BLOCK
    assert decision.matched_rule == "no_transfers_to_offshore"
    assert decision.unknown_conditions == ("param_gt",)
    # A fall-through that is laxer leaves the approve rule in charge.
    decision = policy.evaluate(Action("transfer", "savings", {}))
    assert decision.approval is Approval.APPROVE
    assert decision.matched_rule == "big_needs_approval"
    # And a real match is a real match.
    decision = policy.evaluate(Action("transfer", "savings", {"amount": 5000}))
    assert (decision.approval, decision.unknown_conditions) == (Approval.APPROVE, ())


def test_never_laxer_against_strict_defaults(make_policy):
    policy = make_policy(
        """
        defaults: {risk_level: critical, approval: block}
        rules:
          - name: approve_big
            match: {type: x}
            conditions: {param_gt: {n: 5}}
            risk_level: low
            approval: approve
        """
    )
    decision = policy.evaluate(Action("x", "t"))
    assert decision.approval is Approval.BLOCK
    assert decision.risk_level.name == "CRITICAL"


def test_dotted_paths(make_policy):
    cond = "{param_gt: {amount.value: 100}}"
    assert decide(make_policy, cond, {"amount": {"value": 500}}).matched_rule == "guarded"
    low = decide(make_policy, cond, {"amount": {"value": 5}}, approval="block")
    assert low.matched_rule is None
    literal = decide(make_policy, cond, {"amount.value": 500})
    assert literal.matched_rule == "guarded" and literal.unknown_conditions == ()
    same = decide(make_policy, cond, {"amount.value": 500, "amount": {"value": 500}})
    assert same.unknown_conditions == ()
    items = decide(
        make_policy, "{param_eq: {items.1.sku: b}}", {"items": [{"sku": "a"}, {"sku": "b"}]}
    )
    assert items.matched_rule == "guarded"


def test_dotted_path_ambiguity_is_unknown(make_policy):
    # An agent must not pick which of two values the condition sees.
    params = {"amount.value": 5, "amount": {"value": 5000}}
    block = decide(make_policy, "{param_lt: {amount.value: 100}}", params, approval="block")
    assert block.matched_rule == "guarded"
    assert block.unknown_conditions == ("param_lt",)
    auto = decide(make_policy, "{param_lt: {amount.value: 100}}", params, approval="auto")
    assert auto.matched_rule is None


def test_several_paths_in_one_condition_are_anded(make_policy):
    cond = "{param_gt: {a: 1, b: 1}}"
    assert decide(make_policy, cond, {"a": 2, "b": 2}).matched_rule == "guarded"
    assert decide(make_policy, cond, {"a": 2, "b": 0}).matched_rule is None
    # False beats unknown in an AND: the rule certainly does not apply.
    assert decide(make_policy, cond, {"a": 0}).unknown_conditions == ()


def test_several_conditions_are_anded(make_policy):
    cond = "{param_gt: {n: 1}, param_matches: {s: ok}}"
    assert decide(make_policy, cond, {"n": 2, "s": "ok"}).matched_rule == "guarded"
    assert decide(make_policy, cond, {"n": 2, "s": "no"}).matched_rule is None


@pytest.mark.parametrize(
    ("cond", "params", "expected", "unknown"),
    [
        ("{any: [{param_eq: {a: 1}}, {param_eq: {b: 1}}]}", {"a": 1}, True, ()),
        ("{any: [{param_eq: {a: 1}}, {param_eq: {b: 1}}]}", {"a": 2, "b": 2}, False, ()),
        ("{any: [{param_eq: {a: 1}}, {param_eq: {b: 1}}]}", {"a": 2}, None, ("param_eq",)),
        ("{any: [{param_eq: {a: 1}}, {param_gt: {b: 1}}]}", {"a": 1}, True, ()),
        ("{all: [{param_eq: {a: 1}}, {param_gt: {b: 1}}]}", {"a": 1, "b": 2}, True, ()),
        ("{all: [{param_eq: {a: 1}}, {param_gt: {b: 1}}]}", {"a": 2}, False, ()),
        ("{all: [{param_eq: {a: 1}}, {param_gt: {b: 1}}]}", {"a": 1}, None, ("param_gt",)),
        ("{not: {param_eq: {a: 1}}}", {"a": 2}, True, ()),
        ("{not: {param_eq: {a: 1}}}", {"a": 1}, False, ()),
        ("{not: {param_eq: {a: 1}}}", {}, None, ("param_eq",)),
        (
            "{not: {any: [{param_eq: {a: 1}}, {all: [{param_gt: {b: 1}}, {not: "
            "{param_contains: {c: x}}}]}]}}",
            {"a": 2, "b": 5, "c": "y"},
            False,
            (),
        ),
    ],
)
def test_combinators_kleene(make_policy, cond, params, expected, unknown):
    for approval in ("block", "auto"):
        decision = decide(make_policy, cond, params, approval=approval)
        matched = decision.matched_rule == "guarded"
        if expected is None:
            assert matched is (approval == "block")
        else:
            assert matched is expected
        assert decision.unknown_conditions == unknown


def test_time_after_and_before(make_policy, clock):
    after = "{time_after: '18:00'}"
    assert decide(make_policy, after, now=clock(18, 0)).matched_rule == "guarded"
    assert decide(make_policy, after, now=clock(23, 59)).matched_rule == "guarded"
    assert decide(make_policy, after, now=clock(17, 59)).matched_rule is None
    before = "{time_before: '08:00'}"
    assert decide(make_policy, before, now=clock(7, 59)).matched_rule == "guarded"
    assert decide(make_policy, before, now=clock(8, 0)).matched_rule is None


@pytest.mark.parametrize(
    ("hour", "minute", "inside"),
    [
        (18, 0, True),
        (22, 0, True),
        (23, 59, True),
        (0, 0, True),
        (3, 30, True),
        (7, 59, True),
        (8, 0, False),
        (12, 0, False),
        (17, 59, False),
    ],
)
def test_overnight_window_both_sides_of_midnight(make_policy, clock, hour, minute, inside):
    cond = "{time_after: '18:00', time_before: '08:00'}"
    decision = decide(make_policy, cond, now=clock(hour, minute))
    assert (decision.matched_rule == "guarded") is inside


@pytest.mark.parametrize(("hour", "inside"), [(8, False), (9, True), (16, True), (17, False)])
def test_daytime_window(make_policy, clock, hour, inside):
    cond = "{time_after: '09:00', time_before: '17:00'}"
    assert (decide(make_policy, cond, now=clock(hour)).matched_rule == "guarded") is inside


def test_time_uses_policy_timezone(make_policy, clock):
    policy = make_policy(
        """
        timezone: America/New_York
        defaults: {approval: auto, risk_level: low}
        rules:
          - name: after_hours
            match: {type: write}
            conditions: {time_after: "18:00", time_before: "08:00"}
            approval: block
        """
    )
    action = Action("write", "db")
    # 23:00 UTC in June is 19:00 in New York: after hours there.
    assert policy.evaluate(action, now=clock(23, 0)).approval is Approval.BLOCK
    # 14:00 UTC is 10:00 in New York.
    assert policy.evaluate(action, now=clock(14, 0)).approval is Approval.AUTO
    # The same instant expressed in another zone decides the same.
    assert policy.evaluate(action, now=clock(1, 0, tz="Europe/Berlin")).approval is Approval.BLOCK
    # A naive datetime is read in the policy's zone.
    assert policy.evaluate(action, now=dt.datetime(2024, 6, 5, 19, 0)).approval is Approval.BLOCK


def test_weekdays(make_policy, clock):
    cond = "{weekdays: [1, 2, 3, 4, 5]}"
    assert decide(make_policy, cond, now=clock(12)).matched_rule == "guarded"  # Wednesday
    saturday = dt.date(2024, 6, 8)
    assert decide(make_policy, cond, now=clock(12, day=saturday)).matched_rule is None
    sunday = dt.date(2024, 6, 9)
    assert decide(make_policy, "{weekdays: [7]}", now=clock(1, day=sunday)).matched_rule


def test_weekday_follows_policy_timezone(make_policy, clock):
    policy = make_policy(
        """
        timezone: Asia/Tokyo
        rules:
          - name: weekend
            match: {type: x}
            conditions: {weekdays: [6, 7]}
            approval: block
        """
    )
    # Friday 20:00 UTC is Saturday 05:00 in Tokyo.
    friday = dt.date(2024, 6, 7)
    assert policy.evaluate(Action("x", "y"), now=clock(20, day=friday)).approval is Approval.BLOCK


def test_now_defaults_to_current_time(make_policy):
    decision = decide(make_policy, "{time_after: '00:00'}")
    assert decision.matched_rule == "guarded"
