"""Plugin conditions are validated like built-ins; compiled matching touches only candidates."""

from __future__ import annotations

from typing import Any

import pytest

from aegis import Action, Approval, Policy, PolicyError, hookimpl
from aegis.core.schema import policy_schema


class BusinessHours:
    """A plugin condition with its own schema; it counts how often it is asked."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def aegis_register_conditions(self, register: Any) -> None:
        def factory(argument: Any, cc: Any) -> Any:
            limit = argument["max"]

            def check(action: Action, ctx: Any) -> bool | None:
                self.calls += 1
                size = action.params.get("size")
                if not isinstance(size, int):
                    return None
                return size > limit

            return check

        register(
            "size_over",
            factory,
            schema={
                "type": "object",
                "additionalProperties": False,
                "required": ["max"],
                "properties": {"max": {"type": "integer"}},
            },
            description="params.size is over max",
        )


class Broken:
    @hookimpl
    def aegis_register_conditions(self, register: Any) -> None:
        raise RuntimeError("cannot start")


def test_plugin_condition_is_validated_and_evaluated(aegis_plugin):
    plugin = BusinessHours()
    aegis_plugin(plugin, name="size-plugin")
    policy = Policy.from_dict(
        {
            "rules": [
                {
                    "name": "big",
                    "match": {"type": "upload"},
                    "conditions": {"size_over": {"max": 10}},
                    "approval": "block",
                }
            ]
        }
    )
    assert policy.evaluate(Action("upload", "s3", {"size": 11})).approval is Approval.BLOCK
    small = policy.evaluate(Action("upload", "s3", {"size": 1}))
    assert small.matched_rule is None
    unknown = policy.evaluate(Action("upload", "s3", {}))
    assert (unknown.matched_rule, unknown.unknown_conditions) == ("big", ("size_over",))
    assert "size_over" in policy_schema()["$defs"]["conditions"]["properties"]
    with pytest.raises(PolicyError) as info:
        Policy.from_yaml_string(
            "rules:\n  - name: a\n    conditions: {size_over: {max: x}}\n", source="p.yaml"
        )
    assert str(info.value) == (
        "p.yaml:3:35: rules[0].conditions.size_over.max: expected integer, got string 'x'"
    )


def test_condition_of_unregistered_plugin_is_rejected():
    with pytest.raises(PolicyError) as info:
        Policy.from_dict({"rules": [{"name": "a", "conditions": {"size_over": {"max": 1}}}]})
    assert "unknown condition 'size_over'" in str(info.value)


def test_condition_of_failed_plugin_is_rejected_and_named(aegis_plugin):
    aegis_plugin(Broken(), name="broken-plugin")
    with pytest.raises(PolicyError) as info:
        Policy.from_dict({"rules": [{"name": "a", "conditions": {"size_over": {"max": 1}}}]})
    assert "plugins that failed to load: broken-plugin" in str(info.value)


def test_a_raising_check_is_unknown_never_a_crash(aegis_plugin):
    class Raises:
        @hookimpl
        def aegis_register_conditions(self, register: Any) -> None:
            def factory(argument: Any, cc: Any) -> Any:
                def check(action: Action, ctx: Any) -> bool:
                    raise ZeroDivisionError

                return check

            register("explodes", factory, schema={"type": "boolean"})

    aegis_plugin(Raises(), name="raises")
    policy = Policy.from_dict(
        {
            "defaults": {"approval": "auto"},
            "rules": [
                {"name": "auto_rule", "conditions": {"explodes": True}, "approval": "auto"},
                {"name": "block_rule", "conditions": {"explodes": True}, "approval": "block"},
            ],
        }
    )
    decision = policy.evaluate(Action("x", "y"))
    assert (decision.matched_rule, decision.approval) == ("block_rule", Approval.BLOCK)


def test_compiled_matching_only_checks_candidate_rules(aegis_plugin):
    plugin = BusinessHours()
    aegis_plugin(plugin, name="size-plugin")
    rules = [
        {
            "name": f"rule_{i}",
            "match": {"type": f"op_{i}*", "target": f"svc_{i}_*"},
            "conditions": {"size_over": {"max": i}},
            "approval": "block",
        }
        for i in range(1000)
    ]
    policy = Policy.from_dict({"defaults": {"approval": "auto"}, "rules": rules})
    decision = policy.evaluate(Action("op_999_x", "svc_999_a", {"size": 5000}))
    assert decision.matched_rule == "rule_999"
    assert plugin.calls == 1
    plugin.calls = 0
    assert policy.evaluate(Action("zzz", "nowhere", {"size": 5000})).matched_rule is None
    assert plugin.calls == 0
    # op_12x matches op_1* and op_12* by type, but only svc_1_* / svc_12_* by target.
    plugin.calls = 0
    assert policy.evaluate(Action("op_12x", "svc_1_a", {"size": 5000})).matched_rule == "rule_1"
    assert plugin.calls == 1
