"""Tampering that the chain alone cannot see, caught against signed checkpoints and named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import action, raw, run_action
from evidence_helpers import rewrite_consistently, truncate

from aegis.errors import AuditError
from aegis.runtime.audit import AuditStore
from aegis.runtime.audit.checkpoint import Checkpoint, load_checkpoints, make_checkpoint
from aegis.runtime.audit.evidence import verify_against
from aegis.runtime.audit.keys import generate_keypair, load_private_key, load_public_key


async def grow(url: str, n: int, **kw: Any) -> None:
    async with AuditStore(url) as store:
        for _ in range(n):
            await run_action(store, action(**kw))


def checkpoint(url: str, signer: Any) -> Checkpoint:
    return make_checkpoint(AuditStore(url).engine, signer)


def check(url: str, cps: list[Checkpoint], public: Any) -> Any:
    return verify_against(AuditStore(url).engine, cps, public)


async def test_a_valid_trail_with_several_checkpoints_verifies(
    db_url: str, signer: Any, public: Any
) -> None:
    await grow(db_url, 0)
    cps = [checkpoint(db_url, signer)]  # the empty trail can be signed too
    for n in (3, 1, 7):
        await grow(db_url, n)
        cps.append(checkpoint(db_url, signer))
    report = check(db_url, cps, public)
    assert report.ok, report.summary()
    assert (report.checkpoints, report.matching) == (4, 4)
    assert [cp.size for cp in cps] == [0, 3, 4, 11]


async def test_pending_rows_are_in_the_chain_not_yet_in_the_tree(
    db_url: str, signer: Any, public: Any
) -> None:
    async with AuditStore(db_url) as store:
        await run_action(store)
        act = action()
        from audit_helpers import decide

        open_id = await store.begin(act, decide(act))
        await run_action(store)
        cp = make_checkpoint(store.engine, signer)
        assert (cp.size, cp.finals) == (3, 2)
        from audit_helpers import Result, ResultStatus

        await store.finish(open_id, Result(act, ResultStatus.SUCCESS, attempts=1))
        later = make_checkpoint(store.engine, signer)
    assert (later.size, later.finals) == (3, 3)
    assert check(db_url, [cp, later], public).ok


async def test_a_consistently_rewritten_chain_is_named(
    db_url: str, signer: Any, public: Any
) -> None:
    await grow(db_url, 4)
    early = checkpoint(db_url, signer)
    await grow(db_url, 4)
    late = checkpoint(db_url, signer)
    rewrite_consistently(db_url, 6, "target", "someone_elses_crm")
    assert AuditStore(db_url).verify().ok  # the chain alone is fooled
    report = check(db_url, [early, late], public)
    assert not report.ok
    rewritten = [f for f in report.findings if f.kind == "rewritten"]
    assert {f.checkpoint for f in rewritten} == {late.name}
    assert any("records 5-8" in f.detail for f in rewritten), report.summary()
    assert not [f for f in report.findings if f.checkpoint == early.name]


async def test_a_rewritten_outcome_is_named(db_url: str, signer: Any, public: Any) -> None:
    await grow(db_url, 5)
    cp = checkpoint(db_url, signer)
    rewrite_consistently(db_url, 2, "result", "failed")  # only the outcome: the intent chain holds
    assert AuditStore(db_url).verify().ok
    report = check(db_url, [cp], public)
    kinds = [(f.kind, "outcomes" in f.detail) for f in report.findings]
    assert kinds == [("rewritten", True)], report.summary()


async def test_truncation_is_named(db_url: str, signer: Any, public: Any) -> None:
    await grow(db_url, 6)
    cp = checkpoint(db_url, signer)
    truncate(db_url, 4)
    assert AuditStore(db_url).verify().ok  # a consistent shorter chain
    report = check(db_url, [cp], public)
    assert report.kinds() == {"truncated"}
    assert "records 5-6 were removed" in report.summary()


async def test_a_fork_from_one_checkpoint_is_named(
    tmp_path: Path, db_url: str, signer: Any, public: Any
) -> None:
    await grow(db_url, 5)
    common = checkpoint(db_url, signer)
    copy = f"sqlite:///{tmp_path / 'copy.db'}"
    shutil.copy(tmp_path / "audit.db", tmp_path / "copy.db")
    await grow(db_url, 3, target="crm_a")
    a = checkpoint(db_url, signer)
    await grow(copy, 3, target="crm_b")
    b = checkpoint(copy, signer)
    for url in (db_url, copy):
        report = check(url, [common, a, b], public)
        forks = [f for f in report.findings if f.kind == "forked"]
        assert forks and a.name in forks[0].checkpoint and b.name in forks[0].checkpoint
        assert "record 8" in forks[0].detail


async def test_a_signer_made_to_sign_a_rewritten_history_is_a_fork(
    db_url: str, signer: Any, public: Any
) -> None:
    await grow(db_url, 4)
    honest = checkpoint(db_url, signer)
    rewrite_consistently(db_url, 2, "action_type", "read_contact_v2")
    await grow(db_url, 1)
    tricked = checkpoint(db_url, signer)  # signs whatever the database now says
    report = check(db_url, [honest, tricked], public)
    assert [f.kind for f in report.findings] == ["forked", "rewritten"], report.summary()
    assert tricked.name in report.findings[0].detail


async def test_a_forged_or_foreign_checkpoint_is_not_trusted(
    tmp_path: Path, db_url: str, signer: Any, public: Any
) -> None:
    await grow(db_url, 3)
    cp = checkpoint(db_url, signer)
    forged = Checkpoint.from_dict({**cp.to_dict(), "size": 2}, "forged.json")
    generate_keypair(tmp_path / "other.key", tmp_path / "other.pub")
    foreign = make_checkpoint(AuditStore(db_url).engine, load_private_key(tmp_path / "other.key"))
    report = check(db_url, [forged, foreign], public)
    assert {(f.kind, f.checkpoint) for f in report.findings} == {
        ("bad_signature", "forged.json"),
        ("wrong_key", foreign.name),
    }
    assert report.matching == 0
    assert load_public_key(tmp_path / "other.key")  # a private key file gives its public half


async def test_checkpoint_files_round_trip_and_reject_bad_input(
    tmp_path: Path, db_url: str, signer: Any, public: Any
) -> None:
    from aegis.runtime.audit.checkpoint import write_checkpoint

    await grow(db_url, 2)
    out = tmp_path / "cps"
    out.mkdir()
    path = write_checkpoint(checkpoint(db_url, signer), out)
    [loaded] = load_checkpoints([out])
    assert loaded.source == str(path) and loaded.signature_ok(public)
    data = json.loads(path.read_text())
    for bad, message in (
        ({**data, "size": -1}, "'size'"),
        ({**data, "extra": 1}, "unknown key 'extra'"),
        ({**data, "format": "x"}, "format"),
    ):
        path.write_text(json.dumps(bad))
        with pytest.raises(AuditError, match=message):
            Checkpoint.load(path)
    path.write_text("{")
    with pytest.raises(AuditError, match="not JSON"):
        Checkpoint.load(path)


async def test_no_checkpoint_is_signed_over_a_visibly_broken_head(db_url: str, signer: Any) -> None:
    await grow(db_url, 2)
    raw(db_url, "UPDATE aegis_audit SET row_hash = 'x' WHERE id = 2")
    with pytest.raises(AuditError, match="does not match record 2"):
        checkpoint(db_url, signer)
