"""Consistency proofs: a later checkpoint's trail extends an earlier one's, shown offline.

``aegis audit prove --consistency OLD NEW`` writes::

    {"format": "aegis-consistency/1", "old": {...signed checkpoint...},
     "new": {...signed checkpoint...}, "path": ["<hex>", ...],
     "head": {"leaf_index": 41, "result_hash": "...", "path": ["<hex>", ...]}}

Two things are proven, with O(log n) hashes each, and nothing else from the database:

* the outcome tree: ``path`` is the RFC 6962/9162 consistency proof that the first
  ``old.finals`` leaves of the new tree are exactly the old tree (no outcome rewritten, removed
  or re-ordered; the tree only grew);
* the hash chain: ``head`` is the inclusion proof, in the new tree, of the leaf of record
  ``old.size`` with the old checkpoint's ``head`` as its intent hash. That hash chains every
  record before it, so records 1..old.size (their intents) are the ones the old checkpoint
  signed. It needs record ``old.size`` final when NEW was signed (it is, unless it was still in
  flight; then use a later checkpoint).

Verifying needs the signer's public key (both signatures are checked) and the file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select

from aegis.errors import AuditError
from aegis.runtime.audit.checkpoint import Checkpoint, iter_outcomes, snapshot
from aegis.runtime.audit.keys import key_id
from aegis.runtime.audit.merkle import (
    consistency_ranges,
    consistent,
    inclusion_path,
    path_ranges,
    record_leaf,
    root_from_path,
    subtree_roots,
)
from aegis.runtime.audit.proof import ProofReport
from aegis.runtime.audit.schema import audit_log

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "aegis-consistency/1"


def prove_consistency(engine: Engine, old: Checkpoint, new: Checkpoint) -> dict[str, Any]:
    """The proof that the trail ``new`` signed extends the one ``old`` signed."""
    if old.finals > new.finals or old.size > new.size:
        raise AuditError(
            f"{old.name} covers more than {new.name} ({old.size}/{old.finals} records/outcomes "
            f"against {new.size}/{new.finals}): give the older checkpoint first"
        )
    c = audit_log.c
    with snapshot(engine) as conn:
        head: dict[str, Any] | None = None
        if old.size:
            row = conn.execute(select(c.final_seq, c.result_hash).where(c.id == old.size)).first()
            if row is None:
                raise AuditError(f"record {old.size} is not in the trail")
            if row[0] is None or int(row[0]) > new.finals:
                raise AuditError(
                    f"record {old.size} (the last one {old.name} covers) was not final when "
                    f"{new.name} was signed; prove against a later checkpoint"
                )
            index = int(row[0]) - 1
            leaves = (
                record_leaf(rid, rh, sh) for _s, rid, rh, sh in iter_outcomes(conn, new.finals)
            )
            _leaf, head_path = inclusion_path(leaves, index, new.finals)
            head = {
                "leaf_index": index,
                "result_hash": row[1],
                "path": [node.hex() for node in head_path],
            }
        ranges = consistency_ranges(old.finals, new.finals)
        leaves = (record_leaf(rid, rh, sh) for _s, rid, rh, sh in iter_outcomes(conn, new.finals))
        try:
            path = subtree_roots(leaves, ranges)
        except ValueError as exc:
            raise AuditError(f"cannot prove consistency: {exc}") from None
    proof = {
        "format": FORMAT,
        "old": old.to_dict(),
        "new": new.to_dict(),
        "path": [node.hex() for node in path],
        "head": head,
    }
    report = verify_consistency(proof, None)
    if not report.ok:
        raise AuditError(
            f"the trail does not extend {old.name} to {new.name} ({report.detail}); run "
            "'aegis audit verify --checkpoint' to see what changed"
        )
    return proof


def verify_consistency(proof: Any, public_key: Ed25519PublicKey | None) -> ProofReport:
    """Check a consistency proof offline; never raises for a malformed one (it is invalid).
    ``public_key`` None skips the signatures (only for checking a proof just made)."""
    try:
        return _verify(proof, public_key)
    except AuditError as exc:
        return ProofReport(False, str(exc))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        return ProofReport(False, f"malformed proof ({type(exc).__name__}: {exc})")


def _verify(proof: Any, public_key: Ed25519PublicKey | None) -> ProofReport:
    if not isinstance(proof, dict) or proof.get("format") != FORMAT:
        return ProofReport(False, f"not an {FORMAT} document")
    old = Checkpoint.from_dict(proof["old"], "the old checkpoint")
    new = Checkpoint.from_dict(proof["new"], "the new checkpoint")
    if public_key is not None:
        for which, cp in (("old", old), ("new", new)):
            if cp.key_id != key_id(public_key):
                return ProofReport(False, f"the {which} checkpoint is signed by key {cp.key_id}")
            if not cp.signature_ok(public_key):
                return ProofReport(False, f"the {which} checkpoint's signature does not match")
    if old.size > new.size:
        return ProofReport(False, f"the new checkpoint has fewer records ({new.size} < {old.size})")
    path = [bytes.fromhex(p) for p in proof["path"]]
    if not consistent(
        old.finals, new.finals, bytes.fromhex(old.root), bytes.fromhex(new.root), path
    ):
        return ProofReport(
            False,
            f"the outcome tree of {new.finals} does not extend the one of {old.finals}: "
            "outcomes the old checkpoint signed were rewritten, removed or re-ordered",
        )
    head = proof["head"]
    if old.size:
        index, sh = head["leaf_index"], head["result_hash"]
        if type(index) is not int or not isinstance(sh, str):
            return ProofReport(False, "malformed proof (head)")
        if len(head["path"]) != len(path_ranges(index, new.finals)):
            return ProofReport(False, "the head proof has the wrong length")
        nodes = [bytes.fromhex(p) for p in head["path"]]
        root = root_from_path(record_leaf(old.size, old.head, sh), index, new.finals, nodes)
        if root is None or root.hex() != new.root:
            return ProofReport(
                False,
                f"record {old.size} in the new trail does not have the hash the old checkpoint "
                f"signed: records 1-{old.size} were rewritten (a fork)",
            )
    elif old.head != "0" * 64:
        return ProofReport(False, "the old checkpoint signs an empty trail with a non-genesis head")
    return ProofReport(
        True,
        f"the trail signed at {new.time} ({new.size} records, {new.finals} outcomes) extends "
        f"the one signed at {old.time} ({old.size} records, {old.finals} outcomes)",
    )
