"""Consistency proofs: a third party holding two checkpoints checks, without the database,
that the later trail extends the earlier one; rewrites and forks make the proof fail."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import action, run_action
from evidence_helpers import rewrite_consistently
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.cli import main
from aegis.errors import AuditError
from aegis.runtime.audit import AuditStore
from aegis.runtime.audit.checkpoint import Checkpoint, make_checkpoint, write_checkpoint
from aegis.runtime.audit.consistency import prove_consistency, verify_consistency
from aegis.runtime.audit.merkle import (
    consistency_ranges,
    consistent,
    leaf_hash,
    subtree_roots,
    tree_root,
)


async def grow(url: str, n: int, **kw: Any) -> None:
    async with AuditStore(url) as store:
        for _ in range(n):
            await run_action(store, action(**kw))


def checkpoint(url: str, signer: Any) -> Checkpoint:
    return make_checkpoint(AuditStore(url).engine, signer)


def prove(url: str, old: Checkpoint, new: Checkpoint) -> dict[str, Any]:
    return prove_consistency(AuditStore(url).engine, old, new)


async def test_each_checkpoint_is_consistent_with_every_later_one(
    db_url: str, signer: Any, public: Any
) -> None:
    cps = []
    for n in (1, 2, 3, 4, 5, 8, 13):
        await grow(db_url, n)
        cps.append(checkpoint(db_url, signer))
    for i, old in enumerate(cps):
        for new in cps[i:]:
            report = verify_consistency(json.loads(json.dumps(prove(db_url, old, new))), public)
            assert report.ok, (old.size, new.size, report.detail)


async def test_a_fork_cannot_be_proven_consistent(
    tmp_path: Path, db_url: str, signer: Any, public: Any
) -> None:
    """Two histories grown from one checkpoint: each is consistent with the common one, never
    with the other's checkpoint."""
    await grow(db_url, 5)
    common = checkpoint(db_url, signer)
    copy = f"sqlite:///{tmp_path / 'copy.db'}"
    shutil.copy(tmp_path / "audit.db", tmp_path / "copy.db")
    await grow(db_url, 3, target="crm_a")
    a = checkpoint(db_url, signer)
    await grow(copy, 4, target="crm_b")
    b = checkpoint(copy, signer)
    assert verify_consistency(prove(db_url, common, a), public).ok
    assert verify_consistency(prove(copy, common, b), public).ok
    with pytest.raises(AuditError, match="does not extend"):
        prove(copy, a, b)
    # Splicing a's checkpoint into b's proof (what a forger holding both could try) fails.
    forged = {**prove(copy, common, b), "old": a.to_dict()}
    assert not verify_consistency(forged, public).ok


async def test_a_rewritten_history_is_not_consistent_with_the_checkpoint_before_it(
    db_url: str, signer: Any, public: Any
) -> None:
    await grow(db_url, 6)
    honest = checkpoint(db_url, signer)
    rewrite_consistently(db_url, 3, "target", "crm_elsewhere")
    await grow(db_url, 2)
    tricked = checkpoint(db_url, signer)  # the signer vouches for whatever the database says
    with pytest.raises(AuditError, match="does not extend"):
        prove(db_url, honest, tricked)


async def test_an_altered_proof_or_checkpoint_fails(
    db_url: str, signer: Any, public: Any, tmp_path: Path
) -> None:
    await grow(db_url, 5)
    old = checkpoint(db_url, signer)
    await grow(db_url, 6)
    new = checkpoint(db_url, signer)
    proof = prove(db_url, old, new)
    assert verify_consistency(proof, public).ok
    bad_path = {**proof, "path": ["0" * 64, *proof["path"][1:]]}
    bad_head = {**proof, "head": {**proof["head"], "result_hash": "1" * 64}}
    bad_sig = {**proof, "new": {**proof["new"], "root": "2" * 64}}
    short = {**proof, "path": proof["path"][:-1]}
    for broken in (bad_path, bad_head, bad_sig, short, {"format": "other"}, {**proof, "old": 3}):
        assert not verify_consistency(broken, public).ok
    from aegis.runtime.audit.keys import generate_keypair, load_public_key

    generate_keypair(tmp_path / "o.key", tmp_path / "o.pub")
    assert "signed by key" in verify_consistency(proof, load_public_key(tmp_path / "o.pub")).detail
    with pytest.raises(AuditError, match="older checkpoint first"):
        prove(db_url, new, old)


async def test_cli_prove_consistency_and_verify_offline(
    tmp_path: Path, db_url: str, keys: tuple[Path, Path], signer: Any, capsys: Any
) -> None:
    await grow(db_url, 3)
    old = write_checkpoint(checkpoint(db_url, signer), tmp_path / "old.json")
    await grow(db_url, 4)
    new = write_checkpoint(checkpoint(db_url, signer), tmp_path / "new.json")
    out = tmp_path / "c.json"
    argv = ["audit", "prove", "--consistency", str(old), str(new), "--db", db_url, "-o", str(out)]
    assert main(argv) == 0
    (tmp_path / "audit.db").unlink()  # offline from here on
    capsys.readouterr()
    assert main(["audit", "verify-proof", str(out), "--public-key", str(keys[1])]) == 0
    assert capsys.readouterr().out.startswith("OK: the trail signed at")
    data = json.loads(out.read_text())
    data["path"] = list(reversed(data["path"]))
    out.write_text(json.dumps(data))
    assert main(["audit", "verify-proof", str(out), "--public-key", str(keys[1])]) == 1


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_rfc_consistency_proofs_verify_and_bind_both_roots(sizes: tuple[int, int]) -> None:
    old, new = sizes
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(new)]
    path = subtree_roots(iter(leaves), consistency_ranges(old, new))
    old_root, new_root = tree_root(leaves[:old]), tree_root(leaves)
    assert consistent(old, new, old_root, new_root, path)
    if 0 < old < new:
        other = tree_root([*leaves[: old - 1], leaf_hash(b"changed"), *leaves[old:]])
        assert not consistent(old, new, old_root, other, path)
        assert not consistent(old, new, other, new_root, path)
