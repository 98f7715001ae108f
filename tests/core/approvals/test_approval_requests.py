"""Approval requests through the runtime: each test fails if the action ran when it must not."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from approval_helpers import PAY_POLICY, Recorder, ScriptedChannel, policy_text

from aegis import Action, Policy, Runtime, RuntimeHooks
from aegis.core.approval import ApprovalDecision
from aegis.core.decision import PolicyDecision
from aegis.core.result import ResultStatus
from aegis.errors import PolicyError
from aegis.runtime.approval.channels import Responder
from aegis.runtime.approval.handlers import ApprovalHandler, CallbackApprovalHandler
from aegis.runtime.approval.store import ApprovalRequest
from aegis.runtime.audit import AuditStore
from aegis.runtime.watcher import PolicyWatcher

PAY = Action("pay", "bank", params={"amount": 5000, "to": "acct-1"})
PAYING = Policy.from_yaml_string(PAY_POLICY)


def runtime(store: AuditStore, executor: Recorder, policy: Any, channel: Any, **kw: Any) -> Runtime:
    return Runtime(executor=executor, policy=policy, approval_handler=channel, audit=store, **kw)


async def test_request_is_stored_before_the_channel_hears_of_it(store: AuditStore) -> None:
    seen_in_db: list[str] = []

    async def script(request: ApprovalRequest, responder: Responder) -> None:
        seen_in_db.append(store.approvals.get(request.id).state)
        await responder.respond(request.id, "alice", "approve", "ok")

    executor = Recorder()
    channel = ScriptedChannel(script)
    async with runtime(store, executor, PAYING, channel) as rt:
        result = await rt.run_one(PAY)
    assert seen_in_db == ["pending"]
    assert (result.ok and executor.ran == [PAY.with_params(PAY.params)]) or executor.ran
    (req,) = store.approvals.list(limit=None)
    assert req.state == "approved" and req.approvers == ("test:alice",)
    assert req.audit_id == result.audit_id
    assert result.approval is not None and result.approval.request_id == req.id
    assert channel.settled_seen and channel.settled_seen[0].state == "approved"


async def test_a_channel_answering_from_outside_names_requests_by_token_only(
    store: AuditStore,
) -> None:
    """``answers_with_tokens``: the channel's reference comes from a button or link someone
    outside sent, and an id is no secret; a bare id is refused (and audited), the token
    counts."""

    class Remote(ScriptedChannel):
        answers_with_tokens = True

    outcomes: list[Any] = []

    async def script(request: ApprovalRequest, responder: Responder) -> None:
        assert responder.tokens_only
        outcomes.append(await responder.respond(request.id, "alice", "approve"))
        outcomes.append(await responder.respond(responder.token(request), "alice", "approve"))

    executor = Recorder()
    async with runtime(store, executor, PAYING, Remote(script)) as rt:
        result = await rt.run_one(PAY)
    assert [o.accepted for o in outcomes] == [False, True]
    assert "token" in outcomes[0].message
    assert result.ok and len(executor.ran) == 1
    (req,) = store.approvals.list(limit=None)
    assert [(a.responder, a.accepted) for a in req.answers] == [
        ("test:alice", False),
        ("test:alice", True),
    ]


@pytest.mark.parametrize("how", ["update_policy", "watcher"])
async def test_policy_reloaded_to_block_while_deciding_blocks(
    store: AuditStore, tmp_path: Any, how: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(PAY_POLICY)
    executor = Recorder()
    watcher = PolicyWatcher(path, interval=0.05) if how == "watcher" else None
    source: Any = watcher if watcher is not None else Policy.from_yaml(path)

    async def script(request: ApprovalRequest, responder: Responder) -> None:
        blocking = policy_text(approval="block")
        if watcher is not None:
            path.write_text(blocking)
            for _ in range(100):
                if watcher.evaluate(PAY).approval.value == "block":
                    break
                await asyncio.sleep(0.05)
        else:
            rt.update_policy(Policy.from_yaml_string(blocking))
        await responder.respond(request.id, "alice", "approve", "fine by me")

    channel = ScriptedChannel(script)
    if watcher is not None:
        await watcher.start()
    try:
        async with runtime(store, executor, source, channel) as rt:
            result = await rt.run_one(PAY)
    finally:
        if watcher is not None:
            await watcher.stop()
    assert executor.ran == []
    assert result.status is ResultStatus.BLOCKED
    assert "policy in force now blocks" in (result.reason or "")
    (rec,) = store.query(limit=None)
    assert rec.result == "blocked" and rec.approver == "test:alice"


async def test_policy_loosened_to_auto_while_deciding_runs_under_the_new_decision(
    store: AuditStore,
) -> None:
    executor = Recorder()

    async def script(request: ApprovalRequest, responder: Responder) -> None:
        rt.update_policy(Policy.from_yaml_string(policy_text(approval="auto", risk="low")))
        await responder.respond(request.id, "alice", "approve")

    async with runtime(store, executor, PAYING, ScriptedChannel(script)) as rt:
        result = await rt.run_one(PAY)
    assert result.ok and len(executor.ran) == 1
    assert result.decision is not None and result.decision.approval.value == "auto"


async def test_a_stricter_policy_after_the_answer_reopens_the_request(store: AuditStore) -> None:
    executor = Recorder()
    stricter = policy_text(approvers='{allow: ["test:*"], quorum: 2}', risk="critical")
    answers = iter(["alice", "bob", "carol"])

    async def script(request: ApprovalRequest, responder: Responder) -> None:
        if len(channel.requests) == 1:
            rt.update_policy(Policy.from_yaml_string(stricter))
            await responder.respond(request.id, next(answers), "approve")
        else:
            await responder.respond(request.id, next(answers), "approve")
            await responder.respond(request.id, next(answers), "approve")

    channel = ScriptedChannel(script)
    async with runtime(store, executor, PAYING, channel) as rt:
        result = await rt.run_one(PAY)
    assert result.ok and len(executor.ran) == 1
    second, first = store.approvals.list(limit=None)
    assert first.state == "superseded" and "reopened" in (first.outcome or "")
    assert second.replaces == first.id and second.state == "approved"
    assert second.requirements.quorum == 2 and len(second.approvers) == 2
    assert result.decision is not None and result.decision.risk_level.name == "CRITICAL"


async def test_handler_cannot_change_the_params_it_approved(store: AuditStore) -> None:
    executor = Recorder()
    tried: list[BaseException] = []

    def approve_then_tamper(action: Action, decision: PolicyDecision) -> ApprovalDecision:
        try:
            action.params["amount"] = 10**9  # type: ignore[index]
        except TypeError as exc:
            tried.append(exc)
        try:
            decision.action.params["to"] = "attacker"  # type: ignore[index]
        except TypeError as exc:
            tried.append(exc)
        return ApprovalDecision.approve("alice")

    handler = CallbackApprovalHandler(approve_then_tamper)
    async with runtime(store, executor, PAYING, handler) as rt:
        result = await rt.run_one(PAY)
    assert result.ok and len(tried) == 2
    assert executor.ran[0].params == {"amount": 5000, "to": "acct-1"}


async def test_caller_changing_its_list_during_the_wait_changes_nothing(store: AuditStore) -> None:
    executor = Recorder()
    command = ["ls", "/tmp"]
    released = asyncio.Event()

    async def script(request: ApprovalRequest, responder: Responder) -> None:
        await released.wait()
        await responder.respond(request.id, "alice", "approve")

    act = Action("pay", "bank", params={"cmd": command})
    async with runtime(store, executor, PAYING, ScriptedChannel(script)) as rt:
        task = asyncio.ensure_future(rt.run_one(act))
        await asyncio.sleep(0.1)
        command[:] = ["rm", "-rf", "/"]
        released.set()
        result = await task
    assert result.ok and executor.ran[0].params["cmd"] == ("ls", "/tmp")


async def test_answers_for_another_digest_replays_and_strangers_are_refused_and_stored(
    store: AuditStore,
) -> None:
    executor = Recorder()
    outcomes: list[Any] = []

    async def script(request: ApprovalRequest, responder: Responder) -> None:
        outcomes.append(
            await responder.respond(request.id, "alice", "approve", digest="0" * 64)
        )  # another action
        outcomes.append(await responder.respond(request.id, "mallory", "approve"))  # not allowed
        outcomes.append(await responder.respond("nope." + "0" * 32, "alice", "approve"))  # forged
        outcomes.append(await responder.respond(request.id, "alice", "deny", "wrong account"))

    policy = Policy.from_yaml_string(policy_text(approvers='["test:alice"]'))
    async with runtime(store, executor, policy, ScriptedChannel(script)) as rt:
        result = await rt.run_one(PAY)
        request_id = store.approvals.list(limit=None)[0].id
        outcomes.append(  # a replay of the settled request, from another "process"
            store.approvals.respond(
                request_id, channel="test", responder="alice", verdict="approve"
            )
        )
    assert executor.ran == []
    assert result.status is ResultStatus.DENIED and result.reason == "denied: wrong account"
    assert [o.accepted for o in outcomes] == [False, False, False, True, False]
    assert "digest mismatch" in outcomes[0].message
    assert "may not answer" in outcomes[1].message
    assert "already denied" in outcomes[4].message
    (req,) = store.approvals.list(limit=None)
    assert [(a.responder, a.accepted) for a in req.answers] == [
        ("test:alice", False),
        ("test:mallory", False),
        ("test:alice", True),
        ("test:alice", False),
    ]


async def test_an_answer_the_channel_could_not_verify_is_stored_and_never_counts(
    store: AuditStore,
) -> None:
    """``refused=``: an e-mail reply whose sender failed DKIM, on a rule that lets anyone answer."""
    executor = Recorder()
    outcomes: list[Any] = []

    async def script(request: ApprovalRequest, responder: Responder) -> None:
        outcomes.append(
            await responder.respond(request.id, "eve", "approve", refused="DKIM failed")
        )
        outcomes.append(await responder.respond(request.id, "alice", "deny", "no"))

    async with runtime(store, executor, PAYING, ScriptedChannel(script)) as rt:
        result = await rt.run_one(PAY)
    assert executor.ran == [] and result.reason == "denied: no"
    assert not outcomes[0].accepted and outcomes[0].message == "refused: DKIM failed"
    assert outcomes[0].state == "pending"
    (req,) = store.approvals.list(limit=None)
    first = req.answers[0]
    assert (first.responder, first.accepted, first.note) == (
        "test:eve",
        False,
        "refused: DKIM failed",
    )


async def test_token_answers_are_bound_to_request_and_digest(store: AuditStore) -> None:
    executor = Recorder()

    async def script(request: ApprovalRequest, responder: Responder) -> None:
        token = store.approvals.token(request)
        bad = token[:-1] + ("0" if token[-1] != "0" else "1")
        assert not (await responder.respond(bad, "alice", "approve")).accepted
        assert (await responder.respond(token, "alice", "approve")).accepted

    async with runtime(store, executor, PAYING, ScriptedChannel(script)) as rt:
        result = await rt.run_one(PAY)
    assert result.ok


async def test_quorum_of_two_with_one_approval_does_not_run(store: AuditStore) -> None:
    executor = Recorder()

    async def script(request: ApprovalRequest, responder: Responder) -> None:
        await responder.respond(request.id, "alice", "approve")
        await responder.respond(request.id, "alice", "approve")  # the same person twice

    policy = Policy.from_yaml_string(policy_text(approvers='{allow: ["test:*"], quorum: 2}'))
    async with runtime(
        store, executor, policy, ScriptedChannel(script), approval_timeout=0.5
    ) as rt:
        result = await rt.run_one(PAY)
    assert executor.ran == []
    assert result.status is ResultStatus.DENIED and result.approval is not None
    assert result.approval.timed_out and "timed out" in (result.reason or "")
    (req,) = store.approvals.list(limit=None)
    assert req.state == "expired" and req.approvers == ("test:alice",)


async def test_quorum_of_two_distinct_approvers_runs(store: AuditStore) -> None:
    executor = Recorder()

    async def script(request: ApprovalRequest, responder: Responder) -> None:
        await responder.respond(request.id, "alice", "approve", "ok")
        await responder.respond(request.id, "bob", "approve", "ok too")

    policy = Policy.from_yaml_string(policy_text(approvers='{allow: ["test:*"], quorum: 2}'))
    async with runtime(store, executor, policy, ScriptedChannel(script)) as rt:
        result = await rt.run_one(PAY)
    assert result.ok
    (rec,) = store.query(limit=None)
    assert rec.approver == "test:alice, test:bob"


async def test_a_handler_that_swallows_cancellation_cannot_hold_the_action(
    store: AuditStore,
) -> None:
    executor = Recorder()
    started = asyncio.Event()

    class Stubborn(ApprovalHandler):
        name = "stubborn"
        timeout = 3600.0  # larger than the runtime's cap: the cap wins

        async def request_approval(self, action: Action, decision: PolicyDecision) -> bool:
            started.set()
            for _ in range(200):
                try:
                    await asyncio.sleep(0.05)
                except asyncio.CancelledError:
                    continue  # ignores cancellation, then approves late
            return True

    loop = asyncio.get_running_loop()
    async with runtime(store, executor, PAYING, Stubborn(), approval_timeout=0.3) as rt:
        began = loop.time()
        result = await rt.run_one(PAY)
        waited = loop.time() - began
    assert executor.ran == [] and result.status is ResultStatus.DENIED
    assert result.approval is not None and result.approval.timed_out
    assert waited < 5  # held for the window, not for the handler's 10 s of ignoring us
    assert store.approvals.list(limit=None)[0].state == "expired"


@pytest.mark.parametrize("bad", [math.nan, -1.0, math.inf, 0])
def test_nonsense_timeouts_are_refused(store: AuditStore, bad: float) -> None:
    with pytest.raises(ValueError, match="approval_timeout"):
        Runtime(executor=Recorder(), policy=PAYING, approval_timeout=bad)
    with pytest.raises(ValueError, match="execution_timeout"):
        Runtime(executor=Recorder(), policy=PAYING, execution_timeout=bad)


@pytest.mark.parametrize("bad", [".nan", "-5", ".inf", "0", "soon", "40d"])
def test_nonsense_rule_timeouts_are_refused_at_load(bad: str) -> None:
    with pytest.raises(PolicyError, match=r"approvers\.timeout"):
        Policy.from_yaml_string(policy_text(approvers=f"{{timeout: {bad}}}"))


async def test_rule_timeout_shortens_the_runtime_cap(store: AuditStore) -> None:
    executor = Recorder()
    policy = Policy.from_yaml_string(policy_text(approvers="{timeout: 200ms}"))
    async with runtime(store, executor, policy, ScriptedChannel()) as rt:
        result = await rt.run_one(PAY)
    assert result.status is ResultStatus.DENIED and "within 0.2 s" in (result.reason or "")


async def test_edit_then_approve_runs_the_edited_action_linked_to_the_original(
    store: AuditStore,
) -> None:
    executor = Recorder()

    async def script(request: ApprovalRequest, responder: Responder) -> None:
        await responder.respond(request.id, "alice", "approve", "capped", edits={"amount": 100})

    async with runtime(store, executor, PAYING, ScriptedChannel(script)) as rt:
        result = await rt.run_one(PAY)
    assert result.ok and executor.ran[0].params == {"amount": 100, "to": "acct-1"}
    assert result.action.params["amount"] == 100
    original, edited = store.query(limit=None)
    assert original.result == "skipped" and "edited by test:alice" in (original.reason or "")
    assert original.params["amount"] == 5000
    assert edited.parent_id == original.id and edited.result == "success"
    assert result.approval is not None and result.approval.edited


async def test_an_edit_that_the_policy_blocks_does_not_run(store: AuditStore) -> None:
    executor = Recorder()
    policy = Policy.from_yaml_string(
        PAY_POLICY
        + """
  - name: no_attacker
    match: {type: pay}
    approval: block
"""
    )
    # Put the block rule first: pays to "attacker" are blocked.
    policy = Policy.from_dict(
        {
            "version": "1",
            "defaults": {"risk_level": "low", "approval": "auto"},
            "rules": [
                {
                    "name": "no_attacker",
                    "match": {"type": "pay"},
                    "conditions": {"param_eq": {"to": "attacker"}},
                    "approval": "block",
                },
                {"name": "big_payment", "match": {"type": "pay"}, "approval": "approve"},
            ],
        }
    )

    async def script(request: ApprovalRequest, responder: Responder) -> None:
        await responder.respond(request.id, "alice", "approve", edits={"to": "attacker"})

    async with runtime(store, executor, policy, ScriptedChannel(script)) as rt:
        result = await rt.run_one(PAY)
    assert executor.ran == [] and result.status is ResultStatus.BLOCKED


async def test_edits_need_a_single_approver(store: AuditStore) -> None:
    outcomes: list[Any] = []

    async def script(request: ApprovalRequest, responder: Responder) -> None:
        outcomes.append(await responder.respond(request.id, "a", "approve", edits={"amount": 1}))
        outcomes.append(await responder.respond(request.id, "a", "deny", "no"))

    policy = Policy.from_yaml_string(policy_text(approvers='{allow: ["test:*"], quorum: 2}'))
    async with runtime(store, Recorder(), policy, ScriptedChannel(script)) as rt:
        result = await rt.run_one(PAY)
    assert not outcomes[0].accepted and "single approver" in outcomes[0].message
    assert result.status is ResultStatus.DENIED


@pytest.mark.parametrize(
    "edits",
    [{"to": "[REDACTED]"}, {"meta": {"key": "[REDACTED]", "x": 2}}, {"to": ["a", "[REDACTED]"]}],
)
async def test_an_edit_carrying_the_redaction_marker_is_refused(
    store: AuditStore, edits: dict[str, Any]
) -> None:
    """An approver only ever saw ``[REDACTED]`` where a secret was; a channel that sends the
    shown value back (a whole nested mapping, say) would replace the real secret with that
    text, and the action would run with it. Such an edit is refused, never applied."""
    outcomes: list[Any] = []
    executor = Recorder()

    async def script(request: ApprovalRequest, responder: Responder) -> None:
        outcomes.append(await responder.respond(request.id, "a", "approve", edits=edits))
        outcomes.append(await responder.respond(request.id, "a", "deny", "no"))

    async with runtime(store, executor, PAYING, ScriptedChannel(script)) as rt:
        result = await rt.run_one(PAY)
    assert not outcomes[0].accepted and "[REDACTED]" in outcomes[0].message
    assert result.status is ResultStatus.DENIED and executor.ran == []


async def test_cancelling_the_waiting_task_cancels_the_request(store: AuditStore) -> None:
    channel = ScriptedChannel()
    async with runtime(store, Recorder(), PAYING, channel) as rt:
        task = asyncio.ensure_future(rt.run_one(PAY))
        await channel.notified.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (req,) = store.approvals.list(limit=None)
    assert req.state == "cancelled"
    (rec,) = store.query(limit=None)
    assert rec.result == "denied" and "cancelled" in (rec.reason or "")


async def test_original_one_argument_handler_and_hook_signatures(store: AuditStore) -> None:
    seen: list[Any] = []

    class Original(ApprovalHandler):
        async def request_approval(self, decision):  # type: ignore[no-untyped-def,override]
            seen.append(("asked", decision.action.type))
            return True

    async def on_approval(decision: PolicyDecision, approved: bool) -> None:
        seen.append(("on_approval", approved))

    async def on_execute(result: Any) -> None:
        seen.append(("on_execute", result.status.value))

    hooks = RuntimeHooks(on_approval=on_approval, on_execute=on_execute)
    executor = Recorder()
    async with runtime(store, executor, PAYING, Original(), hooks=hooks) as rt:
        result = await rt.run_one(PAY)
    assert result.ok and len(executor.ran) == 1
    assert seen == [("asked", "pay"), ("on_approval", True), ("on_execute", "success")]


def test_original_import_path_of_the_handlers() -> None:
    """agent-aegis 0.1.x code imports its handlers from ``aegis.runtime.approval`` (one module
    there, a package here): the same classes, not copies, and nothing else leaks out."""
    import aegis
    import aegis.runtime.approval as original
    from aegis.runtime.approval import AutoApprovalHandler, CLIApprovalHandler

    assert AutoApprovalHandler is aegis.AutoApprovalHandler
    assert CLIApprovalHandler is aegis.CLIApprovalHandler
    assert original.ApprovalHandler is ApprovalHandler
    assert original.CallbackApprovalHandler is CallbackApprovalHandler
    with pytest.raises(AttributeError, match="no attribute 'SlackApprovalHandler'"):
        _ = original.SlackApprovalHandler


async def test_several_channels_first_valid_answer_settles_and_all_hear_of_it(
    store: AuditStore,
) -> None:
    async def answer(request: ApprovalRequest, responder: Responder) -> None:
        await responder.respond(request.id, "bob", "approve")

    quiet, talker = ScriptedChannel(), ScriptedChannel(answer)
    async with runtime(store, Recorder(), PAYING, [quiet, talker]) as rt:
        result = await rt.run_one(PAY)
    assert result.ok
    assert quiet.settled_seen and quiet.settled_seen[0].approvers == ("test:bob",)
