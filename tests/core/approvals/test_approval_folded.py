"""An ``auto`` approval kept in its action's audit record: no request row, nothing lost.

The built-in ``auto`` handler's approval is settled before anything is stored, so its request
and answer are written as part of the action's record (``approval.folded``), in its hashed
``approval_answers`` column, instead of as a row of their own. Each test fails if such a
request could not be read back whole (by id, by prefix, in a list, from the CLI), if an edit of
it went unnoticed by ``verify``, if a late answer to it was accepted or not recorded, or if an
approval that someone had to give (or that was refused) were folded too.

On SQLite and (``-m postgres``) PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from approval_helpers import PAY, run_auto
from sqlalchemy import create_engine, text

from aegis import Action
from aegis.errors import ApprovalError
from aegis.runtime.approval import folded
from aegis.runtime.audit import AuditStore

AEGIS = Path(sys.executable).with_name("aegis")


def sql(url: str, statement: str, **params: Any) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            found = conn.execute(text(statement), params)
            return list(found) if found.returns_rows else []
    finally:
        engine.dispose()


def aegis(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The ``aegis`` CLI in another process, with ``env`` added to this one's (no colours)."""
    full = {**os.environ, **env}
    full.pop("FORCE_COLOR", None)
    return subprocess.run(
        [str(AEGIS), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=full,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


async def test_an_auto_approval_is_kept_in_its_record_and_read_back_whole(url: str) -> None:
    action = Action("pay", "bank", params={"amount": 5000, "to": "acct-1"}, agent_id="a1")
    result = await run_auto(url, action)
    assert result.ok and result.approval is not None
    rid = result.approval.request_id
    assert rid is not None and folded.marked(rid)
    assert sql(url, "SELECT id FROM aegis_approval_request") == []  # no row of its own
    assert sql(url, "SELECT id FROM aegis_approval_answer") == []
    ((audit_id, seal),) = sql(
        url, "SELECT id, approval_answers FROM aegis_audit WHERE approval_request = :r", r=rid
    )
    assert seal.startswith(folded.FOLDED) and result.approval.answers_seal == seal
    async with AuditStore(url) as store:
        request = store.approvals.get(rid)
        assert request.id == rid and request.state == "approved"
        assert request.audit_id == audit_id
        assert (request.action_type, request.target, request.agent_id) == ("pay", "bank", "a1")
        assert request.params == {"amount": 5000, "to": "acct-1"}
        assert request.digest == result.action.digest
        assert request.matched_rule == "big_payment" and request.risk_level == "high"
        assert request.channels == ("auto",) and request.approvers == ("auto:auto",)
        (answer,) = request.answers
        assert answer.verdict == "approve" and answer.accepted
        assert request.settled_at == answer.at and request.created_at <= answer.at
        assert request.expires_at > request.created_at
        assert request.outcome and "auto:auto" in request.outcome
        assert store.approvals.get(rid[:8], allow_prefix=True).id == rid
        assert store.approvals.state(rid) == "approved"
        assert [r.id for r in store.approvals.list(state="approved")] == [rid]
        assert [r.id for r in store.approvals.list()] == [rid]
        assert store.approvals.list(state="pending") == []
        report = store.verify()
    assert report.ok, report


async def test_folded_and_stored_requests_list_together_newest_first(url: str) -> None:
    first = await run_auto(url)
    async with AuditStore(url) as store:
        from approval_helpers import PAY_POLICY

        from aegis import Policy

        pending = store.approvals.create(
            PAY,
            Policy.from_yaml_string(PAY_POLICY).evaluate(PAY),
            window=3600.0,
            channels=["queue"],
            params_view=dict(PAY.params),
        )
    second = await run_auto(url)
    assert first.approval is not None and second.approval is not None
    async with AuditStore(url) as store:
        listed = [r.id for r in store.approvals.list()]
        assert listed == [second.approval.request_id, pending.id, first.approval.request_id]
        assert [r.id for r in store.approvals.list(limit=2)] == listed[:2]
        assert [r.id for r in store.approvals.list(state="approved")] == [
            second.approval.request_id,
            first.approval.request_id,
        ]


async def test_an_edited_folded_answer_fails_verify(url: str) -> None:
    result = await run_auto(url)
    assert result.approval is not None
    rid = result.approval.request_id
    ((seal,),) = sql(
        url, "SELECT approval_answers FROM aegis_audit WHERE approval_request = :r", r=rid
    )
    forged = seal.replace("auto:auto", "slack:U_BOSS")
    assert forged != seal
    sql(
        url,
        "UPDATE aegis_audit SET approval_answers = :s WHERE approval_request = :r",
        s=forged,
        r=rid,
    )
    async with AuditStore(url) as store:
        report = store.verify()
        assert not report.ok
        # Read back, the forgery is what it says; the chain is what tells it apart.
        assert store.approvals.get(rid).approvers == ("slack:U_BOSS",)
    sql(
        url,
        "UPDATE aegis_audit SET approval_answers = :s WHERE approval_request = :r",
        s="record:[1,",
        r=rid,
    )
    async with AuditStore(url) as store:
        broken = store.approvals.get(rid)  # unreadable: never an approval
        assert broken.approvers == () and not broken.answers[0].accepted
        assert not store.verify().ok


async def test_a_late_answer_to_a_folded_request_is_refused_and_recorded(url: str) -> None:
    result = await run_auto(url)
    assert result.approval is not None
    rid = result.approval.request_id
    assert rid is not None
    async with AuditStore(url) as store:
        outcome = store.approvals.respond(rid, channel="cli", responder="local", verdict="deny")
        assert not outcome.accepted and "already approved" in outcome.message
        assert store.approvals.get(rid).state == "approved"
    assert sql(url, "SELECT request_id, accepted FROM aegis_approval_answer") == [(rid, 0)]


async def test_unknown_marked_ids_are_not_found(url: str) -> None:
    await run_auto(url)
    async with AuditStore(url) as store:
        with pytest.raises(ApprovalError, match="no approval request"):
            store.approvals.get("r" + "0" * 31)
        with pytest.raises(ApprovalError, match="no approval request"):
            store.approvals.get("r0000", allow_prefix=True)
        assert store.approvals.state("r" + "0" * 31) is None


async def test_an_approval_someone_gave_is_not_folded(url: str) -> None:
    from approval_helpers import PAY_POLICY, Recorder, ScriptedChannel

    from aegis import Policy, Runtime

    async def approve(request: Any, responder: Any) -> None:
        await responder.respond(request.id, "alice", "approve")

    channel = ScriptedChannel(approve)
    async with Runtime(
        executor=Recorder(),
        policy=Policy.from_yaml_string(PAY_POLICY),
        approval_handler=channel,
        audit=url,
    ) as rt:
        result = await rt.run_one(PAY)
    assert result.ok and result.approval is not None
    rid = result.approval.request_id
    assert rid is not None and not folded.marked(rid)
    assert sql(url, "SELECT state FROM aegis_approval_request WHERE id = :r", r=rid) == [
        ("approved",)
    ]
    assert not (result.approval.answers_seal or "").startswith(folded.FOLDED)


def test_approvals_show_prints_a_folded_request(url: str, tmp_path: Path) -> None:
    import asyncio

    result = asyncio.run(run_auto(url))
    assert result.approval is not None and result.approval.request_id is not None
    shown = aegis(tmp_path, "approvals", "show", result.approval.request_id, AEGIS_AUDIT_URL=url)
    assert shown.returncode == 0, shown.stderr
    assert "approved" in shown.stdout and "auto:auto" in shown.stdout


async def test_a_bad_fold_setting_stops_the_runtime_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from approval_helpers import PAY_POLICY, Recorder

    from aegis import Policy, Runtime
    from aegis.errors import AuditError

    monkeypatch.setenv("AEGIS_FOLD_APPROVALS", "maybe")
    recorder = Recorder()
    runtime = Runtime(
        executor=recorder,
        policy=Policy.from_yaml_string(PAY_POLICY),
        approval_handler="auto",
        audit=f"sqlite:///{tmp_path / 'audit.db'}",
    )
    with pytest.raises(AuditError, match=r"AEGIS_FOLD_APPROVALS.*'maybe'"):
        async with runtime:
            await runtime.run_one(PAY)
    assert recorder.ran == []
    shown = aegis(tmp_path, "approvals", "--db", str(tmp_path / "audit.db"))
    assert shown.returncode != 0 and "Traceback" not in shown.stderr
    assert shown.stderr.strip().splitlines() == [
        "aegis: error: audit store: AEGIS_FOLD_APPROVALS: expected 1 or 0 (on/off), not 'maybe'"
    ]
