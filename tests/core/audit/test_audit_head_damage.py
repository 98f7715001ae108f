"""A damaged chain head, an emptied trail and pending rows: verify names them, open refuses.

The head row (``aegis_audit_head``) is what tells verify where the chain ends, and what the
writer numbers the next record from. Deleting it used to pass verify as "OK", and reopening the
store re-created it at genesis, so every later write collided with row 1 and failed forever.
"""

from __future__ import annotations

import pytest
from audit_helpers import action, decide, raw, run_action

from aegis.errors import AuditError
from aegis.runtime.audit import AuditStore


async def _trail(db_url: str, n: int = 3) -> None:
    async with AuditStore(db_url) as store:
        for _ in range(n):
            await run_action(store)


async def test_deleted_head_is_named_by_verify(db_url: str) -> None:
    await _trail(db_url)
    raw(db_url, "DELETE FROM aegis_audit_head")
    report = AuditStore(db_url).verify()
    assert not report.ok
    assert [p.kind for p in report.problems] == ["head"]
    assert "chain head is missing" in report.summary()
    assert report.summary().startswith("TAMPERED")


async def test_deleted_head_and_last_record_is_named_by_verify(db_url: str) -> None:
    await _trail(db_url)
    raw(db_url, "DELETE FROM aegis_audit WHERE id = 3")
    raw(db_url, "DELETE FROM aegis_audit_head")
    report = AuditStore(db_url).verify()
    assert not report.ok
    assert any(p.kind == "head" for p in report.problems)
    assert "after id 2" in report.summary()  # the end can no longer be checked: say from where


async def test_reopening_without_a_head_refuses_instead_of_restarting_at_genesis(
    db_url: str,
) -> None:
    await _trail(db_url)
    raw(db_url, "DELETE FROM aegis_audit_head")
    store = AuditStore(db_url)
    with pytest.raises(AuditError, match="chain head is missing"):
        await store.open()
    assert not store.is_open
    # Nothing was re-created behind the user's back.
    assert raw(db_url, "SELECT count(*) FROM aegis_audit_head")[0][0] == 0


async def test_reopening_with_rows_beyond_the_head_refuses(db_url: str) -> None:
    await _trail(db_url)
    raw(db_url, "UPDATE aegis_audit_head SET last_id = 1")
    with pytest.raises(AuditError, match="beyond the chain head"):
        await AuditStore(db_url).open()


async def test_head_deleted_while_running_fails_the_next_write(db_url: str) -> None:
    async with AuditStore(db_url) as store:
        await run_action(store)
        raw(db_url, "DELETE FROM aegis_audit_head")
        act = action()
        with pytest.raises(AuditError, match="head"):
            await store.begin(act, decide(act), None)


async def test_emptied_trail_is_reported_not_ok(db_url: str) -> None:
    await _trail(db_url)
    raw(db_url, "DELETE FROM aegis_audit")
    raw(
        db_url,
        "UPDATE aegis_audit_head SET last_id = 0, last_hash = :g, last_final = 0",
        g="0" * 64,
    )
    report = AuditStore(db_url).verify()
    assert report.status == "empty"
    assert not report.summary().startswith("OK")
    assert "EMPTY" in report.summary()


async def test_pending_rows_make_the_report_incomplete_not_ok(db_url: str) -> None:
    async with AuditStore(db_url) as store:
        await run_action(store)
        act = action()
        pending_id = await store.begin(act, decide(act), None)
        report = store.verify()
    assert report.ok  # not tampering ...
    assert report.status == "incomplete"  # ... but not "OK" either
    assert report.summary().startswith("INCOMPLETE")
    assert str(pending_id) in report.summary()


async def test_intact_trail_still_says_ok(db_url: str) -> None:
    await _trail(db_url)
    report = AuditStore(db_url).verify()
    assert report.status == "ok"
    assert report.summary().startswith("OK: 3 records checked")


async def test_opening_while_another_process_writes_is_not_mistaken_for_damage(
    db_url: str,
) -> None:
    """The head and the last id are read in one snapshot: a commit in between is no 'damage'."""
    import asyncio

    from audit_helpers import spawn_writers

    await _trail(db_url, 1)
    writer = asyncio.create_task(asyncio.to_thread(spawn_writers, db_url, 1, 150))
    opened = 0
    while not writer.done() or opened == 0:
        store = AuditStore(db_url)
        await store.open()  # raised "lies beyond the chain head" when the reads straddled a commit
        await store.close()
        opened += 1
    await writer
    assert AuditStore(db_url).verify().status == "ok"
