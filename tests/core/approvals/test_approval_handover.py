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


class Posted(QueueChannel):
    """Remembers the moment it was told of a request."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def notify(self, request, responder) -> None:  # type: ignore[no-untyped-def]
        self.log.append(f"notified {request.id}")


@pytest.mark.parametrize("fails", [False, True])
async def test_the_wait_observer_hears_of_each_request_before_its_channels(
    store: AuditStore, fails: bool
) -> None:
    """``ON_WAIT`` (how a server makes any channel's wait adoptable) is told first, with the
    channels; one that fails is logged and the wait goes on to its answer."""
    from aegis.runtime.approval.wait import ON_WAIT

    log: list[str] = []
    channel = Posted(log)

    async def observe(request, channels) -> None:  # type: ignore[no-untyped-def]
        log.append(f"observed {request.id} {[c.name for c in channels]}")
        if fails:
            raise RuntimeError("the row could not be written")

    executor = Recorder()
    rt = Runtime(
        executor=executor,
        policy=Policy.from_yaml_string(PAY_POLICY),
        approval_handler=channel,
        audit=store,
    )
    async with rt:
        token = ON_WAIT.set(observe)
        try:
            task = asyncio.ensure_future(rt.run_one(PAY))
        finally:
            ON_WAIT.reset(token)
        while len(log) < 2:
            await asyncio.sleep(0.02)
        (req,) = store.approvals.list(state="pending")
        store.approvals.respond(req.id, channel="queue", responder="ops", verdict="approve")
        result = await task
    assert log == [f"observed {req.id} ['queue']", f"notified {req.id}"]
    assert result.status.value == "success" and len(executor.ran) == 1
