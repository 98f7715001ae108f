"""The shadow verdict is part of the hashed intent: evidence, and tamper-evident like the rest.

Stores written before the column existed stay readable and verifiable, unmigrated (a reader
never alters a store) and after a writer added the column and wrote shadowed rows beside them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from audit_helpers import raw, run_action

from aegis import Action, Policy, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.cli import main
from aegis.core.result import Result, ResultStatus
from aegis.runtime.audit import AuditStore
from aegis.runtime.audit.checkpoint import make_checkpoint
from aegis.runtime.audit.proof import prove, verify_proof


class Ok(BaseExecutor):
    async def execute(self, action: Action) -> Result:
        return Result(action, ResultStatus.SUCCESS)


LIVE = Policy.from_dict(
    {
        "version": "1",
        "defaults": {"approval": "block"},
        "rules": [
            {"name": "reads", "match": {"type": "read*"}, "approval": "auto", "risk_level": "low"}
        ],
    }
)
CANDIDATE = Policy.from_dict(
    {"version": "1", "defaults": {"approval": "block", "risk_level": "critical"}, "rules": []}
)


async def _shadowed(store: AuditStore, n: int = 2) -> None:
    rt = Runtime(executor=Ok(), policy=LIVE, audit=store, shadow=CANDIDATE)
    for i in range(n):
        await rt.run_one(Action("read_contact", "crm", {"id": i}))
    await rt.close()


async def test_old_store_reads_and_verifies_before_and_after_shadow_rows(db_url: str) -> None:
    async with AuditStore(db_url) as store:
        await run_action(store)
        await run_action(store)
    raw(db_url, "ALTER TABLE aegis_audit DROP COLUMN shadow")  # as written before shadow mode
    reader = AuditStore(db_url)
    assert reader.verify().ok and reader.query()[0].shadow is None
    assert main(["audit", "verify", "--db", db_url]) == 0
    assert "shadow" not in [r[1] for r in raw(db_url, "PRAGMA table_info(aegis_audit)")]
    async with AuditStore(db_url) as store:  # a writer adds the column
        await _shadowed(store)
        report = store.verify()
    assert report.ok and report.checked == 4, report.summary()
    assert main(["audit", "verify", "--db", db_url]) == 0
    records = AuditStore(db_url).query()
    assert [r.shadow is not None for r in records] == [False, False, True, True]
    assert records[2].shadow is not None and records[2].shadow["approval"] == "block"


async def test_the_shadow_verdict_is_tamper_evident(db_url: str) -> None:
    async with AuditStore(db_url) as store:
        await _shadowed(store, 3)
    forged = json.dumps({"approval": "auto", "risk_level": "LOW", "matched_rule": "reads"})
    raw(db_url, "UPDATE aegis_audit SET shadow = :s WHERE id = 1", s=forged)
    raw(db_url, "UPDATE aegis_audit SET shadow = NULL WHERE id = 2")  # the verdict removed
    assert AuditStore(db_url).verify().edited == [1, 2]
    assert main(["audit", "verify", "--db", db_url]) == 1


async def test_a_shadow_added_to_an_old_row_is_caught(db_url: str) -> None:
    async with AuditStore(db_url) as store:
        await run_action(store)
    raw(db_url, """UPDATE aegis_audit SET shadow = '{"approval":"block"}' WHERE id = 1""")
    assert AuditStore(db_url).verify().edited == [1]


async def test_proofs_cover_the_shadow_and_old_proofs_still_verify(
    db_url: str, signer: Any, public: Any
) -> None:
    async with AuditStore(db_url) as store:
        await run_action(store)
        await _shadowed(store, 1)
        engine = store.engine
        cp = make_checkpoint(engine, signer)
        plain, shadowed = prove(engine, 1, cp), prove(engine, 2, cp)
    assert verify_proof(shadowed, public).ok
    shadowed["record"]["intent"]["shadow"] = None
    assert not verify_proof(shadowed, public).ok
    # A proof written before the column existed has no "shadow" key at all (nor the approval
    # columns added after it).
    for later in ("approval_answers", "approval_request", "shadow"):
        assert plain["record"]["intent"].pop(later) is None
    assert verify_proof(plain, public).ok
    plain["record"]["intent"].pop("chain_depth")  # trailing NULL columns were never hashed
    assert verify_proof(plain, public).ok
    plain["record"]["intent"].pop("target")  # any other missing column is not the format
    assert not verify_proof(plain, public).ok


@pytest.mark.postgres
async def test_postgres_old_store_migrates_verifies_and_reports(pg_url: str) -> None:
    from sqlalchemy import create_engine, text

    from aegis.runtime.shadow_report import shadow_report

    async with AuditStore(pg_url) as store:
        await run_action(store)
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE aegis_audit DROP COLUMN shadow"))
    assert AuditStore(pg_url).verify().ok  # read as it is, unmigrated
    async with AuditStore(pg_url) as store:
        await _shadowed(store, 3)
        assert store.verify().ok
    report = shadow_report(engine)
    engine.dispose()
    assert (report.records, report.changed) == (3, 3)
    (change,) = report.changes
    assert (change.live, change.shadow, change.live_rule) == ("auto", "block", "reads")
    assert [e.id for e in change.examples] == [4, 3, 2]
    with create_engine(pg_url).begin() as conn:
        conn.execute(text("UPDATE aegis_audit SET shadow = NULL WHERE id = 3"))
    assert AuditStore(pg_url).verify().edited == [3]
