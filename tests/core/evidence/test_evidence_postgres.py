"""Checkpoints, proofs and interrupted outcomes on a real PostgreSQL server."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import action, decide, raw, run_action
from evidence_helpers import rewrite_consistently, truncate

from aegis.runtime.audit import AuditStore
from aegis.runtime.audit.autocheckpoint import CheckpointSchedule
from aegis.runtime.audit.checkpoint import Checkpoint, load_checkpoints, make_checkpoint
from aegis.runtime.audit.evidence import verify_against
from aegis.runtime.audit.proof import prove, verify_proof

pytestmark = pytest.mark.postgres


async def grow(url: str, n: int) -> None:
    async with AuditStore(url) as store:
        for _ in range(n):
            await run_action(store)


def cp_of(url: str, signer: Any) -> Checkpoint:
    return make_checkpoint(AuditStore(url).engine, signer)


def check(url: str, cps: list[Checkpoint], public: Any) -> Any:
    return verify_against(AuditStore(url).engine, cps, public)


async def test_rewrite_truncation_and_fork_are_named(pg_url: str, signer: Any, public: Any) -> None:
    await grow(pg_url, 4)
    first = cp_of(pg_url, signer)
    await grow(pg_url, 4)
    second = cp_of(pg_url, signer)
    assert check(pg_url, [first, second], public).ok

    rewrite_consistently(pg_url, 6, "target", "elsewhere")
    assert AuditStore(pg_url).verify().ok
    report = check(pg_url, [first, second], public)
    assert report.kinds() == {"rewritten"} and "records 5-8" in report.summary()

    await grow(pg_url, 1)
    tricked = cp_of(pg_url, signer)  # the signer now vouches for the rewritten history
    report = check(pg_url, [first, second, tricked], public)
    assert "forked" in report.kinds() and tricked.name in report.summary()

    truncate(pg_url, 3)
    assert AuditStore(pg_url).verify().ok
    report = check(pg_url, [first], public)
    assert report.kinds() == {"truncated"} and "records 4-4 were removed" in report.summary()


async def test_proofs(pg_url: str, signer: Any, public: Any) -> None:
    await grow(pg_url, 7)
    engine = AuditStore(pg_url).engine
    cp = make_checkpoint(engine, signer)
    for rid in range(1, 8):
        proof = prove(engine, rid, cp)
        assert verify_proof(proof, public).ok
    proof["record"]["intent"]["params"] = '{"id":2}'
    assert not verify_proof(proof, public).ok


async def test_dead_owner_becomes_interrupted_and_autocheckpoints(
    pg_url: str, tmp_path: Path, keys: tuple[Path, Path], public: Any
) -> None:
    async with AuditStore(pg_url) as store:
        act = action()
        rid = await store.begin(act, decide(act))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owner = f"{socket.gethostname()}:{dead.pid}:1"
    raw(pg_url, "UPDATE aegis_audit SET owner = :o WHERE id = :i", o=owner, i=rid)
    schedule = CheckpointSchedule(key=keys[0], directory=tmp_path / "cps", every_records=2)
    async with AuditStore(pg_url, checkpoints=schedule) as store:
        assert store.interrupted == [rid]
        assert store.get(rid).result == "interrupted"  # type: ignore[union-attr]
        for _ in range(3):
            await run_action(store)
    cps = load_checkpoints([tmp_path / "cps"])
    assert cps and cps[-1].finals == 4
    assert check(pg_url, cps, public).ok


async def test_a_store_from_before_owners_is_migrated(pg_url: str) -> None:
    await grow(pg_url, 1)
    raw(pg_url, "ALTER TABLE aegis_audit DROP COLUMN owner")
    assert AuditStore(pg_url).verify().ok and AuditStore(pg_url).count() == 1
    await grow(pg_url, 1)
    assert AuditStore(pg_url).verify().ok
    assert raw(pg_url, "SELECT owner IS NOT NULL FROM aegis_audit ORDER BY id") == [
        (False,),
        (True,),
    ]
