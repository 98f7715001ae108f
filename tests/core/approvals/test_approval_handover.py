"""A wait handed over to another process (``approval_flow.HANDOVER``) leaves the request
pending for its adopter and writes no record here; any other cancellation still closes the
request and records the action as not run."""

from __future__ import annotations

import asyncio

import pytest
from approval_helpers import PAY_POLICY, Recorder

from aegis import Action, Policy, Runtime
from aegis.runtime.approval.channels import QueueChannel
from aegis.runtime.approval.flow import HANDOVER
from aegis.runtime.audit import AuditStore

PAY = Action("pay", "bank", params={"amount": 5000, "to": "acct-1"})


@pytest.mark.parametrize("message", [HANDOVER, None])
async def test_a_handed_over_wait_stays_pending_and_unrecorded(
    store: AuditStore, message: str | None
) -> None:
    executor = Recorder()
    rt = Runtime(
        executor=executor,
        policy=Policy.from_yaml_string(PAY_POLICY),
        approval_handler=QueueChannel(),
        audit=store,
    )
    async with rt:
        task = asyncio.ensure_future(rt.run_one(PAY))
        while not store.approvals.list(state="pending"):
            await asyncio.sleep(0.02)
        task.cancel(message)
        with pytest.raises(asyncio.CancelledError):
            await task
    (req,) = store.approvals.list(state=None, limit=None)
    records = store.query()
    assert executor.ran == []
    if message == HANDOVER:
        assert req.state == "pending" and records == []
    else:
        assert req.state == "cancelled"
        assert [(r.result, r.reason) for r in records] == [
            ("denied", "cancelled while awaiting approval")
        ]
