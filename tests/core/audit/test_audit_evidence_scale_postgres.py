"""The type index, the merged per-type query and the verify walk on a real PostgreSQL."""

from __future__ import annotations

import pytest
from audit_helpers import action, raw, run_action

from aegis.runtime.audit import AuditStore

pytestmark = pytest.mark.postgres

TYPES = ("read_contact", "Delete_Contact", "delete%x", "export_report", "readme")


async def test_type_globs_match_a_plain_scan(pg_url: str) -> None:
    async with AuditStore(pg_url) as store:
        for i in range(30):
            await run_action(store, action(TYPES[i % len(TYPES)], "crm"))
        for glob, order in (("delete*", "desc"), ("*e", "asc"), ("transfer*", "desc")):
            got = [r.id for r in store.query(action_type=glob, limit=4, order=order)]  # type: ignore[arg-type]
            every = [r.id for r in store.query(limit=None, order=order)]  # type: ignore[arg-type]
            want = [
                i
                for i in every
                if store.get(i) is not None and _glob(glob, store.get(i).action_type)  # type: ignore[union-attr]
            ][:4]
            assert got == want, glob
    async with AuditStore(pg_url) as again:  # the expression index is not created twice
        assert again.count() == 30


def _glob(pattern: str, value: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


async def test_verify_names_edits_of_odd_values(pg_url: str) -> None:
    async with AuditStore(pg_url) as store:
        for i in range(6):
            act = action(params={"text": "café ☕ \x7f", "i": i})
            await run_action(store, act, duration_ms=[1.5, 100.0, 1e16][i % 3])
        assert store.verify().ok
    raw(pg_url, "UPDATE aegis_audit SET duration_ms = 1.5000000000000002 WHERE id = 1")
    raw(pg_url, "UPDATE aegis_audit SET params = replace(params, 'é', 'e') WHERE id = 4")
    assert AuditStore(pg_url).verify().edited == [1, 4]
