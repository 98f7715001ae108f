"""Generated inputs: evaluate never raises, the index never hides a rule, fast checks agree."""

from __future__ import annotations

import datetime as dt
import fnmatch
import unicodedata

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis import Action, Approval, Policy
from aegis.core.schema import bundle, policy_schema

EVERYTHING = Policy.from_dict(
    {
        "defaults": {"risk_level": "low", "approval": "auto"},
        "rules": [
            {
                "name": "t",
                "conditions": {
                    "time_after": "18:00",
                    "time_before": "08:00",
                    "weekdays": [1, 2, 3],
                },
                "approval": "approve",
            },
            {
                "name": "cmp",
                "match": {"type": "a*"},
                "conditions": {
                    "param_gt": {"n": 1},
                    "param_lt": {"n.x": 5},
                    "param_gte": {"m": 0},
                    "param_lte": {"m.0": 3},
                },
                "approval": "block",
            },
            {
                "name": "eq",
                "match": {"target": ["b*", "?"]},
                "conditions": {
                    "any": [
                        {"param_eq": {"n": 3}},
                        {"param_contains": {"s": "x"}},
                        {"not": {"param_matches": {"s": "^y+$"}}},
                    ]
                },
                "approval": "auto",
            },
            {"name": "agent", "match": {"agent": "k*"}, "approval": "approve"},
        ],
    }
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
names = st.text(alphabet="abnmsxyK\u212a._0", min_size=1, max_size=6)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    type_=names,
    target=names,
    agent=st.none() | names,
    params=st.dictionaries(st.sampled_from(["n", "m", "s", "n.x", "m.0", "z"]), json_values),
    now=st.datetimes(timezones=st.none() | st.just(dt.UTC)),
)
def test_evaluate_never_raises(type_, target, agent, params, now):
    decision = EVERYTHING.evaluate(Action(type_, target, params=params, agent_id=agent), now=now)
    assert decision.approval in Approval
    if decision.unknown_conditions:
        assert "unknown" in decision.reason


glob_text = st.text(alphabet="abAB_*?[]!K\u212a\u017fs", min_size=1, max_size=5)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    globs=st.lists(st.tuples(glob_text, st.none() | glob_text), min_size=1, max_size=8),
    values=st.lists(
        st.tuples(
            st.text(alphabet="abAB_K\u212a\u017fsS", min_size=1, max_size=5),
            st.text(alphabet="abAB_K\u212as", min_size=1, max_size=5),
        ),
        min_size=1,
        max_size=8,
    ),
    case_sensitive=st.booleans(),
)
def test_index_matches_exactly_what_the_globs_match(globs, values, case_sensitive):
    rules = []
    for i, (type_glob, target_glob) in enumerate(globs):
        match = {"type": type_glob}
        if target_glob is not None:
            match["target"] = target_glob
        rules.append({"name": f"r{i}", "match": match, "approval": "block"})
    policy = Policy.from_dict({"case_sensitive": case_sensitive, "rules": rules})

    def key(text: str) -> str:  # the decided semantics: NFKC, then case folding unless cs
        text = unicodedata.normalize("NFKC", text)
        return text if case_sensitive else unicodedata.normalize("NFKC", text.casefold())

    def fits(pattern: str | None, value: str) -> bool:
        return pattern is None or fnmatch.fnmatchcase(key(value), key(pattern))

    for type_, target in values:
        expected = next(
            (f"r{i}" for i, (tg, gg) in enumerate(globs) if fits(tg, type_) and fits(gg, target)),
            None,
        )
        assert policy.evaluate(Action(type_, target)).matched_rule == expected


rule_like = st.fixed_dictionaries(
    {"name": st.one_of(st.text(max_size=3), st.integers())},
    optional={
        "match": st.dictionaries(
            st.sampled_from(["type", "target", "agent", "x"]),
            st.one_of(st.text(max_size=3), st.lists(st.text(max_size=2), max_size=2)),
        ),
        "conditions": st.dictionaries(
            st.sampled_from(
                [
                    "param_gt",
                    "param_eq",
                    "weekdays",
                    "time_after",
                    "all",
                    "not",
                    "param_matches",
                    "bogus",
                ]
            ),
            st.one_of(
                json_values,
                st.lists(st.integers(0, 8), max_size=3),
                st.sampled_from(["18:00", "24:00", "7:00"]),
                st.lists(
                    st.dictionaries(
                        st.just("param_eq"), st.dictionaries(st.just("a"), json_values)
                    ),
                    max_size=2,
                ),
            ),
        ),
        "risk_level": st.sampled_from(["low", "LOW", "high", 3]),
        "approval": st.sampled_from(["auto", "block", "maybe"]),
        "description": json_values,
    },
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(rule=rule_like)
def test_fast_check_never_accepts_what_jsonschema_rejects(rule):
    schemas = bundle()
    if schemas.rule_ok(rule):
        assert schemas.rule().is_valid(rule)


def test_published_schema_is_valid_and_accepts_a_real_policy():
    schema = policy_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"].endswith("2020-12/schema")
    jsonschema.validate(EVERYTHING.to_dict(), schema)
    conditions = schema["$defs"]["conditions"]["properties"]
    assert {
        "time_after",
        "time_before",
        "weekdays",
        "param_eq",
        "param_gt",
        "param_lt",
        "param_gte",
        "param_lte",
        "param_contains",
        "param_matches",
        "all",
        "any",
        "not",
    } <= set(conditions)
    assert all(c.get("description") for c in conditions.values())
