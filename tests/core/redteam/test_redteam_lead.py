"""Gaps the red-team review suspected and the lead closed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import attrs
import pytest

from aegis import Action, Policy, Result, ResultStatus, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.core.decision import PolicyDecision
from aegis.runtime.approval.handlers import AutoApprovalHandler
from aegis.runtime.audit import AuditStore

POLICY = Policy.from_dict(
    {
        "version": "1",
        "defaults": {"risk_level": "high", "approval": "block"},
        "rules": [{"name": "reads", "match": {"type": "read*"}, "approval": "auto"}],
    }
)


class Counting(BaseExecutor):
    def __init__(self) -> None:
        self.ran: list[Action] = []

    async def execute(self, action: Action) -> Result:
        self.ran.append(action)
        return Result(action, ResultStatus.SUCCESS)


class StringApproval:
    """A custom policy source that builds its decision with strings."""

    def evaluate(self, action: Action) -> PolicyDecision:
        decision = POLICY.evaluate(action)
        return attrs.evolve(decision, approval="auto")  # type: ignore[arg-type]


class OtherAction:
    def evaluate(self, action: Action) -> PolicyDecision:
        return POLICY.evaluate(Action("read", "somewhere-else"))


@pytest.mark.parametrize("source", [StringApproval(), OtherAction()])
async def test_malformed_decisions_block(source: object, tmp_path: Path) -> None:
    ex = Counting()
    async with Runtime(executor=ex, policy=source, audit=f"sqlite:///{tmp_path / 'a.db'}") as rt:  # type: ignore[arg-type]
        result = await rt.run_one(Action("delete", "crm"))
    assert ex.ran == [] and result.status is ResultStatus.BLOCKED


async def test_executor_cannot_forge_a_rollback_result(tmp_path: Path) -> None:
    class Forger(BaseExecutor):
        async def execute(self, action: Action) -> Result:
            fake = Result(Action("delete", "crm"), ResultStatus.SUCCESS)
            return Result(action, ResultStatus.SUCCESS, rollback=fake)

    async with Runtime(
        executor=Forger(), policy=POLICY, audit=f"sqlite:///{tmp_path / 'a.db'}"
    ) as rt:
        result = await rt.run_one(Action("read", "crm"))
    assert result.ok and result.rollback is None


async def test_executor_own_timeout_error_is_not_reported_as_ours(tmp_path: Path) -> None:
    class Upstream(BaseExecutor):
        async def execute(self, action: Action) -> Result:
            raise TimeoutError("upstream API timed out")

    store = AuditStore(f"sqlite:///{tmp_path / 'a.db'}")
    async with Runtime(executor=Upstream(), policy=POLICY, audit=store, execution_timeout=30) as rt:
        result = await rt.run_one(Action("read", "crm"))
    assert result.status is ResultStatus.FAILED
    assert "upstream API timed out" in (result.error or "")
    assert "did not finish within" not in (result.error or "")


async def test_execution_timeout_still_applies(tmp_path: Path) -> None:
    class Slow(BaseExecutor):
        async def execute(self, action: Action) -> Result:
            await asyncio.sleep(3600)
            return Result(action, ResultStatus.SUCCESS)

    async with Runtime(
        executor=Slow(),
        policy=POLICY,
        audit=f"sqlite:///{tmp_path / 'a.db'}",
        execution_timeout=0.05,
        approval_handler=AutoApprovalHandler(),
    ) as rt:
        result = await rt.run_one(Action("read", "crm"))
    assert result.status is ResultStatus.FAILED and "did not finish within" in (result.error or "")


def test_description_must_be_text() -> None:
    with pytest.raises(TypeError):
        Action("read", "crm", description=["not", "text"])  # type: ignore[arg-type]


def test_policy_from_dict_with_a_huge_integer_loads() -> None:
    huge = 10**5000
    policy = Policy.from_dict(
        {
            "version": "1",
            "rules": [
                {
                    "name": "x",
                    "match": {"type": "pay*"},
                    "conditions": {"param_gt": {"n": huge}},
                    "approval": "block",
                }
            ],
        }
    )
    assert len(policy.fingerprint) == 64
    assert policy.evaluate(Action("pay", "x", params={"n": huge + 1})).approval.value == "block"
    assert policy.evaluate(Action("pay", "x", params={"n": 1})).matched_rule is None
