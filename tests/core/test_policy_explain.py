"""``aegis.core.policy_explain``: the trace behind ``simulate --explain`` agrees with evaluate.

The trace is derived on its own (every rule, not the index's candidates; each glob against the
match key; each condition leaf evaluated), so these properties can fail: a trace that names a
rule evaluate did not pick, or the index dropping a rule whose globs fit, breaks them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis.core.action import Action
from aegis.core.policy import Policy
from aegis.core.policy_explain import explain

NOW = dt.datetime(2026, 3, 18, 10, 0, tzinfo=dt.UTC)  # a Wednesday

GLOBS = st.sampled_from(["a*", "ab", "*", "b?", "A*", "[ab]c", "c*", "ab*"])
CONDITIONS = st.one_of(
    st.none(),
    st.builds(lambda n: {"param_gt": {"n": n}}, st.integers(-2, 2)),
    st.builds(lambda n: {"param_eq": {"s": n}}, st.sampled_from(["x", "y"])),
    st.builds(
        lambda d: {"weekdays": d}, st.lists(st.integers(1, 7), min_size=1, max_size=3, unique=True)
    ),
    st.builds(
        lambda a, b: {"any": [{"param_lt": {"n": a}}, {"not": {"param_eq": {"s": b}}}]},
        st.integers(-2, 2),
        st.sampled_from(["x", "y"]),
    ),
    st.just({"time_after": "09:00", "time_before": "11:00", "param_lte": {"n": 1}}),
)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    rules = []
    for i in range(draw(st.integers(0, 6))):
        match: dict[str, Any] = {"type": draw(st.lists(GLOBS, min_size=1, max_size=2))}
        if draw(st.booleans()):
            match["target"] = draw(GLOBS)
        if draw(st.integers(0, 3)) == 0:
            match["agent"] = draw(st.sampled_from(["bot-*", "*", "human"]))
        rule: dict[str, Any] = {
            "name": f"r{i}",
            "match": match,
            "approval": draw(st.sampled_from(["auto", "approve", "block"])),
            "risk_level": draw(st.sampled_from(["low", "medium", "high", "critical"])),
        }
        conditions = draw(CONDITIONS)
        if conditions is not None:
            rule["conditions"] = conditions
        rules.append(rule)
    defaults = {"approval": draw(st.sampled_from(["approve", "block"]))}
    return Policy.from_dict({"version": "1", "defaults": defaults, "rules": rules})


NAMES = st.sampled_from(["a", "ab", "abc", "AB", "bc", "ac", "c", "zz"])
PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "n": st.one_of(st.integers(-3, 3), st.just("1"), st.none()),
        "s": st.sampled_from(["x", "y", 1]),
    },
)
ACTIONS = st.builds(
    lambda t, target, params, agent: Action(t, target, params=params, agent_id=agent),
    NAMES,
    NAMES,
    PARAMS,
    st.sampled_from([None, "bot-1", "human"]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), ACTIONS)
def test_the_trace_agrees_with_evaluate(policy: Policy, action: Action) -> None:
    result = explain(policy, action, now=NOW)
    decision = policy.evaluate(action, now=NOW)
    assert result.decision == decision
    effects = [t.effect for t in result.rules]
    assert len(result.rules) == len(policy.rules)
    # at most one rule decides, and nothing after it is looked at
    assert effects.count("decided") <= 1
    if "decided" in effects:
        cut = effects.index("decided")
        assert set(effects[cut + 1 :]) <= {"not reached"}
    else:
        assert "not reached" not in effects
    deciding = {t.name for t in result.rules if t.effect in ("decided", "held")}
    assert decision.matched_rule is None or decision.matched_rule in deciding
    if not deciding:
        assert decision.matched_rule is None
        assert decision.approval == policy.defaults.approval
    first = next((t for t in result.rules if t.effect != "no match"), None)
    if first is not None and first.effect == "decided" and first.outcome is True:
        assert (decision.matched_rule, decision.approval) == (first.name, first.approval)
    if any(t.effect in ("held", "skipped") for t in result.rules):
        assert decision.unknown_conditions
    for trace in result.rules:
        fits = all(f.matched is not None or f.unknown for f in trace.fields)
        # the index (evaluate's candidates) and a full scan of every glob agree
        assert (trace.globs_match is not False) == fits, trace
        if trace.effect == "decided" and trace.approval.value == "block":
            assert decision.approval.value == "block"


def test_explain_names_globs_conditions_and_values() -> None:
    policy = Policy.from_dict(
        {
            "version": "1",
            "rules": [
                {"name": "no_deletes", "match": {"type": "delete*"}, "approval": "block"},
                {
                    "name": "small",
                    "match": {"type": "pay*"},
                    "conditions": {"param_lte": {"amount": 100}},
                    "approval": "auto",
                },
                {"name": "pay", "match": {"type": "pay*"}, "approval": "approve"},
                {"name": "late", "match": {"type": "*"}, "approval": "block"},
            ],
        }
    )
    result = explain(policy, Action("pay_invoice", "inv-1"), now=NOW)
    no_deletes, small, pay, late = result.rules
    assert no_deletes.effect == "no match"
    assert no_deletes.fields[0].matched is None
    assert small.effect == "skipped"
    assert small.note == "param_lte unknown"
    [leaf] = small.conditions
    assert (leaf.name, leaf.argument, dict(leaf.values), leaf.outcome) == (
        "param_lte",
        {"amount": 100},
        {"amount": "(missing)"},
        None,
    )
    assert pay.effect == "decided"
    assert pay.fields[0].matched == "pay*"
    assert late.effect == "not reached"
    assert result.decision.matched_rule == "pay"
