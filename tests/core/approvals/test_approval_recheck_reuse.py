"""The re-check after an approval reuses the decision only when evaluating again could not
answer otherwise (``flow.still_decided``, ``Policy.repeatable``).

The attacker's cases: a policy swapped between the decision and the re-check, and a policy
whose answer changes from one evaluation to the next (a plugin condition, the clock). Each
test fails if the action ran when a fresh evaluation would have stopped it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from approval_helpers import PAY_POLICY, Recorder

from aegis import Action, Policy, Runtime, RuntimeHooks, hookimpl
from aegis.core.result import ResultStatus
from aegis.runtime.audit import AuditStore

PAY = Action("pay", "bank", params={"amount": 5000})
BLOCK_PAY = PAY_POLICY.replace("approval: approve", "approval: block")
ANY = {"type": "object"}  # a plugin condition's argument schema (required)


def counting(monkeypatch: Any) -> list[Action]:
    """Every ``Policy.evaluate`` call from now on, by the action it was asked about."""
    seen: list[Action] = []
    original = Policy.evaluate

    def evaluate(self: Policy, action: Action, **kwargs: Any) -> Any:
        seen.append(action)
        return original(self, action, **kwargs)

    monkeypatch.setattr(Policy, "evaluate", evaluate)
    return seen


async def run(policy: Policy, store: AuditStore, **kwargs: Any) -> tuple[Any, Recorder]:
    executor = Recorder()
    rt = Runtime(executor=executor, policy=policy, approval_handler="auto", audit=store, **kwargs)
    async with rt:
        result = await rt.run_one(PAY)
    return result, executor


def test_repeatable_is_false_for_anything_that_may_answer_otherwise(aegis_plugin: Any) -> None:
    def rule(conditions: dict[str, Any]) -> Policy:
        return Policy.from_dict(
            {"rules": [{"name": "r", "match": {"type": "pay"}, "conditions": conditions}]}
        )

    assert Policy.from_yaml_string(PAY_POLICY).repeatable
    assert rule({"param_gt": {"amount": 10}, "not": {"param_eq": {"to": "x"}}}).repeatable
    assert not rule({"time_after": "09:00"}).repeatable
    assert not rule({"time_after": "09:00", "time_before": "17:00"}).repeatable
    assert not rule({"any": [{"param_gt": {"amount": 10}}, {"weekdays": [1, 2]}]}).repeatable
    assert not rule({"not": {"weekdays": [6, 7]}}).repeatable
    assert not rule({"rate_limit": {"max": 5, "per": "1m"}}).repeatable

    class Always:
        @hookimpl
        def aegis_register_conditions(self, register: Any) -> None:
            register("always", lambda argument, cc: lambda action, ctx: True, schema=ANY)

    aegis_plugin(Always(), name="always-plugin")
    assert not rule({"always": {}}).repeatable


async def test_a_repeatable_policy_is_evaluated_once(store: AuditStore, monkeypatch: Any) -> None:
    seen = counting(monkeypatch)
    result, executor = await run(Policy.from_yaml_string(PAY_POLICY), store)
    assert result.ok and [a.type for a in executor.ran] == ["pay"]
    assert len(seen) == 1


async def test_a_clock_condition_is_evaluated_again(store: AuditStore, monkeypatch: Any) -> None:
    always = {"weekdays": [1, 2, 3, 4, 5, 6, 7]}
    policy = Policy.from_dict(
        {
            "rules": [
                {"name": "pay", "match": {"type": "pay"}, "conditions": always},
            ],
            "defaults": {"approval": "approve", "risk_level": "high"},
        }
    )
    seen = counting(monkeypatch)
    result, _executor = await run(policy, store)
    assert result.ok and len(seen) == 2


async def run_reloading(store: AuditStore, text: str) -> tuple[Any, Recorder]:
    """Run PAY with an ``on_decision`` hook that reloads the policy from ``text`` after the
    decision was made, before the approval step's re-check."""
    holder: dict[str, Runtime] = {}

    def reload(decision: Any) -> None:
        holder["rt"].update_policy(Policy.from_yaml_string(text))

    executor = Recorder()
    rt = Runtime(
        executor=executor,
        policy=Policy.from_yaml_string(PAY_POLICY),
        approval_handler="auto",
        audit=store,
        hooks=RuntimeHooks(on_decision=reload),
    )
    holder["rt"] = rt
    async with rt:
        result = await rt.run_one(PAY)
    return result, executor


async def test_a_policy_swapped_before_the_recheck_blocks(store: AuditStore) -> None:
    """The re-check sees another fingerprint, evaluates, and the block wins."""
    result, executor = await run_reloading(store, BLOCK_PAY)
    assert executor.ran == []
    assert result.status is ResultStatus.BLOCKED
    assert "policy in force now blocks" in (result.reason or "")


async def test_the_same_content_reloaded_still_runs(store: AuditStore) -> None:
    result, executor = await run_reloading(store, PAY_POLICY)
    assert result.ok and [a.type for a in executor.ran] == ["pay"]


async def test_a_plugin_condition_that_changes_its_answer_blocks(
    store: AuditStore, aegis_plugin: Any
) -> None:
    """The plugin says yes to the first evaluation and no to every later one: the re-check
    must ask it again, find no rule matching, and the defaults (block) win."""
    answers = iter([True])

    class Fickle:
        @hookimpl
        def aegis_register_conditions(self, register: Any) -> None:
            register(
                "fickle", lambda argument, cc: lambda action, ctx: next(answers, False), schema=ANY
            )

    aegis_plugin(Fickle(), name="fickle-plugin")
    policy = Policy.from_dict(
        {
            "defaults": {"approval": "block", "risk_level": "high"},
            "rules": [
                {
                    "name": "pay",
                    "match": {"type": "pay"},
                    "conditions": {"fickle": {}},
                    "approval": "approve",
                    "risk_level": "high",
                }
            ],
        }
    )
    assert not policy.repeatable
    result, executor = await run(policy, store)
    assert executor.ran == [] and result.status is ResultStatus.BLOCKED


def test_now_is_irrelevant_to_a_repeatable_policy() -> None:
    """What ``repeatable`` promises, checked directly: the same decision at any time."""
    policy = Policy.from_yaml_string(PAY_POLICY)
    times = [dt.datetime(2026, 1, d, h, tzinfo=dt.UTC) for d in (3, 4) for h in (2, 14)]
    decisions = {
        (policy.evaluate(PAY, now=t).approval, policy.evaluate(PAY, now=t).matched_rule)
        for t in times
    }
    assert len(decisions) == 1
