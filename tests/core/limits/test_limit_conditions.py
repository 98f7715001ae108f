"""The stateful conditions on their own: with an in-memory history, and without any."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from limits_helpers import policy

from aegis import Action, Policy
from aegis.core.stateful import MemoryLimitState
from aegis.errors import PolicyError

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


def run(p: Policy, action: Action, state: MemoryLimitState, at: dt.datetime = T0) -> str:
    """Decide, and keep the usage as the runtime does for an action that runs."""
    decision = p.evaluate(action, now=at, state=state)
    if decision.approval.value == "block":
        state.pending.clear()
    else:
        state.commit()
    return decision.approval.value


def test_without_a_state_a_stateful_condition_is_unknown_and_fails_closed() -> None:
    p = policy(
        """
  - name: limit
    match: {type: "delete*"}
    conditions: {rate_limit: {max: 10, per: 1m}}
    approval: block
  - name: reads-under-a-limit
    match: {type: "read*"}
    conditions: {not: {rate_limit: {max: 10, per: 1m}}}
    approval: auto
"""
    )
    blocked = p.evaluate(Action("delete_x", "crm"))
    assert blocked.approval.value == "block" and blocked.unknown_conditions == ("rate_limit",)
    # on an auto rule unknown does not match: the defaults (auto here) decide, not the rule
    assert p.evaluate(Action("read_x", "crm")).matched_rule is None


def test_rate_limit_the_eleventh_gets_the_rules_decision_and_the_window_slides() -> None:
    p = policy(
        """
  - name: limit
    match: {type: "delete*"}
    conditions: {rate_limit: {max: 10, per: 60s, key: agent}}
    approval: block
"""
    )
    state = MemoryLimitState()
    a = Action("delete_x", "crm", agent_id="bot")
    outcomes = [run(p, a, state, T0 + dt.timedelta(seconds=i)) for i in range(12)]
    assert outcomes == ["auto"] * 10 + ["block"] * 2
    other = Action("delete_x", "crm", agent_id="other-bot")  # key: agent
    assert run(p, other, state, T0 + dt.timedelta(seconds=12)) == "auto"
    assert run(p, a, state, T0 + dt.timedelta(seconds=60.5)) == "auto"  # the first left


def test_budget_stops_before_the_sum_passes_max() -> None:
    p = policy(
        """
  - name: spend
    match: {type: "pay*"}
    conditions: {budget: {param: amount, max: 100, per: 1h}}
    approval: block
"""
    )
    state = MemoryLimitState()
    pay = [Action("pay", "vendor", {"amount": n}, agent_id="a") for n in (60, 30, 20, 10)]
    assert [run(p, x, state) for x in pay] == ["auto", "auto", "block", "auto"]  # 60+30+10
    assert p.evaluate(Action("pay", "v", {"amount": "lots"}), state=state).unknown_conditions
    assert p.evaluate(Action("pay", "v", {"amount": -5}), state=state).approval.value == "block"


def test_repeat_is_about_the_same_action() -> None:
    p = policy(
        """
  - name: loop
    match: {type: "*"}
    conditions: {repeat: {max: 3, per: 10m}}
    approval: block
"""
    )
    state = MemoryLimitState()
    same = Action("run_tests", "repo", {"args": ["-x"]}, agent_id="coder")
    assert [run(p, same, state) for _ in range(4)] == ["auto"] * 3 + ["block"]
    changed = Action("run_tests", "repo", {"args": ["-k", "foo"]}, agent_id="coder")
    assert run(p, changed, state) == "auto"


def test_a_limit_counts_only_actions_it_stands_between_whatever_the_order() -> None:
    for conditions in (
        "{param_gt: {count: 100}, rate_limit: {max: 2, per: 1h}}",
        "{rate_limit: {max: 2, per: 1h}, param_gt: {count: 100}}",
        "{all: [{rate_limit: {max: 2, per: 1h}}, {param_gt: {count: 100}}]}",
    ):
        p = policy(
            f"""
  - name: big-deletes
    match: {{type: "delete*"}}
    conditions: {conditions}
    approval: block
"""
        )
        state = MemoryLimitState()
        small = Action("delete", "crm", {"count": 5})
        big = Action("delete", "crm", {"count": 500})
        assert [run(p, small, state) for _ in range(5)] == ["auto"] * 5
        assert [run(p, big, state) for _ in range(3)] == ["auto", "auto", "block"], conditions


def test_a_negated_limit_counts_the_actions_it_lets_through() -> None:
    p = policy(
        """
  - name: reads-while-under
    match: {type: "read*"}
    conditions: {not: {rate_limit: {max: 2, per: 1h}}}
    approval: auto
"""
    ).merge(Policy.from_yaml_string("version: '1'\ndefaults: {approval: block}\nrules: []"))
    state = MemoryLimitState()
    read = Action("read", "crm")
    assert [run(p, read, state) for _ in range(3)] == ["auto", "auto", "block"]


def test_sequence_blocks_the_last_step_only_after_the_earlier_ones_in_order() -> None:
    p = policy(
        """
  - name: exfil
    match: {type: "*"}
    conditions: {sequence: ["read_secret*", "decode*", "http_post*|send_email*"]}
    approval: block
"""
    )
    state = MemoryLimitState()

    def act(kind: str, session: str = "s", at: int = 0) -> str:
        return run(p, Action(kind, "x", session_id=session), state, T0 + dt.timedelta(minutes=at))

    assert act("send_email") == "auto"
    assert act("decode_b64", at=1) == "auto"  # decode before the read: not in order
    assert act("read_secret", at=2) == "auto"
    assert act("send_email", at=3) == "auto"
    assert act("decode_b64", at=4) == "auto"
    assert act("SEND_EMAIL", at=5) == "block"  # case-insensitive, like every glob
    assert act("http_post", session="other", at=5) == "auto"
    assert act("http_post", at=70) == "auto"  # per: 1h by default


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        ("{rate_limit: {max: 10, per: 10 minutes}}", "per"),
        ("{rate_limit: {max: 10, per: 40d}}", "per: '40d' is longer than the 30-day maximum"),
        ("{rate_limit: {max: 10}}", "missing required key 'per'"),
        ("{rate_limit: {max: 10, per: 1m, key: user}}", "key"),
        ("{budget: {max: 10, per: 1m}}", "missing required key 'param'"),
        ("{repeat: {max: -1, per: 1m}}", "max"),
        ("{sequence: [only_one]}", "sequence: needs at least 2 items, got 1"),
        ("{sequence: {steps: [a]}}", "steps"),
        ("{rate_limit: {max: 1, per: 1m, burst: 3}}", "burst"),
    ],
)
def test_a_bad_argument_is_a_located_load_error(conditions: str, message: str) -> None:
    text = (
        "version: '1'\nrules:\n  - name: r\n    match: {type: x}\n"
        f"    conditions: {conditions}\n    approval: block\n"
    )
    with pytest.raises(PolicyError) as info:
        Policy.from_yaml_string(text, source="p.yaml")
    first = str(info.value).splitlines()[0]
    assert first.startswith("p.yaml:5:"), first
    assert message in str(info.value)


@given(st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=30))
def test_budget_never_lets_the_sum_pass_max(amounts: list[int]) -> None:
    p = policy(
        """
  - name: spend
    match: {type: "pay"}
    conditions: {budget: {param: amount, max: 100, per: 1h}}
    approval: block
"""
    )
    state = MemoryLimitState()
    allowed = [n for n in amounts if run(p, Action("pay", "v", {"amount": n}), state) == "auto"]
    assert sum(allowed) <= 100
    spent = 0
    for n in amounts:  # and it lets through exactly what fits, in order
        if spent + n <= 100:
            spent += n
    assert sum(allowed) == spent
