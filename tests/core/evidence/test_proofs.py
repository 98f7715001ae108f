"""A record proven part of a signed trail, checked with nothing but the proof and the key."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from audit_helpers import ResultStatus, action, decide, run_action
from evidence_helpers import rewrite_consistently

from aegis.errors import AuditError
from aegis.runtime.audit import AuditStore
from aegis.runtime.audit.checkpoint import make_checkpoint
from aegis.runtime.audit.proof import prove, verify_proof


async def trail(url: str, n: int) -> list[int]:
    ids = []
    async with AuditStore(url) as store:
        for i in range(n):
            status = ResultStatus.FAILED if i % 3 == 0 else ResultStatus.SUCCESS
            act = action("delete_contact" if i % 2 else "read_contact", params={"id": i})
            ids.append(await run_action(store, act, status, error="boom" if i % 3 == 0 else None))
    return ids


async def test_every_record_proves_and_the_proof_survives_json(
    db_url: str, signer: Any, public: Any
) -> None:
    ids = await trail(db_url, 13)
    engine = AuditStore(db_url).engine
    cp = make_checkpoint(engine, signer)
    for rid in ids:
        proof = json.loads(json.dumps(prove(engine, rid, cp)))  # as a file would carry it
        report = verify_proof(proof, public)
        assert report.ok and report.record_id == rid, report.detail
    assert "delete_contact on crm_prod" in verify_proof(prove(engine, 2, cp), public).detail


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: p["record"]["intent"].update(target="other_crm"),
        lambda p: p["record"]["outcome"].update(result="success"),
        lambda p: p["record"].update(id=p["record"]["id"] + 1),
        lambda p: p["record"].update(prev_hash="0" * 64),
        lambda p: p.update(leaf_index=p["leaf_index"] + 1),
        lambda p: p.update(tree_size=p["tree_size"] + 1),
        lambda p: p["path"].reverse(),
        lambda p: p["path"].pop(),
        lambda p: p["checkpoint"].update(finals=p["checkpoint"]["finals"] - 1),
        lambda p: p["checkpoint"].update(root="00" * 32),
        lambda p: p.update(path="not a list"),
        lambda p: p.pop("record"),
    ],
)
async def test_an_altered_proof_fails(db_url: str, signer: Any, public: Any, tamper: Any) -> None:
    await trail(db_url, 9)
    engine = AuditStore(db_url).engine
    proof = prove(engine, 4, make_checkpoint(engine, signer))  # record 4 failed
    assert verify_proof(proof, public).ok
    altered = copy.deepcopy(proof)
    tamper(altered)
    report = verify_proof(altered, public)
    assert not report.ok, report.detail


async def test_a_pending_or_later_record_cannot_be_proven(db_url: str, signer: Any) -> None:
    async with AuditStore(db_url) as store:
        await run_action(store)
        cp = make_checkpoint(store.engine, signer)
        await run_action(store)
        act = action()
        pending = await store.begin(act, decide(act))
        engine = store.engine
        with pytest.raises(AuditError, match=r"after .* was signed"):
            prove(engine, 2, cp)
        with pytest.raises(AuditError, match="still pending"):
            prove(engine, pending, make_checkpoint(engine, signer))
        with pytest.raises(AuditError, match="no audit record 99"):
            prove(engine, 99, cp)


async def test_no_proof_from_a_trail_rewritten_since_its_checkpoint(
    db_url: str, signer: Any
) -> None:
    await trail(db_url, 5)
    engine = AuditStore(db_url).engine
    cp = make_checkpoint(engine, signer)
    rewrite_consistently(db_url, 3, "target", "elsewhere")
    with pytest.raises(AuditError, match="no longer matches"):
        prove(AuditStore(db_url).engine, 3, cp)
