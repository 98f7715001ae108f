"""Resuming a stored approval request in another runtime (what a server replica does after a
restart): it runs once after approval, never for another action, never past its expiry, and
only one adopter takes the request over."""

from __future__ import annotations

import time

from approval_helpers import PAY_POLICY, Recorder, ScriptedChannel

from aegis import Action, Policy, Runtime
from aegis.core.result import ResultStatus
from aegis.runtime.approval.flow import resuming
from aegis.runtime.approval.store import APPROVED, PENDING
from aegis.runtime.audit import AuditStore

# A session of its own: a runtime stamps its random session on actions that have none.
PAY = Action("pay", "bank", params={"amount": 5000, "to": "acct-1"}, session_id="s-1")
PAYING = Policy.from_yaml_string(PAY_POLICY)


def _stored(store: AuditStore, action: Action = PAY, window: float = 60.0) -> str:
    decision = PAYING.evaluate(action)
    made = store.approvals.create(
        action, decision, window=window, channels=["test"], params_view=dict(action.params)
    )
    return made.id


async def test_an_approved_request_is_resumed_and_runs_once(store: AuditStore) -> None:
    rid = _stored(store)
    store.approvals.respond(rid, channel="key", responder="ops", verdict="approve")
    executor = Recorder()

    async def deny(request, responder) -> None:  # type: ignore[no-untyped-def]
        await responder.respond(request.id, "bob", "deny", "no")

    async with Runtime(
        executor=executor, policy=PAYING, approval_handler=ScriptedChannel(deny), audit=store
    ) as rt:
        with resuming(rid):
            result = await rt.run_one(PAY)
            # The next action asks anew (the resumed id is used once): a new request, denied.
            second = await rt.run_one(PAY)
    assert result.status is ResultStatus.SUCCESS
    assert result.approval is not None and result.approval.request_id == rid
    assert second.status is ResultStatus.DENIED
    assert executor.ran == [PAY]
    ids = [r.id for r in store.approvals.list(limit=None)]
    assert len(ids) == 2 and rid in ids


async def test_a_pending_request_is_resumed_and_waits_for_its_answer(store: AuditStore) -> None:
    rid = _stored(store)
    executor = Recorder()

    async def answer(request, responder) -> None:  # type: ignore[no-untyped-def]
        await responder.respond(request.id, "alice", "approve", "fine")

    channel = ScriptedChannel(answer)
    async with Runtime(
        executor=executor, policy=PAYING, approval_handler=channel, audit=store
    ) as rt:
        with resuming(rid):
            result = await rt.run_one(PAY)
    assert result.ok and executor.ran == [PAY]
    assert [r.id for r in channel.requests] == [rid]  # told about the same request


async def test_resuming_for_another_action_denies_without_running(store: AuditStore) -> None:
    rid = _stored(store)
    store.approvals.respond(rid, channel="key", responder="ops", verdict="approve")
    executor = Recorder()
    other = PAY.with_params({"amount": 5000, "to": "attacker"})
    async with Runtime(
        executor=executor, policy=PAYING, approval_handler=ScriptedChannel(), audit=store
    ) as rt:
        with resuming(rid):
            result = await rt.run_one(other)
    assert result.status is ResultStatus.DENIED and executor.ran == []
    assert "another action" in (result.reason or "")


async def test_a_resumed_request_keeps_its_own_expiry(store: AuditStore) -> None:
    rid = _stored(store, window=0.3)
    time.sleep(0.4)
    executor = Recorder()
    async with Runtime(
        executor=executor, policy=PAYING, approval_handler=ScriptedChannel(), audit=store
    ) as rt:
        with resuming(rid):
            result = await rt.run_one(PAY)
    assert result.status is ResultStatus.DENIED and executor.ran == []
    assert store.approvals.get(rid).state == "expired"


def test_adopt_is_one_compare_and_swap_on_the_owner(store: AuditStore) -> None:
    rid = _stored(store)
    owner = store.approvals.get(rid).owner_started
    assert store.approvals.adopt(rid, previous_owner="someone:1:else") is None
    taken = store.approvals.adopt(rid, previous_owner=owner)
    assert taken is not None and taken.state == PENDING
    store.approvals.respond(rid, channel="key", responder="ops", verdict="approve")
    # An approved request not yet acted on can still be adopted; once linked to its record, not.
    assert store.approvals.adopt(rid, previous_owner=taken.owner_started) is not None
    store.approvals.link_audit(rid, 1)
    again = store.approvals.get(rid)
    assert again.state == APPROVED
    assert store.approvals.adopt(rid, previous_owner=again.owner_started) is None


async def test_resuming_an_edit_closes_the_submitted_action_as_edited(store: AuditStore) -> None:
    """The request waits for an approver's edit of ``PAY`` (what a replica adopts after the
    first approver edited and the policy asked again): given the original, its approval
    closes the original as edited and runs the edit as the next record, as in one process."""
    edited = PAY.with_params({**PAY.params, "amount": 4000})
    rid = _stored(store, edited)
    store.approvals.respond(rid, channel="key", responder="root", verdict="approve")
    executor = Recorder()
    async with Runtime(
        executor=executor, policy=PAYING, approval_handler=ScriptedChannel(None), audit=store
    ) as rt:
        with resuming(rid, PAY):
            result = await rt.run_one(edited)
    assert result.status is ResultStatus.SUCCESS and executor.ran == [edited]
    closed, ran = store.query(order="asc")
    assert (closed.result, closed.params["amount"]) == ("skipped", 5000)
    assert closed.reason is not None and "edited by key:root before approval" in closed.reason
    assert (ran.result, ran.params["amount"], ran.parent_id) == ("success", 4000, closed.id)
