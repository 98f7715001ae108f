"""Tampering with raw SQL is caught, and the report names the rows."""

from __future__ import annotations

import pytest
from audit_helpers import ResultStatus, raw, run_action

from aegis.errors import AuditError
from aegis.runtime.audit import AuditStore


@pytest.fixture
async def trail(db_url: str) -> AuditStore:
    """Five finished actions, store closed (the tamperer works on the file)."""
    async with AuditStore(db_url) as s:
        for i in range(5):
            await run_action(s, status=ResultStatus.SUCCESS if i % 2 else ResultStatus.FAILED)
    return s


def test_untouched_chain_verifies(trail: AuditStore) -> None:
    report = trail.verify()
    assert report.ok, report.summary()
    assert (report.checked, report.last_id) == (5, 5)
    assert report.summary().startswith("OK")


def test_edited_intent_is_named(trail: AuditStore, db_url: str) -> None:
    raw(db_url, "UPDATE aegis_audit SET target = 'crm_staging' WHERE id = 3")
    report = trail.verify()
    assert not report.ok
    assert report.edited == [3]
    assert report.deleted == [] and report.inserted == []
    assert "row 3" in report.summary()


def test_edited_outcome_is_named(trail: AuditStore, db_url: str) -> None:
    raw(db_url, "UPDATE aegis_audit SET result = 'success', error = NULL WHERE id = 1")
    assert trail.verify().edited == [1]


def test_outcome_reset_to_pending_is_named(trail: AuditStore, db_url: str) -> None:
    raw(db_url, "UPDATE aegis_audit SET result = 'pending' WHERE id = 2")
    assert trail.verify().edited == [2]


def test_deleted_rows_are_named(trail: AuditStore, db_url: str) -> None:
    raw(db_url, "DELETE FROM aegis_audit WHERE id IN (2, 3)")
    report = trail.verify()
    assert report.deleted == [2, 3]
    assert report.edited == []


def test_deleted_last_row_is_named(trail: AuditStore, db_url: str) -> None:
    raw(db_url, "DELETE FROM aegis_audit WHERE id = 5")
    assert trail.verify().deleted == [5]


def test_inserted_row_is_named(trail: AuditStore, db_url: str) -> None:
    raw(
        db_url,
        "INSERT INTO aegis_audit (created_at, action_type, target, params, description, "
        "decision, result, prev_hash, row_hash) SELECT created_at, 'read', 'crm', '{}', '', "
        "'auto', 'success', row_hash, row_hash FROM aegis_audit WHERE id = 5",
    )
    report = trail.verify()
    assert report.inserted == [6]
    assert report.edited == [] and report.deleted == []


def test_rehashed_edit_breaks_the_link_to_the_next_row(trail: AuditStore, db_url: str) -> None:
    """An editor who recomputes the edited row's hash still leaves the next row pointing at
    the old one: both sides of the broken link are named."""
    from aegis.runtime.audit.chain import VERIFY_COLUMNS, canonical, row_hash
    from aegis.runtime.audit.schema import INTENT_COLUMNS

    raw(db_url, "UPDATE aegis_audit SET target = 'evil' WHERE id = 2")
    cols = ", ".join(VERIFY_COLUMNS)
    row = raw(db_url, f"SELECT {cols} FROM aegis_audit WHERE id = 2")[0]
    intent = canonical(list(row[2 : 2 + len(INTENT_COLUMNS)]))
    forged = row_hash(row[1], 2, intent)
    raw(db_url, "UPDATE aegis_audit SET row_hash = :h WHERE id = 2", h=forged)
    report = trail.verify()
    assert not report.ok
    broken = [p for p in report.problems if p.kind == "broken_link"]
    assert [list(p.ids) for p in broken] == [[2, 3]]
    assert 2 in report.edited  # its result hash was sealed over the old row hash


async def test_new_writes_continue_the_chain_after_reopen(trail: AuditStore, db_url: str) -> None:
    async with AuditStore(db_url) as again:
        new_id = await run_action(again)
        assert new_id == 6
        assert again.verify().ok


async def test_pending_rows_are_listed_not_flagged(store: AuditStore) -> None:
    from audit_helpers import action, decide

    act = action()
    audit_id = await store.begin(act, decide(act), None)
    report = store.verify()
    assert report.ok
    assert report.pending == (audit_id,)
    assert "without an outcome" in report.summary()


async def test_inserting_at_the_next_id_makes_writes_fail_closed(
    trail: AuditStore, db_url: str
) -> None:
    raw(
        db_url,
        "INSERT INTO aegis_audit (id, created_at, action_type, target, params, description, "
        "decision, result, prev_hash, row_hash) VALUES "
        "(6, 'x', 'read', 'crm', '{}', '', 'auto', 'success', 'a', 'b')",
    )
    with pytest.raises(AuditError, match="beyond the chain head"):  # refused at open now
        async with AuditStore(db_url) as again:
            await run_action(again)
