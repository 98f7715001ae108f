"""Every answer to an approval request, refused ones included, is covered by the hash chain.

The attacker here has write access to the database (not to the chain's head kept elsewhere):
each test removes or edits an answer row, and fails if ``verify`` still says the trail is
intact. On SQLite and (``-m postgres``) on a real PostgreSQL server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from approval_helpers import Recorder, ScriptedChannel, policy_text
from sqlalchemy import create_engine, text

from aegis import Action, Policy, Runtime
from aegis.core.result import Result, ResultStatus
from aegis.runtime.approval.channels import Responder
from aegis.runtime.approval.store import ApprovalRequest
from aegis.runtime.audit import AuditStore

#: These tests are about the request row an ``auto`` approval has when it is not folded.
pytestmark = pytest.mark.usefixtures("request_rows")

PAY = Action("pay", "bank", params={"amount": 5000, "to": "acct-1"})
ONLY_ALICE = Policy.from_yaml_string(policy_text(approvers='["test:alice"]'))


def sql(url: str, statement: str, **params: Any) -> list[Any]:
    """Run one statement as the attacker would: straight on the database."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            found = conn.execute(text(statement), params)
            return list(found) if found.returns_rows else [found.rowcount]
    finally:
        engine.dispose()


async def contested_payment(url: str) -> tuple[Result, str]:
    """Mallory (not allowed) approves, someone answers for another action, alice approves."""

    async def script(request: ApprovalRequest, responder: Responder) -> None:
        await responder.respond(request.id, "mallory", "approve", "trust me")
        await responder.respond(request.id, "alice", "approve", digest="0" * 64)
        await responder.respond(request.id, "alice", "approve", "ticket 123")

    executor = Recorder()
    async with AuditStore(url) as store:
        rt = Runtime(
            executor=executor,
            policy=ONLY_ALICE,
            approval_handler=ScriptedChannel(script),
            audit=store,
        )
        async with rt:
            result = await rt.run_one(PAY)
        request = store.approvals.list(limit=None)[0]  # the newest
    assert result.ok and len(executor.ran) == 1
    assert [a.accepted for a in request.answers] == [False, False, True]
    return result, request.id


def verify(url: str) -> Any:
    return AuditStore(url).verify()


async def test_an_intact_trail_with_refused_answers_verifies(url: str) -> None:
    result, rid = await contested_payment(url)
    report = verify(url)
    assert report.ok and report.status == "ok", report.summary()
    record = AuditStore(url).get(result.audit_id)  # type: ignore[arg-type]
    assert record is not None and record.approval_request == rid
    assert record.approval_answers is not None


async def test_deleting_a_refused_answer_is_caught(url: str) -> None:
    result, rid = await contested_payment(url)
    assert sql(
        url,
        "DELETE FROM aegis_approval_answer WHERE request_id = :rid AND responder = :who",
        rid=rid,
        who="test:mallory",
    ) == [1]
    report = verify(url)
    assert not report.ok and report.status == "tampered"
    assert rid in report.summary() and report.ids_of("approval_answers") == [result.audit_id]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("reason", "innocent"),  # what the refused stranger said
        ("note", "approved by test:alice"),  # why it was refused
        ("accepted", 1),  # the stranger's approval made to count
        ("responder", "test:bob"),  # who it was
    ],
)
async def test_editing_an_answer_is_caught(url: str, column: str, value: Any) -> None:
    result, rid = await contested_payment(url)
    changed = sql(
        url,
        f"UPDATE aegis_approval_answer SET {column} = :value "
        "WHERE request_id = :rid AND responder = 'test:mallory'",
        value=value,
        rid=rid,
    )
    assert changed == [1]
    report = verify(url)
    assert not report.ok and report.ids_of("approval_answers") == [result.audit_id]
    assert rid in report.summary()


async def test_moving_an_answer_to_another_request_is_caught(url: str) -> None:
    result, rid = await contested_payment(url)
    sql(
        url,
        "UPDATE aegis_approval_answer SET request_id = 'elsewhere' WHERE request_id = :rid "
        "AND responder = 'test:mallory'",
        rid=rid,
    )
    assert verify(url).ids_of("approval_answers") == [result.audit_id]


async def test_inserting_a_forged_answer_is_not_passed_off_as_chained(url: str) -> None:
    await contested_payment(url)
    rid = sql(url, "SELECT id FROM aegis_approval_request")[0][0]
    sql(
        url,
        "INSERT INTO aegis_approval_answer (request_id, at, channel, responder, verdict, "
        "accepted, note) VALUES (:rid, 1.0, 'test', 'test:bob', 'approve', 1, 'forged')",
        rid=rid,
    )
    report = verify(url)
    assert report.ok  # the chain itself is intact ...
    assert report.unchained_answers == 1 and rid in report.summary()  # ... and says what is not


async def test_clearing_the_records_answer_columns_is_caught(url: str) -> None:
    result, _ = await contested_payment(url)
    sql(url, "UPDATE aegis_audit SET approval_answers = NULL, approval_request = NULL")
    assert verify(url).edited == [result.audit_id]


async def test_a_denial_with_its_reason_is_covered(url: str) -> None:
    async def script(request: ApprovalRequest, responder: Responder) -> None:
        await responder.respond(request.id, "alice", "deny", "wrong account")

    executor = Recorder()
    async with AuditStore(url) as store:
        rt = Runtime(
            executor=executor,
            policy=ONLY_ALICE,
            approval_handler=ScriptedChannel(script),
            audit=store,
        )
        async with rt:
            result = await rt.run_one(PAY)
    assert executor.ran == [] and result.status is ResultStatus.DENIED
    assert verify(url).ok
    sql(url, "UPDATE aegis_approval_answer SET reason = 'looked fine'")
    assert verify(url).ids_of("approval_answers") == [result.audit_id]


@pytest.mark.parametrize(
    ("tamper", "found"),
    [
        # The answer is kept in its request row (no answer row): each edit of it is caught ...
        ("UPDATE aegis_approval_request SET answer = replace(answer, 'auto:auto', 'x:mallory')",
         "edited"),
        ("UPDATE aegis_approval_request SET answer = replace(answer, ',1,', ',0,')", "edited"),
        ("UPDATE aegis_approval_request SET answer = NULL", "deleted"),
        # ... and so is the request row itself gone, or moved to another id.
        ("DELETE FROM aegis_approval_request", "deleted"),
        ("UPDATE aegis_approval_request SET id = 'elsewhere'", "deleted"),
    ],
)  # fmt: skip
async def test_the_auto_handlers_answer_is_covered(url: str, tamper: str, found: str) -> None:
    executor = Recorder()
    policy = Policy.from_yaml_string(policy_text())
    async with AuditStore(url) as store:
        rt = Runtime(executor=executor, policy=policy, approval_handler="auto", audit=store)
        async with rt:
            result = await rt.run_one(PAY)
    assert result.ok and verify(url).ok
    assert sql(url, "SELECT count(*) FROM aegis_approval_answer") == [(0,)]  # no answer row
    ((rid, answer),) = sql(url, "SELECT id, answer FROM aegis_approval_request")
    assert json.loads(answer)[1:4] == ["auto", "auto:auto", "approve"]
    assert sql(url, tamper) == [1]
    report = verify(url)
    assert not report.ok and report.status == "tampered"
    assert report.ids_of("approval_answers") == [result.audit_id]
    assert rid in report.summary() and f"({found})" in report.summary()


async def test_the_auto_answer_of_one_request_does_not_pass_for_another(url: str) -> None:
    """Two auto approvals: swapping their answers (each a valid one) is caught for both."""
    executor = Recorder()
    policy = Policy.from_yaml_string(policy_text())
    async with AuditStore(url) as store:
        rt = Runtime(executor=executor, policy=policy, approval_handler="auto", audit=store)
        async with rt:
            results = [await rt.run_one(PAY) for _ in range(2)]
    assert verify(url).ok
    (a, ta), (b, tb) = sql(url, "SELECT id, answer FROM aegis_approval_request ORDER BY id")
    sql(url, "UPDATE aegis_approval_request SET answer = :t WHERE id = :r", t=tb, r=a)
    sql(url, "UPDATE aegis_approval_request SET answer = :t WHERE id = :r", t=ta, r=b)
    found = verify(url).ids_of("approval_answers")
    assert sorted(found) == sorted(r.audit_id for r in results)


async def test_an_expired_requests_late_refusals_are_covered(url: str) -> None:
    """The request expires with nobody answering; a stranger's attempt while it was pending
    is part of what the timeout record seals."""

    async def script(request: ApprovalRequest, responder: Responder) -> None:
        await responder.respond(request.id, "mallory", "approve")

    executor = Recorder()
    async with AuditStore(url) as store:
        rt = Runtime(
            executor=executor,
            policy=ONLY_ALICE,
            approval_handler=ScriptedChannel(script),
            audit=store,
            approval_timeout=0.3,
        )
        async with rt:
            result = await rt.run_one(PAY)
    assert executor.ran == [] and result.approval is not None and result.approval.timed_out
    assert verify(url).ok
    sql(url, "DELETE FROM aegis_approval_answer")
    assert verify(url).ids_of("approval_answers") == [result.audit_id]


async def test_an_answer_after_the_record_is_said_to_be_unchained(url: str) -> None:
    """A click (or a replayed token) after the action's record sealed its request's answers is
    stored and refused, and ``verify`` says it is not covered by the chain (docs: late answers)."""
    _, rid = await contested_payment(url)
    async with AuditStore(url) as store:
        late = store.approvals.respond(rid, channel="test", responder="alice", verdict="approve")
    assert not late.accepted and "already approved" in late.message
    report = verify(url)
    assert report.ok and report.unchained_answers == 1
    assert "not covered by the chain" in report.summary() and rid in report.summary()


async def test_records_from_before_the_columns_still_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store written before the approval columns existed (rows hashed without them, and no
    such columns in aegis_audit) verifies read-only, and gets the columns, and sealed answers
    for new records, when it is next opened for writing."""
    from aegis.runtime.audit import record as audit_record

    url = f"sqlite:///{tmp_path / 'old.db'}"
    with monkeypatch.context() as old_writer:
        old_writer.setattr(audit_record, "approval_values", lambda approval: (None, None))
        await contested_payment(url)
    for col in ("approval_request", "approval_answers"):
        sql(url, f"ALTER TABLE aegis_audit DROP COLUMN {col}")
    report = AuditStore(url).verify()  # read-only: the store is not altered
    assert report.ok and report.unchained_answers == 3, report.summary()
    assert "approval_answers" not in [r[1] for r in sql(url, "PRAGMA table_info(aegis_audit)")]
    result, rid = await contested_payment(url)  # opened for writing: columns added
    report = verify(url)
    assert report.ok and report.unchained_answers == 3, report.summary()
    sql(url, "DELETE FROM aegis_approval_answer WHERE request_id = :rid", rid=rid)
    assert verify(url).ids_of("approval_answers") == [result.audit_id]


async def test_aegis_audit_verify_names_the_request_and_fails(url: str) -> None:
    result, rid = await contested_payment(url)
    sql(url, "DELETE FROM aegis_approval_answer WHERE responder = 'test:mallory'")
    env = {**os.environ, "AEGIS_AUDIT_URL": url}
    aegis = [sys.executable, "-m", "aegis.cli", "audit", "verify"]
    text_out = subprocess.run(aegis, capture_output=True, text=True, env=env, timeout=60)
    assert text_out.returncode == 1, text_out.stderr
    assert text_out.stdout.startswith("TAMPERED") and rid in text_out.stdout
    assert f"approval_answers: row {result.audit_id}" in text_out.stdout
    json_out = subprocess.run([*aegis, "-f", "json"], capture_output=True, text=True, env=env)
    payload = json.loads(json_out.stdout)
    assert json_out.returncode == 1 and payload["status"] == "tampered"
    assert [p["kind"] for p in payload["problems"]] == ["approval_answers"]


async def test_a_reopened_requests_first_answers_are_sealed_too(url: str) -> None:
    """The policy tightened after the first approval: a second request replaced the first, and
    the action's record seals the answers of both."""
    stricter = policy_text(approvers='{allow: ["test:*"], quorum: 2}', risk="critical")
    names = iter(["alice", "bob", "carol"])

    async def script(request: ApprovalRequest, responder: Responder) -> None:
        if len(channel.requests) == 1:
            rt.update_policy(Policy.from_yaml_string(stricter))
            await responder.respond(request.id, next(names), "approve")
        else:
            await responder.respond(request.id, next(names), "approve")
            await responder.respond(request.id, next(names), "approve")

    channel = ScriptedChannel(script)
    executor = Recorder()
    policy = Policy.from_yaml_string(policy_text(approvers='["test:*"]'))
    async with AuditStore(url) as store:
        rt = Runtime(executor=executor, policy=policy, approval_handler=channel, audit=store)
        async with rt:
            result = await rt.run_one(PAY)
        first, second = channel.requests
    assert result.ok and len(executor.ran) == 1 and verify(url).ok
    assert store.get(result.audit_id).approval_request == second.id  # type: ignore[union-attr,arg-type]
    sql(url, "DELETE FROM aegis_approval_answer WHERE request_id = :rid", rid=first.id)
    assert verify(url).ids_of("approval_answers") == [result.audit_id]
