"""The filters behind `aegis audit` and `aegis stats`."""

from __future__ import annotations

import datetime as dt

import pytest
from audit_helpers import (
    Approval,
    ApprovalDecision,
    Result,
    ResultStatus,
    RiskLevel,
    action,
    decide,
    raw,
    run_action,
)

from aegis.runtime.audit import AuditStore


@pytest.fixture
async def filled(store: AuditStore) -> AuditStore:
    """read x3 (s1, agent a), bulk_update approved (s2), delete blocked (s2), write failed (s1)."""
    for _ in range(3):
        await run_action(store, action("read_contact", session_id="s1", agent_id="a"))
    bulk = action("bulk_update", params={"count": 150}, session_id="s2", agent_id="b")
    dec = decide(bulk, Approval.APPROVE, RiskLevel.HIGH, rule="bulk_ops")
    audit_id = await store.begin(bulk, dec, ApprovalDecision.approve("alice"))
    await store.finish(audit_id, Result(bulk, ResultStatus.SUCCESS, attempts=1))
    delete = action("DELETE_user", session_id="s2", agent_id="b")
    await store.record(
        Result(
            delete,
            ResultStatus.BLOCKED,
            decision=decide(delete, Approval.BLOCK, RiskLevel.CRITICAL, rule="no_deletes"),
        )
    )
    await run_action(
        store, action("write_note", session_id="s1", agent_id="a"), ResultStatus.FAILED, error="e"
    )
    return store


async def test_filters(filled: AuditStore) -> None:
    q = filled.query
    assert [r.id for r in q(session="s2")] == [4, 5]
    assert [r.id for r in q(agent="a")] == [1, 2, 3, 6]
    assert [r.action_type for r in q(action_type="delete*")] == ["DELETE_user"]  # any case
    assert [r.action_type for r in q(action_type="read_contact")] == ["read_contact"] * 3
    assert [r.id for r in q(risk_level="high")] == [4]
    assert [r.id for r in q(risk_level=[RiskLevel.HIGH, "CRITICAL"])] == [4, 5]
    assert [r.id for r in q(result="failed")] == [6]
    assert [r.id for r in q(result=ResultStatus.BLOCKED)] == [5]
    assert [r.id for r in q(decision="approved")] == [4]
    assert [r.id for r in q(matched_rule="no_deletes")] == [5]
    assert [r.id for r in q(session="s1", result="success")] == [1, 2, 3]


async def test_limit_order_and_tail(filled: AuditStore) -> None:
    assert [r.id for r in filled.query(limit=2)] == [1, 2]
    assert [r.id for r in filled.query(limit=2, order="desc")] == [6, 5]
    assert [r.id for r in filled.query(after_id=4)] == [5, 6]
    assert len(filled.query(limit=None)) == 6
    with pytest.raises(ValueError):
        filled.query(order="sideways")  # type: ignore[arg-type]


async def test_since_and_until(filled: AuditStore, db_url: str) -> None:
    raw(db_url, "UPDATE aegis_audit SET created_at = '2020-01-01T00:00:00.000000+00:00' "
        "WHERE id <= 2")  # fmt: skip
    assert [r.id for r in filled.query(since=dt.timedelta(hours=1))] == [3, 4, 5, 6]
    assert [r.id for r in filled.query(since="2021-01-01")] == [3, 4, 5, 6]
    assert [r.id for r in filled.query(until=dt.date(2021, 1, 1))] == [1, 2]
    aware = dt.datetime(2019, 12, 31, 23, 0, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    assert [r.id for r in filled.query(since=aware, until="2020-06-01T00:00+00:00")] == []


async def test_count_and_stats(filled: AuditStore) -> None:
    assert filled.count() == 6
    assert filled.count(session="s1", result="success") == 3
    assert filled.count(session_id="s2") == 2  # the column name works as well
    stats = {s.rule: s for s in filled.stats()}
    assert stats["read_safe"].total == 4
    assert stats["read_safe"].by_result == {"failed": 1, "success": 3}
    assert stats["read_safe"].by_decision == {"auto": 4}
    assert stats["bulk_ops"].by_decision == {"approved": 1}
    assert stats["no_deletes"].by_result == {"blocked": 1}
    assert next(s.rule for s in filled.stats()) == "read_safe"  # busiest first
    assert {s.rule for s in filled.stats(session="s2")} == {"bulk_ops", "no_deletes"}


async def test_another_store_reads_while_one_writes(filled: AuditStore, db_url: str) -> None:
    reader = AuditStore(db_url)  # never opened: a CLI process reading a live trail
    assert reader.count() == 6
    await run_action(filled)
    assert [r.id for r in reader.query(after_id=6)] == [7]
    assert reader.verify().ok
