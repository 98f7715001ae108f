"""Runtime gates (``Runtime.add_gate``): checks after the policy that survive a policy swap,
see the re-check after an approval, and can only ever make a decision stricter."""

from __future__ import annotations

import asyncio
from typing import Any

import attrs
import pytest
from runtime_helpers import RecordingExecutor, rows

from aegis import Action, Policy, Runtime
from aegis.core.approvers import ApprovalRequirements
from aegis.core.decision import PolicyDecision
from aegis.core.result import ResultStatus
from aegis.core.risk import Approval, RiskLevel
from aegis.runtime.approval.channels import ApprovalChannel, Responder
from aegis.runtime.approval.store import ApprovalRequest
from aegis.runtime.audit import AuditStore

AUTO = "rules: [{name: all, match: {type: '*'}, approval: auto, risk_level: low}]\n"
APPROVE = (
    "rules: [{name: all, match: {type: '*'}, approval: approve, risk_level: high,\n"
    "         approvers: {allow: ['test:*']}}]\n"
)
BLOCK = "rules: [{name: all, match: {type: '*'}, approval: block}]\n"
ACT = Action("deploy", "prod")


def held(action: Action, decision: PolicyDecision) -> PolicyDecision:
    return attrs.evolve(decision, approval=Approval.BLOCK, matched_rule="gate", reason="held")


def runtime(store: AuditStore, policy: str, **kw: Any) -> tuple[Runtime, RecordingExecutor]:
    ran = RecordingExecutor()
    return Runtime(executor=ran, policy=Policy.from_yaml_string(policy), audit=store, **kw), ran


async def test_a_gate_stays_when_the_policy_is_swapped(store: AuditStore) -> None:
    rt, ran = runtime(store, AUTO)
    rt.add_gate(held)
    rt.update_policy(Policy.from_yaml_string(AUTO))
    async with rt:
        result = await rt.run_one(ACT)
    assert result.status is ResultStatus.BLOCKED and ran.ran == []
    assert [(r.decision, r.matched_rule) for r in rows(store)] == [("blocked", "gate")]


def _laxer(action: Action, decision: PolicyDecision) -> PolicyDecision:
    return attrs.evolve(decision, approval=Approval.AUTO, risk_level=RiskLevel.LOW)


def _raises(action: Action, decision: PolicyDecision) -> PolicyDecision:
    raise RuntimeError("tool table unreadable")


def _malformed(action: Action, decision: PolicyDecision) -> Any:
    return "auto"


def _other_action(action: Action, decision: PolicyDecision) -> PolicyDecision:
    return attrs.evolve(decision, action=Action("read", "docs"))


def _drops_approvers(action: Action, decision: PolicyDecision) -> PolicyDecision:
    return attrs.evolve(decision, requirements=None, risk_level=RiskLevel.LOW)


def _widens_approvers(action: Action, decision: PolicyDecision) -> PolicyDecision:
    anyone = ApprovalRequirements(allow=("*",))
    return attrs.evolve(decision, requirements=anyone)


@pytest.mark.parametrize(
    ("policy", "gate", "approval"),
    [
        (BLOCK, _laxer, Approval.BLOCK),  # a gate never lets through what the policy blocked
        (APPROVE, _laxer, Approval.APPROVE),
        (AUTO, _raises, Approval.BLOCK),
        (AUTO, _malformed, Approval.BLOCK),
        (AUTO, _other_action, Approval.BLOCK),
    ],
)
def test_a_gate_can_only_make_a_decision_stricter(
    store: AuditStore, policy: str, gate: Any, approval: Approval
) -> None:
    rt, _ = runtime(store, policy)
    before = rt.evaluate(ACT)
    rt.add_gate(gate)
    after = rt.evaluate(ACT)
    assert after.approval is approval
    assert after.risk_level >= before.risk_level


@pytest.mark.parametrize("gate", [_drops_approvers, _widens_approvers])
def test_a_gate_cannot_loosen_the_rules_approvers(store: AuditStore, gate: Any) -> None:
    rt, _ = runtime(store, APPROVE)
    before = rt.evaluate(ACT)
    rt.add_gate(gate)
    after = rt.evaluate(ACT)
    assert after.requirements == before.requirements and after.requirements is not None
    assert after.risk_level is RiskLevel.HIGH


class Approves(ApprovalChannel):
    """Approves once told to; meanwhile the test changes what the gate says."""

    name = "test"

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.go = asyncio.Event()

    async def notify(self, request: ApprovalRequest, responder: Responder) -> None:
        self.asked.set()
        await self.go.wait()
        await responder.respond(request.id, "alice", "approve")


async def test_the_recheck_after_an_approval_goes_through_the_gate(store: AuditStore) -> None:
    """What the gate says when the answer comes counts, not what it said when asked (a tool
    quarantined while a human was deciding)."""
    closed = False

    def gate(action: Action, decision: PolicyDecision) -> PolicyDecision:
        return held(action, decision) if closed else decision

    channel = Approves()
    rt, ran = runtime(store, APPROVE, approval_handler=channel)
    rt.add_gate(gate)
    async with rt:
        task = asyncio.ensure_future(rt.run_one(ACT))
        await channel.asked.wait()
        closed = True
        channel.go.set()
        result = await task
    assert result.status is ResultStatus.BLOCKED and ran.ran == []
