"""Every outcome the runtime can produce lands in exactly one row, with what `aegis audit` shows."""

from __future__ import annotations

import pytest
from audit_helpers import (
    Approval,
    ApprovalDecision,
    Result,
    ResultStatus,
    RiskLevel,
    action,
    decide,
    run_action,
)

from aegis.errors import AuditError
from aegis.runtime.audit import AuditStore


async def test_begin_writes_pending_row_that_finish_completes(store: AuditStore) -> None:
    act = action(session_id="s1", agent_id="agent-7", description="fetch contacts")
    dec = decide(act, policy_fingerprint="f" * 64, unknown_conditions=("param_gt",))
    audit_id = await store.begin(act, dec, None)

    pending = store.get(audit_id)
    assert pending is not None
    assert pending.result == "pending"
    assert pending.finished_at is None
    assert pending.decision == "auto"

    await store.finish(
        audit_id,
        Result(
            act, ResultStatus.SUCCESS, decision=dec, duration_ms=12.5, attempts=2, verified=True
        ),
    )
    assert store.count() == 1
    rec = store.get(audit_id)
    assert rec is not None
    assert (rec.session_id, rec.agent_id, rec.action_type, rec.target) == (
        "s1",
        "agent-7",
        "read_contact",
        "crm_prod",
    )
    assert rec.params == {"id": 1}
    assert rec.description == "fetch contacts"
    assert (rec.risk_level, rec.approval, rec.matched_rule) == ("LOW", "auto", "read_safe")
    assert rec.unknown_conditions == ("param_gt",)
    assert rec.policy_fingerprint == "f" * 64
    assert (rec.result, rec.duration_ms, rec.attempts, rec.verified) == ("success", 12.5, 2, True)
    assert rec.finished_at is not None and rec.finished_at >= rec.created_at


async def test_failed_execution_keeps_error(store: AuditStore) -> None:
    audit_id = await run_action(
        store, status=ResultStatus.FAILED, error="ConnectionError: refused", verified=False
    )
    rec = store.get(audit_id)
    assert rec is not None
    assert (rec.result, rec.error, rec.verified, rec.decision) == (
        "failed",
        "ConnectionError: refused",
        False,
        "auto",
    )


async def test_approved_action_records_approver_and_reason(store: AuditStore) -> None:
    approval = ApprovalDecision.approve(approver="alice", reason="looks fine")
    audit_id = await run_action(
        store, action("bulk_update", params={"count": 150}), approval=approval
    )
    rec = store.get(audit_id)
    assert rec is not None
    assert (rec.decision, rec.approver, rec.approval_reason) == ("approved", "alice", "looks fine")
    assert rec.approval == "approve"


@pytest.mark.parametrize(
    ("status", "approval_req", "approval", "reason", "expected_decision"),
    [
        (ResultStatus.BLOCKED, Approval.BLOCK, None, "blocked by rule no_deletes", "blocked"),
        (ResultStatus.DENIED, Approval.APPROVE, ApprovalDecision.deny("bob", "no"), None, "denied"),
        (
            ResultStatus.DENIED,
            Approval.APPROVE,
            ApprovalDecision(False, timed_out=True),
            "approval timed out",
            "timeout",
        ),
        (ResultStatus.SKIPPED, Approval.AUTO, None, "dry run: would be auto", "dry_run"),
        # Not attempted (its plan stopped earlier): nothing decided it, whatever its rule says.
        (ResultStatus.SKIPPED, Approval.AUTO, None, "an earlier step failed", "skipped"),
        (ResultStatus.SKIPPED, Approval.APPROVE, None, "an earlier step failed", "skipped"),
        (ResultStatus.SKIPPED, Approval.BLOCK, None, "an earlier step failed", "skipped"),
        (ResultStatus.BLOCKED, Approval.AUTO, None, "hook raised: boom", "error"),
        (ResultStatus.DENIED, Approval.APPROVE, None, "handler raised", "error"),
    ],
)
async def test_record_labels_every_outcome_where_nothing_ran(
    store: AuditStore,
    status: ResultStatus,
    approval_req: Approval,
    approval: ApprovalDecision | None,
    reason: str | None,
    expected_decision: str,
) -> None:
    act = action("delete_user")
    dec = decide(act, approval_req, RiskLevel.CRITICAL, rule="r")
    audit_id = await store.record(
        Result(act, status, decision=dec, approval=approval, reason=reason)
    )
    rec = store.get(audit_id)
    assert rec is not None
    assert rec.result == status.value
    assert rec.decision == expected_decision
    assert rec.reason == reason
    assert rec.attempts == 0 and not rec.executed
    assert rec.finished_at is not None
    assert store.count() == 1


async def test_record_without_decision_is_an_error(store: AuditStore) -> None:
    audit_id = await store.record(
        Result(action(), ResultStatus.BLOCKED, error="policy crashed", reason="fail closed")
    )
    rec = store.get(audit_id)
    assert rec is not None
    assert (rec.decision, rec.risk_level, rec.error) == ("error", None, "policy crashed")


async def test_explicit_dry_run_flag(store: AuditStore) -> None:
    act = action()
    audit_id = await store.record(
        Result(act, ResultStatus.SKIPPED, decision=decide(act)), dry_run=True
    )
    assert store.get(audit_id).decision == "dry_run"  # type: ignore[union-attr]


async def test_parent_id_links_rollback_actions(store: AuditStore) -> None:
    original = await run_action(store, status=ResultStatus.FAILED, error="x")
    act = action("undo_write")
    rollback_id = await store.begin(act, decide(act), None, parent_id=original)
    await store.finish(rollback_id, Result(act, ResultStatus.SUCCESS, attempts=1))
    blocked = await store.record(
        Result(act, ResultStatus.BLOCKED, decision=decide(act, Approval.BLOCK)), parent_id=original
    )
    assert store.get(rollback_id).parent_id == original  # type: ignore[union-attr]
    assert store.get(blocked).parent_id == original  # type: ignore[union-attr]


async def test_finish_twice_or_unknown_id_raises(store: AuditStore) -> None:
    audit_id = await run_action(store)
    act = action()
    with pytest.raises(AuditError):
        await store.finish(audit_id, Result(act, ResultStatus.FAILED))
    with pytest.raises(AuditError):
        await store.finish(9999, Result(act, ResultStatus.SUCCESS))
    assert store.get(audit_id).result == "success"  # type: ignore[union-attr]
    assert store.verify().ok


async def test_odd_param_values_are_stored_not_fatal(store: AuditStore) -> None:
    import datetime as dt

    # Only values Aegis can freeze reach the store (an object() is refused by Action itself).
    act = action(params={"when": dt.date(2024, 1, 2), "blob": b"\x00\x01", "ids": {3, 1}})
    audit_id = await run_action(store, act)
    rec = store.get(audit_id)
    assert rec is not None
    assert rec.params["when"] == "2024-01-02"
    assert rec.params["ids"] == [1, 3]


async def test_to_dict_is_json_ready(store: AuditStore) -> None:
    import json

    audit_id = await run_action(store)
    data = store.get(audit_id).to_dict()  # type: ignore[union-attr]
    assert json.loads(json.dumps(data))["id"] == audit_id
    assert isinstance(data["created_at"], str)
