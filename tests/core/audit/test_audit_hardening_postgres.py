"""The audit-store hardening (head damage, params written once) on a real PostgreSQL."""

from __future__ import annotations

import pytest
from audit_helpers import action, raw, run_action

from aegis.errors import AuditError
from aegis.runtime.audit import AuditStore

pytestmark = pytest.mark.postgres


async def test_big_params_roundtrip_and_are_stored_out_of_row(pg_url: str) -> None:
    blob = "p" * 50_000
    async with AuditStore(pg_url) as store:
        audit_id = await run_action(store, action(params={"note": blob}))
        assert store.query()[0].params == {"note": blob}
        assert store.verify().status == "ok"
    assert raw(pg_url, "SELECT params FROM aegis_audit WHERE id = :i", i=audit_id)[0][0] == ""
    raw(pg_url, "UPDATE aegis_audit_params SET params = '{}'")
    assert AuditStore(pg_url).verify().edited == [audit_id]


async def test_deleted_head_is_named_and_refused(pg_url: str) -> None:
    async with AuditStore(pg_url) as store:
        for _ in range(3):
            await run_action(store)
    raw(pg_url, "DELETE FROM aegis_audit WHERE id = 3")
    raw(pg_url, "DELETE FROM aegis_audit_head")
    report = AuditStore(pg_url).verify()
    assert [p.kind for p in report.problems] == ["head"]
    with pytest.raises(AuditError, match="chain head is missing"):
        await AuditStore(pg_url).open()
