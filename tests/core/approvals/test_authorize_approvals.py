"""``Runtime.authorize`` for a caller that runs the action itself (a coding-agent hook).

Its trail must be ``run_one``'s: the request linked to the record of what runs, the answers
sealed into that record, an approver's edit closing the submitted action's record; the
caller's own row (``side_write``) is written with the pending record and nowhere else; and
``remap_edit`` lets a caller whose target is one of the params have the edit decided as the
action it really is.
"""

from __future__ import annotations

from typing import Any

import attrs
from approval_helpers import Recorder, ScriptedChannel

from aegis import Action, Policy, Runtime
from aegis.core.result import Result, ResultStatus
from aegis.runtime.approval.channels import Responder
from aegis.runtime.approval.store import ApprovalRequest
from aegis.runtime.audit import AuditStore
from aegis.runtime.engine import Authorization

#: Payments are approved by a human; the target is the payee, and one payee is blocked.
POLICY = Policy.from_dict(
    {
        "version": "1",
        "defaults": {"risk_level": "low", "approval": "auto"},
        "rules": [
            {
                "name": "no_attacker",
                "match": {"type": "pay", "target": "attacker"},
                "approval": "block",
            },
            {
                "name": "payments",
                "match": {"type": "pay"},
                "risk_level": "high",
                "approval": "approve",
            },
        ],
    }
)
PAY = Action("pay", "acct-1", params={"to": "acct-1", "amount": 5000})


def approving(edits: dict[str, Any] | None) -> ScriptedChannel:
    async def script(request: ApprovalRequest, responder: Responder) -> None:
        await responder.respond(request.id, "alice", "approve", "ok", edits=edits)

    return ScriptedChannel(script)


def payee(action: Action) -> Action:
    """The caller's mapping: a payment's target is its ``to``."""
    return attrs.evolve(action, target=str(action.params["to"]))


class Pairs:
    """A side write that remembers which record ids it was written with."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    def __call__(self, cur: Any, st: Any, audit_id: int) -> None:
        cur.execute("SELECT 1")
        self.ids.append(audit_id)


async def test_an_edit_closes_the_submitted_record_and_links_the_one_that_runs(
    store: AuditStore,
) -> None:
    executor, side = Recorder(), Pairs()
    rt = Runtime(
        executor=executor, policy=POLICY, approval_handler=approving({"amount": 100}), audit=store
    )
    async with rt:
        out = await rt.authorize(PAY, detached=True, side_write=side)
    assert isinstance(out, Authorization) and executor.ran == []
    submitted, begun = store.query(limit=None)
    (request,) = store.approvals.list(limit=None)
    assert submitted.result == "skipped" and f"(request {request.id})" in (submitted.reason or "")
    assert (begun.id, begun.result, begun.parent_id) == (out.audit_id, "pending", submitted.id)
    assert begun.params == {"to": "acct-1", "amount": 100}
    assert side.ids == [out.audit_id]  # with the pending row only, not the closed one
    assert request.audit_id == out.audit_id  # linked when the runtime closed
    assert begun.approval_request == request.id and begun.approval_answers is not None
    await store.finish(out.audit_id, Result(out.action, ResultStatus.SUCCESS, attempts=1))
    report = store.verify()
    assert report.ok and report.unchained_answers == 0


async def test_an_approved_action_is_linked_and_sealed(store: AuditStore) -> None:
    side = Pairs()
    async with Runtime(
        executor=Recorder(), policy=POLICY, approval_handler=approving(None), audit=store
    ) as rt:
        out = await rt.authorize(PAY, detached=True, side_write=side)
    assert isinstance(out, Authorization) and side.ids == [out.audit_id]
    (row,) = store.query(limit=None)
    (request,) = store.approvals.list(limit=None)
    assert request.audit_id == row.id and row.approval_request == request.id
    assert row.approval_answers is not None


async def test_remap_edit_decides_the_edit_as_the_action_it_is(store: AuditStore) -> None:
    """Without the caller's mapping an edited payee keeps the old target, and the block rule
    for the new payee would never see it."""
    executor = Recorder()
    async with Runtime(
        executor=executor,
        policy=POLICY,
        approval_handler=approving({"to": "attacker"}),
        audit=store,
    ) as rt:
        out = await rt.authorize(PAY, detached=True, side_write=Pairs(), remap_edit=payee)
    assert isinstance(out, Result) and out.status is ResultStatus.BLOCKED
    assert [r.result for r in store.query(limit=None)] == ["blocked"]


async def test_remap_edit_names_the_new_target_and_keeps_the_identity(store: AuditStore) -> None:
    def elsewhere(action: Action) -> Action:
        return attrs.evolve(payee(action), agent_id="someone-else", session_id="theirs")

    async with Runtime(
        executor=Recorder(),
        policy=POLICY,
        agent_id="hook",
        approval_handler=approving({"to": "acct-2"}),
        audit=store,
    ) as rt:
        out = await rt.authorize(PAY, remap_edit=elsewhere)
    assert isinstance(out, Authorization)
    assert (out.action.target, out.action.agent_id) == ("acct-2", "hook")
    assert out.action.session_id == rt.session_id
    assert [(r.target, r.result) for r in store.query(limit=None)] == [
        ("acct-1", "skipped"),
        ("acct-2", "pending"),
    ]


async def test_an_edit_the_caller_cannot_map_is_denied(store: AuditStore) -> None:
    def refuses(action: Action) -> Action:
        raise KeyError("no such field")

    side = Pairs()
    async with Runtime(
        executor=Recorder(), policy=POLICY, approval_handler=approving({"amount": 1}), audit=store
    ) as rt:
        out = await rt.authorize(PAY, side_write=side, remap_edit=refuses)
    assert isinstance(out, Result) and out.status is ResultStatus.DENIED
    assert "could not be applied" in (out.reason or "") and "no such field" in (out.reason or "")
    assert [r.result for r in store.query(limit=None)] == ["denied"] and side.ids == []
