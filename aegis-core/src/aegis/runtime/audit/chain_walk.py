"""Walking the hash chain over one range of ids, fast; the standard library only.

Why a module of its own with no imports beyond the standard library: ``aegis audit verify``
splits a large SQLite trail into id ranges and walks each in a process of its own (one per
core), and that process runs this file as a script (``python -I audit_chain_walk.py``), so it
starts in milliseconds instead of importing the package.

What makes it fast: the database builds each row's hashed text (the *preimage*) in C and hands
over eight values per row instead of thirty (``audit.verify.sqlite_fast_sql``). The preimage is
only a shortcut, never trusted: a row passes when SHA-256 of that text equals the stored hash.
The database's text is a faithful JSON encoding of the columns as they are now (the SQL returns
NULL where it could not be: a float whose text does not read back as the same number, a blob),
so a match means the columns hold exactly the values the writer hashed. Where it does not match
(non-ASCII text the writer escaped as ``\\uXXXX``, an unusual float, or real tampering), the row
is checked the exact way, from its columns (``exact``), and only that decides.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from aegis.core.direct_json import direct_encode

_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=True)
_dumps = _ENCODER.encode


#: ``_dumps`` for lists and tuples, byte-identical and cheaper (``aegis.core.direct_json``).
_fast_dumps = direct_encode(_ENCODER)
_sha256 = hashlib.sha256

#: (id, prev_hash, row_hash, result_hash, result, final_seq, intent preimage, outcome preimage)
FastRow = tuple[Any, ...]
#: ids -> {id: (intent hash matches, outcome hash matches)}, checked from the columns themselves.
ExactCheck = Callable[[list[int]], dict[int, tuple[bool, bool]]]


def canonical(values: Sequence[Any]) -> str:
    """The exact text hashed for a tuple of column values (stable across dialects)."""
    if type(values) in (list, tuple):
        return _fast_dumps(values)
    return _dumps(list(values))


def intent_json(values: Sequence[Any], base: int) -> str:
    """``audit.chain.intent_json`` with the count of always-hashed columns passed in."""
    end = len(values)
    while end > base and values[end - 1] is None:
        end -= 1
    return canonical(values[:end] if end < len(values) else values)


def row_hash(prev_hash: str, row_id: int, intent_json: str) -> str:
    return _sha256(f"{prev_hash}\n{row_id}\n{intent_json}".encode()).hexdigest()


def result_hash(row_hash_: str, result_json: str) -> str:
    return _sha256(f"{row_hash_}\n{result_json}".encode()).hexdigest()


_NON_ASCII = re.compile("[^\x00-\x7e]")
_NON_ASCII_BYTES = re.compile(b"[^\x00-\x7e]")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code > 0xFFFF:  # a surrogate pair, as json.dumps writes it
        code -= 0x10000
        return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def ascii_json(preimage: bytes) -> bytes:
    """The database's JSON text with non-ASCII (and DEL) escaped as ``json.dumps`` escapes it.

    Outside JSON strings a preimage is hex and digits, so every such character is inside a
    string, where the escape means the same character: still a faithful encoding.
    """
    return _NON_ASCII.sub(_escape_char, preimage.decode("utf-8")).encode()


def _matches(preimage: bytes | None, stored: Any) -> bool:
    if preimage is None or not isinstance(stored, str):
        return False
    if _sha256(preimage).hexdigest() == stored:
        return True
    if _NON_ASCII_BYTES.search(preimage) is None:
        return False
    try:
        return _sha256(ascii_json(preimage)).hexdigest() == stored
    except UnicodeDecodeError:  # bytes written into a text column: never what was hashed
        return False


class RangeWalk:
    """The chain walk over rows ``prev_id + 1 ..``, starting from the row before them.

    Feeding it ranges one after the other, each started from the last row of the one before,
    gives exactly the findings of one walk over the whole trail: that is what lets ranges be
    walked in separate processes and joined.
    """

    def __init__(self, prev_id: int, prev_hash: str, head_id: int | None, exact: ExactCheck):
        self.prev_id = prev_id
        self.prev_hash = prev_hash
        self.head_id = head_id
        self.exact = exact
        self.problems: list[tuple[str, int, int, str]] = []
        self.pending: list[int] = []
        self.checked = 0
        self.hash_at_head: str | None = None

    def feed(self, rows: Iterable[FastRow]) -> None:
        problems, pending = self.problems, self.pending
        prev_id, prev_hash, head_id = self.prev_id, self.prev_hash, self.head_id
        checked = 0
        sha = _sha256
        for rid, stored_prev, stored_hash, stored_result_hash, status, final_seq, ip, op in rows:
            row_id = int(rid)
            checked += 1
            if head_id is not None and row_id > head_id:
                problems.append(
                    ("inserted", row_id, row_id, "not part of the chain (beyond its head)")
                )
                continue
            if row_id > prev_id + 1:
                problems.append(("deleted", prev_id + 1, row_id - 1, "missing from the chain"))
            elif stored_prev != prev_hash:
                problems.append(
                    (
                        "broken_link",
                        prev_id,
                        row_id,
                        "this row does not follow the stored hash of the row before it "
                        "(one of them was edited and re-hashed)",
                    )
                )
            final = status != "pending"
            # Inline fast path (a function call per row costs a tenth of the budget).
            intent_ok = ip is not None and sha(ip).hexdigest() == stored_hash
            if not intent_ok:
                intent_ok = _matches(ip, stored_hash)
            outcome_ok = final and op is not None and sha(op).hexdigest() == stored_result_hash
            if final and not outcome_ok:
                outcome_ok = _matches(op, stored_result_hash)
            if not intent_ok or (final and not outcome_ok):
                exact_intent, exact_outcome = self.exact([row_id]).get(row_id, (False, False))
                intent_ok = intent_ok or exact_intent
                outcome_ok = outcome_ok or exact_outcome
            if not intent_ok:
                problems.append(("edited", row_id, row_id, "content does not match hash"))
            if not final:
                if stored_result_hash is not None or final_seq is not None:
                    problems.append(
                        ("edited", row_id, row_id, "outcome removed (row set to pending)")
                    )
                else:
                    pending.append(row_id)
            elif not outcome_ok:
                problems.append(("edited", row_id, row_id, "outcome does not match its hash"))
            prev_id = row_id
            prev_hash = stored_hash
            if row_id == head_id:
                self.hash_at_head = stored_hash
        self.prev_id, self.prev_hash = prev_id, prev_hash
        self.checked += checked

    def to_dict(self) -> dict[str, Any]:
        return {
            "problems": self.problems,
            "pending": self.pending,
            "checked": self.checked,
            "prev_id": self.prev_id,
            "prev_hash": self.prev_hash,
            "hash_at_head": self.hash_at_head,
        }


def exact_check(
    rows: Iterable[Sequence[Any]], base: int, n_intent: int
) -> dict[int, tuple[bool, bool]]:
    """The exact per-row check (the writer's own encoding) on rows of ``VERIFY_COLUMNS``."""
    out: dict[int, tuple[bool, bool]] = {}
    for row in rows:
        row_id = int(row[0])
        try:
            intent = intent_json(row[2 : 2 + n_intent], base)
            intent_ok = row_hash(row[1], row_id, intent) == row[-2]
        except Exception:  # a value JSON cannot hold (a blob written into a text column)
            intent_ok = False
        try:
            outcome = canonical(row[2 + n_intent : -2])
            outcome_ok = row[-1] is not None and result_hash(row[-2], outcome) == row[-1]
        except Exception:
            outcome_ok = False
        out[row_id] = (intent_ok, outcome_ok)
    return out


def walk_sqlite(
    conn: sqlite3.Connection, spec: dict[str, Any], *, batch: int = 5000
) -> dict[str, Any]:
    """Walk ids ``spec["lo"] < id <= spec["hi"]`` of a SQLite trail with the fast SQL.

    ``spec`` carries the SQL the parent built (``fast_sql`` and ``exact_sql``, each taking the
    range bounds), where the range starts (``prev_id``, ``prev_hash``), the chain head's id and
    the column counts. If the fast SQL fails on some row (a value the JSON functions refuse),
    the rest of the range is walked from the columns, the slow and exact way.
    """
    base, n_intent = int(spec["base"]), int(spec["n_intent"])

    def exact(ids: list[int]) -> dict[int, tuple[bool, bool]]:
        marks = ",".join("?" * len(ids))
        with _lenient_text(conn):
            rows = conn.execute(spec["exact_by_id_sql"].format(ids=marks), ids).fetchall()
        return exact_check(rows, base, n_intent)

    walk = RangeWalk(int(spec["prev_id"]), str(spec["prev_hash"]), spec["head_id"], exact)
    hi = spec["hi"]
    bounds = (walk.prev_id, hi)
    side = conn.execute(spec["side_rows_sql"], bounds).fetchone() is not None
    try:
        cur = conn.execute(spec["fast_sql" if side else "fast_inline_sql"], bounds)
        while chunk := cur.fetchmany(batch):
            walk.feed(chunk)
    except sqlite3.Error:
        with _lenient_text(conn):
            cur = conn.execute(spec["exact_sql"], (walk.prev_id, hi))
            while chunk := cur.fetchmany(batch):
                walk.feed(python_fast_rows(chunk, base, n_intent))
    return walk.to_dict()


@contextlib.contextmanager
def _lenient_text(conn: sqlite3.Connection) -> Iterator[None]:
    """Text that is not UTF-8 (bytes cast into a text column) read as lone surrogates, so it
    hashes to something no writer produced (an edit), instead of stopping the walk."""
    saved = conn.text_factory
    conn.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
    try:
        yield
    finally:
        conn.text_factory = saved


def python_fast_rows(rows: Iterable[Sequence[Any]], base: int, n_intent: int) -> Iterable[FastRow]:
    """Fast tuples built in Python from ``VERIFY_COLUMNS`` rows (where the SQL cannot build
    them: PostgreSQL, or a row the SQLite JSON functions refuse)."""
    for row in rows:
        rid, prev, stored_hash = row[0], row[1], row[-2]
        outcome = row[2 + n_intent : -2]
        try:
            ip: bytes | None = (
                f"{prev}\n{int(rid)}\n{intent_json(row[2 : 2 + n_intent], base)}".encode()
            )
        except Exception:
            ip = None
        try:
            op: bytes | None = f"{stored_hash}\n{canonical(outcome)}".encode()
        except Exception:
            op = None
        yield (rid, prev, stored_hash, row[-1], outcome[2], outcome[0], ip, op)


def main() -> int:
    """Script mode: a JSON spec (with ``path``, the SQLite file) on stdin, the walk's result as
    JSON on stdout. Only reads, inside one read transaction."""
    spec = json.load(sys.stdin)
    # Read-only, by URI: a path that is not there is an error (the caller then walks the range
    # itself), never a new empty database.
    conn = sqlite3.connect(f"{Path(spec['path']).as_uri()}?mode=ro", uri=True)
    try:
        conn.execute("BEGIN")
        result = walk_sqlite(conn, spec)
    finally:
        conn.close()
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
