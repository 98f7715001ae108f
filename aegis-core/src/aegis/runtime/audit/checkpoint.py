"""Signed checkpoints: a statement, outside the database, of what the trail held at a moment.

A checkpoint is a small JSON document signed with Ed25519::

    {"format": "aegis-checkpoint/1", "size": 1200, "head": "<row_hash of record 1200>",
     "finals": 1198, "root": "<Merkle root>", "time": "2026-...Z", "key_id": "3f9c...",
     "signature": "<base64>"}

* ``size`` / ``head``: the hash chain's length and the hash of its last record. The chain covers
  every record's intent (what was asked, decided, approved), so any later edit, deletion or
  reordering of records 1..size changes ``head``.
* ``finals`` / ``root``: the RFC 6962 Merkle root over the first ``finals`` outcomes in the order
  they became final (``final_seq``), each leaf binding record id, intent hash and outcome hash
  (``audit.merkle.record_leaf``). Outcomes are appended in that order and never change, so the
  tree only grows: every checkpoint's root stays reproducible from an honest trail forever, and a
  record can be proven against it (``audit.proof``). Rows still pending are in the chain (size)
  but not yet in the tree.

The signature covers ``"aegis-checkpoint/1\\n"`` followed by the compact, key-sorted JSON of every
field but ``signature``. Whoever holds the public key and earlier checkpoints can detect a
rewritten, truncated or forked trail (``audit.evidence.verify_against``), without trusting the
database or whoever runs it.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import Connection, Engine, and_, case, func, or_, select

from aegis.errors import AuditError
from aegis.runtime.audit.keys import key_id
from aegis.runtime.audit.merkle import TreeBuilder, record_leaf
from aegis.runtime.audit.schema import GENESIS_HASH, audit_log, chain_head

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

FORMAT = "aegis-checkpoint/1"
_FIELDS = ("format", "size", "head", "finals", "root", "time", "key_id")


@attrs.frozen
class Checkpoint:
    """One signed statement about the trail. ``source`` (where it was read from) is not signed."""

    size: int
    head: str
    finals: int
    root: str
    time: str
    key_id: str
    signature: str = ""
    source: str = attrs.field(default="", eq=False)

    def body(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "size": self.size,
            "head": self.head,
            "finals": self.finals,
            "root": self.root,
            "time": self.time,
            "key_id": self.key_id,
        }

    def message(self) -> bytes:
        text = json.dumps(self.body(), sort_keys=True, separators=(",", ":"))
        return f"{FORMAT}\n{text}".encode()

    def signed(self, key: Ed25519PrivateKey) -> Checkpoint:
        unsigned = attrs.evolve(self, key_id=key_id(key.public_key()), signature="")
        sig = base64.b64encode(key.sign(unsigned.message())).decode()
        return attrs.evolve(unsigned, signature=sig)

    def signature_ok(self, public_key: Ed25519PublicKey) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            public_key.verify(base64.b64decode(self.signature, validate=True), self.message())
        except (InvalidSignature, ValueError):
            return False
        return True

    @property
    def name(self) -> str:
        return self.source or f"checkpoint@{self.size}/{self.finals}"

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "signature": self.signature}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Any, source: str = "") -> Checkpoint:
        where = source or "checkpoint"
        if not isinstance(data, dict):
            raise AuditError(f"{where}: not a checkpoint (expected a JSON object)")
        if data.get("format") != FORMAT:
            raise AuditError(f"{where}: format {data.get('format')!r} is not {FORMAT!r}")
        unknown = sorted(set(data) - {*_FIELDS, "signature"})
        if unknown:
            raise AuditError(f"{where}: unknown key {unknown[0]!r}")
        for name, kind in (("size", int), ("finals", int)):
            value = data.get(name)
            if type(value) is not kind or value < 0:
                raise AuditError(f"{where}: key {name!r} must be a non-negative integer")
        for name in ("head", "root", "time", "key_id", "signature"):
            if not isinstance(data.get(name), str):
                raise AuditError(f"{where}: key {name!r} must be a string")
        return cls(
            size=data["size"],
            head=data["head"],
            finals=data["finals"],
            root=data["root"],
            time=data["time"],
            key_id=data["key_id"],
            signature=data["signature"],
            source=source,
        )

    @classmethod
    def load(cls, path: Path | str) -> Checkpoint:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise AuditError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise AuditError(f"{path}: not JSON ({exc})") from None
        return cls.from_dict(data, str(path))


def load_checkpoints(paths: list[Path]) -> list[Checkpoint]:
    """Checkpoint files; a directory stands for every ``*.json`` file in it."""
    files: list[Path] = []
    for path in paths:
        files += sorted(path.glob("*.json")) if path.is_dir() else [path]
    return [Checkpoint.load(f) for f in files]


def write_checkpoint(checkpoint: Checkpoint, out: Path) -> Path:
    """Write to ``out`` (a directory gets a file named by size and time); returns the path.

    Written to a temporary name and renamed, so a reader never sees half a checkpoint.
    """
    if out.is_dir():
        stamp = checkpoint.time.replace(":", "").replace("-", "").replace("+0000", "Z")
        out = out / f"checkpoint-{checkpoint.size:012d}-{stamp}.json"
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(checkpoint.to_json(), encoding="utf-8")
    tmp.replace(out)
    return out


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


# -- reading the trail ---------------------------------------------------------------------------


@contextlib.contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only connection seeing one consistent state of the trail."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")
        else:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            yield conn
        finally:
            conn.rollback()


def read_head(conn: Connection) -> tuple[int, str, int]:
    row = conn.execute(
        select(chain_head.c.last_id, chain_head.c.last_hash, chain_head.c.last_final).where(
            chain_head.c.id == 1
        )
    ).first()
    if row is None:
        raise AuditError("the audit chain head is missing (table aegis_audit_head is empty)")
    return int(row[0]), str(row[1]), int(row[2])


def iter_outcomes(conn: Connection, upto: int) -> Iterator[tuple[int, int, str, str]]:
    """``(final_seq, id, row_hash, result_hash)`` for final_seq 1..upto, in final order.

    One streamed statement: the database sorts, Python holds one batch at a time.
    """
    c = audit_log.c
    stmt = (
        select(c.final_seq, c.id, c.row_hash, c.result_hash)
        .where(and_(c.final_seq.is_not(None), c.final_seq <= upto))
        .order_by(c.final_seq)
    )
    result = conn.execution_options(stream_results=True, yield_per=5000).execute(stmt)
    for row in result:
        yield int(row[0]), int(row[1]), row[2], row[3] or ""


class TrailTree:
    """The outcome tree, extended incrementally (for checkpoints every N records).

    ``scan_from`` is the lowest id that may still hold an outcome not yet in the tree (every
    row below it is final and added), so an update reads only the tail of the table.
    """

    def __init__(self) -> None:
        self.builder = TreeBuilder()
        self.scan_from = 1

    @property
    def finals(self) -> int:
        return self.builder.size

    def extend(self, conn: Connection, upto: int) -> None:
        c = audit_log.c
        done = self.finals
        if upto <= done:
            return
        newer = or_(c.final_seq.is_(None), c.final_seq > done)
        low = conn.execute(
            select(func.min(case((newer, c.id)))).where(c.id >= self.scan_from)
        ).scalar()
        if low is None:
            raise AuditError(f"the trail's head says {upto} outcomes, but only {done} exist")
        stmt = (
            select(c.final_seq, c.id, c.row_hash, c.result_hash)
            .where(and_(c.id >= low, c.final_seq > done, c.final_seq <= upto))
            .order_by(c.final_seq)
        )
        for seq, rid, rhash, shash in conn.execution_options(yield_per=5000).execute(stmt):
            if int(seq) != self.finals + 1:
                raise AuditError(
                    f"outcome {self.finals + 1} is missing from the trail (found {seq} next); "
                    "run 'aegis audit verify'"
                )
            self.builder.add(record_leaf(int(rid), rhash, shash or ""))
        if self.finals != upto:
            raise AuditError(f"the trail's head says {upto} outcomes, but only {self.finals} exist")
        self.scan_from = int(low)


def build_checkpoint(conn: Connection, tree: TrailTree, key: Ed25519PrivateKey) -> Checkpoint:
    """Sign the state seen by ``conn`` (a ``snapshot``), extending ``tree`` to it first.

    Refuses to sign a head that its own last record contradicts: a checkpoint must never
    vouch for a trail that is already visibly damaged.
    """
    last_id, last_hash, last_final = read_head(conn)
    if last_id:
        stored = conn.execute(
            select(audit_log.c.row_hash).where(audit_log.c.id == last_id)
        ).scalar()
        if stored != last_hash:
            raise AuditError(
                f"the chain head does not match record {last_id}; run 'aegis audit verify'"
            )
    elif last_hash != GENESIS_HASH:
        raise AuditError("the chain head of an empty trail is not the genesis hash")
    tree.extend(conn, last_final)
    unsigned = Checkpoint(
        size=last_id,
        head=last_hash,
        finals=tree.finals,
        root=tree.builder.root().hex(),
        time=now_iso(),
        key_id="",
    )
    return unsigned.signed(key)


def make_checkpoint(engine: Engine, key: Ed25519PrivateKey) -> Checkpoint:
    """A fresh checkpoint of the whole trail (``aegis audit checkpoint``)."""
    with snapshot(engine) as conn:
        return build_checkpoint(conn, TrailTree(), key)
