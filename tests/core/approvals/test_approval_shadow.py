"""An action an approver edits gets a shadow verdict of its own (the shadow saw the original)."""

from __future__ import annotations

from approval_helpers import PAY_POLICY, Recorder, ScriptedChannel

from aegis import Action, Policy, Runtime
from aegis.runtime.approval.channels import Responder
from aegis.runtime.approval.store import ApprovalRequest
from aegis.runtime.audit import AuditStore

# The candidate blocks payments over 1,000 and lets smaller ones through.
CANDIDATE = Policy.from_yaml_string(
    """
version: "1"
defaults: {risk_level: low, approval: auto}
rules:
  - name: huge_payment
    match: {type: pay}
    conditions: {param_gt: {amount: 1000}}
    risk_level: critical
    approval: block
"""
)


async def test_the_edited_action_is_judged_again_by_the_shadow(store: AuditStore) -> None:
    executor = Recorder()

    async def script(request: ApprovalRequest, responder: Responder) -> None:
        await responder.respond(request.id, "alice", "approve", "capped", edits={"amount": 100})

    async with Runtime(
        executor=executor,
        policy=Policy.from_yaml_string(PAY_POLICY),
        approval_handler=ScriptedChannel(script),
        audit=store,
        shadow=CANDIDATE,
    ) as rt:
        result = await rt.run_one(Action("pay", "bank", params={"amount": 5000, "to": "a"}))
    assert result.ok and executor.ran[0].params["amount"] == 100
    original, edited = store.query(limit=None)
    assert original.shadow is not None and original.shadow["matched_rule"] == "huge_payment"
    assert edited.shadow is not None and edited.shadow["approval"] == "auto"
    assert edited.shadow["matched_rule"] is None
    assert store.verify().ok
