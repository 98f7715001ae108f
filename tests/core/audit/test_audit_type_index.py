"""Type globs are answered from the index on lower(action_type), with the same rows a plain
filtered scan returns (``aegis audit -a GLOB``)."""

from __future__ import annotations

import pytest
from audit_helpers import action, run_action
from sqlalchemy import create_engine

from aegis.runtime.audit import AuditStore
from aegis.runtime.audit import query as audit_query
from aegis.runtime.audit.query import AuditFilter

TYPES = ("read_contact", "Delete_Contact", "delete%x", "export_report", "send_email", "readme")


@pytest.fixture
async def trail(db_url: str) -> AuditStore:
    async with AuditStore(db_url) as s:
        for i in range(60):
            await run_action(s, action(TYPES[i % len(TYPES)], f"crm_{i % 4}"))
    return s


def plain(db_url: str, flt: AuditFilter, limit: int | None, order: str) -> list[int]:
    """The same filter as one ordered scan (what query did before the index)."""
    from sqlalchemy import and_, select

    from aegis.runtime.audit.schema import audit_log

    by_id = audit_log.c.id.asc() if order == "asc" else audit_log.c.id.desc()
    stmt = select(audit_log.c.id).where(and_(*flt.clauses())).order_by(by_id).limit(limit)
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [int(r[0]) for r in conn.execute(stmt)]
    finally:
        engine.dispose()


GLOBS = ["delete*", "DELETE*", "transfer*", "*_contact", "?ead*", "delete%*", "delete_*", "*"]


@pytest.mark.parametrize("glob", GLOBS)
@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("limit", [1, 7, 100])
def test_type_globs_return_what_a_scan_returns(
    trail: AuditStore, db_url: str, glob: str, order: str, limit: int
) -> None:
    got = [r.id for r in trail.query(action_type=glob, limit=limit, order=order)]  # type: ignore[arg-type]
    assert got == plain(db_url, AuditFilter(action_type=glob), limit, order)


def test_with_other_filters(trail: AuditStore, db_url: str) -> None:
    flt = AuditFilter(action_type="*contact", after_id=10)
    got = [r.id for r in trail.query(action_type="*contact", after_id=10, limit=5, order="desc")]
    assert got == plain(db_url, flt, 5, "desc") and got


def test_too_many_types_fall_back_to_a_scan(
    trail: AuditStore, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_query, "TYPE_SKIP_MAX", 2)
    got = [r.id for r in trail.query(action_type="*e*", limit=10, order="desc")]
    assert got == plain(db_url, AuditFilter(action_type="*e*"), 10, "desc")


async def test_a_store_reopens_with_its_expression_index(trail: AuditStore, db_url: str) -> None:
    for _ in range(2):  # the index cannot be reflected: it must not be created twice
        async with AuditStore(db_url) as again:
            assert again.count() == 60
