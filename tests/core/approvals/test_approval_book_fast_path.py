"""The approval book's fast path: the ``auto`` handler's request and answer in one transaction,
links written later, statements on a held driver connection. Each test fails if a request,
an answer or a link went missing, if an answer counted without ``judge``, or if an action ran
after the book could not write."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from approval_helpers import PAY_POLICY, Recorder, policy_text

from aegis import Action, Policy, Runtime
from aegis.core.result import ResultStatus
from aegis.runtime.approval.handlers import AutoApprovalHandler
from aegis.runtime.audit import AuditStore

#: These tests are about the request row an ``auto`` approval has when it is not folded.
pytestmark = pytest.mark.usefixtures("request_rows")

PAY = Action("pay", "bank", params={"amount": 5000, "to": "acct-1"})


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql))


async def test_auto_request_and_answer_are_stored_and_judged(store: AuditStore) -> None:
    executor = Recorder()
    policy = Policy.from_yaml_string(PAY_POLICY)
    async with Runtime(
        executor=executor, policy=policy, approval_handler="auto", audit=store
    ) as rt:
        result = await rt.run_one(PAY)
    (ran,) = executor.ran
    assert result.ok and ran.params == PAY.params
    (req,) = store.approvals.list(limit=None)
    assert req.state == "approved" and req.digest == ran.digest
    (answer,) = req.answers
    assert answer.accepted and answer.responder == "auto:auto" and answer.verdict == "approve"
    assert answer.channel == "auto" and answer.note and answer.edits is None
    # Kept in the request row, written with the record: no answer row, so no answer id.
    assert answer.id is None and answer.stored == ()
    assert store.approvals.get(req.id).answers == req.answers
    assert req.audit_id == result.audit_id
    record = store.get(result.audit_id)
    assert record is not None and record.approver == "auto"
    assert result.approval is not None and result.approval.request_id == req.id
    assert record.approval_answers == result.approval.answers_seal
    assert (record.approval_answers or "").startswith("inline:")


async def test_later_answers_to_an_auto_approved_request_follow_its_own(
    store: AuditStore,
) -> None:
    """A late answer to an auto-approved request (a replayed id) is an answer row, refused,
    shown after the answer the request row holds, and counted as outside the chain."""
    policy = Policy.from_yaml_string(PAY_POLICY)
    async with Runtime(
        executor=Recorder(), policy=policy, approval_handler="auto", audit=store
    ) as rt:
        assert (await rt.run_one(PAY)).ok
    (req,) = store.approvals.list(limit=None)
    late = store.approvals.respond(req.id, channel="cli", responder="bob", verdict="deny")
    assert not late.accepted
    first, second = store.approvals.get(req.id).answers
    assert (first.id, first.responder, first.accepted) == (None, "auto:auto", True)
    assert second.id is not None and second.responder == "cli:bob" and not second.accepted
    assert store.approvals.get(req.id).approvers == ("auto:auto",)
    report = store.verify()
    assert report.ok and report.unchained_answers == 1


async def test_auto_answer_outside_the_allow_list_is_refused_stored_and_never_runs(
    store: AuditStore,
) -> None:
    executor = Recorder()
    policy = Policy.from_yaml_string(policy_text(approvers='["slack:U1"]'))
    async with Runtime(
        executor=executor, policy=policy, approval_handler="auto", audit=store
    ) as rt:
        result = await rt.run_one(PAY)
    assert executor.ran == []
    assert result.status is ResultStatus.DENIED
    (req,) = store.approvals.list(limit=None)
    assert req.state == "cancelled"
    (answer,) = req.answers
    assert not answer.accepted and "may not answer" in (answer.note or "")
    assert result.audit_id is not None
    record = store.get(result.audit_id)
    assert record is not None and record.result == "denied"


async def test_auto_one_of_a_quorum_of_two_does_not_run(store: AuditStore) -> None:
    executor = Recorder()
    policy = Policy.from_yaml_string(policy_text(approvers="{quorum: 2}"))
    async with Runtime(
        executor=executor, policy=policy, approval_handler="auto", audit=store
    ) as rt:
        result = await rt.run_one(PAY)
    assert executor.ran == [] and result.status is ResultStatus.DENIED
    (req,) = store.approvals.list(limit=None)
    assert req.state == "cancelled" and req.approvers == ("auto:auto",)


async def test_a_subclass_of_auto_is_asked_after_its_request_exists(store: AuditStore) -> None:
    seen: list[int] = []

    class Counting(AutoApprovalHandler):
        async def request_approval(self, action, decision):  # type: ignore[no-untyped-def]
            seen.append(len(store.approvals.list(state="pending", limit=None)))
            return await super().request_approval(action, decision)

    async with Runtime(
        executor=Recorder(),
        policy=Policy.from_yaml_string(PAY_POLICY),
        approval_handler=Counting(),
        audit=store,
    ) as rt:
        assert (await rt.run_one(PAY)).ok
    assert seen == [1]  # the generic path: stored pending first, then asked


async def test_links_reach_other_processes_without_another_request(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    store = AuditStore(f"sqlite:///{db}")
    async with Runtime(
        executor=Recorder(),
        policy=Policy.from_yaml_string(PAY_POLICY),
        approval_handler="auto",
        audit=store,
    ) as rt:
        result = await rt.run_one(PAY)
        # Another connection (as another process would read it): linked within about 1 s.
        for _ in range(40):
            rows = _rows(db, "SELECT audit_id FROM aegis_approval_request")
            if rows and rows[0][0] is not None:
                break
            await asyncio.sleep(0.05)
        assert rows == [(result.audit_id,)]
        second = await rt.run_one(PAY)
    rows = _rows(db, "SELECT audit_id FROM aegis_approval_request ORDER BY created_at")
    assert rows == [(result.audit_id,), (second.audit_id,)]  # the last one at close


async def test_the_book_failing_to_write_blocks_the_action(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    store = AuditStore(f"sqlite:///{db}")
    executor = Recorder()
    async with Runtime(
        executor=executor,
        policy=Policy.from_yaml_string(PAY_POLICY),
        approval_handler="auto",
        audit=store,
    ) as rt:
        assert (await rt.run_one(PAY)).ok
        with sqlite3.connect(db) as conn:  # sabotage: the book's next insert fails
            conn.execute(
                "CREATE TRIGGER no_requests BEFORE INSERT ON aegis_approval_request "
                "BEGIN SELECT RAISE(ABORT, 'requests refused'); END"
            )
        result = await rt.run_one(PAY)
        assert result.status is ResultStatus.BLOCKED
        assert "could not be stored" in (result.reason or "")
        assert "requests refused" in (result.reason or "")
        with sqlite3.connect(db) as conn:
            conn.execute("DROP TRIGGER no_requests")
        assert (await rt.run_one(PAY)).ok  # the held connection recovers
    assert len(executor.ran) == 2
    assert store.count() == 3  # the blocked action is audited too
