"""``verify`` at a million records: the SQL that feeds the chain walk, and ranges per core.

Where the time went (1M records, one core): building Python objects for thirty columns per row
(~8 us) and encoding two JSON arrays per row (~10 us), against ~2 us of SHA-256. So on SQLite
the database builds each row's two hashed texts in C (``json_array`` / ``json_quote``, the same
compact JSON the writer hashes for ASCII text and ordinary floats) and Python receives eight
values per row; ``audit.chain_walk`` explains why that text is checked, never trusted. A trail
of more than ``PARALLEL_MIN`` records is split into id ranges walked in a process per core,
each starting from the stored hash of the row before its range, which gives exactly the
findings of one sequential walk; this process walks the last range (in the snapshot where it
read the chain head, so rows beyond the head are judged there). PostgreSQL walks in one
process, the hashed text built in Python from the columns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
from sqlalchemy import Connection, Engine, select

from aegis.runtime.approval import seal as approval_seal
from aegis.runtime.audit import chain_walk as walk_mod
from aegis.runtime.audit.chain import VERIFY_COLUMNS, VerifyReport, finish_walk
from aegis.runtime.audit.chain_walk import RangeWalk, exact_check, python_fast_rows
from aegis.runtime.audit.migrate import readable
from aegis.runtime.audit.schema import (
    BASE_INTENT_COLUMNS,
    GENESIS_HASH,
    INTENT_COLUMNS,
    RESULT_COLUMNS,
    audit_log,
    chain_head,
    record_source,
    with_side_params,
)

#: Below this many records one process walks the whole trail (a second one costs ~50 ms).
PARALLEL_MIN = 200_000
_NO_END = 2**62
_N_INTENT = len(INTENT_COLUMNS)


def workers() -> int:
    """Processes for one verify: the cores this process may run on (``AEGIS_VERIFY_WORKERS``
    overrides; 1 turns the split off)."""
    env = os.environ.get("AEGIS_VERIFY_WORKERS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


_SIDE_PARAMS = "coalesce(p.params, a.params)"


def _col(name: str, present: set[str]) -> str:
    if name not in present:
        return "NULL"
    return _SIDE_PARAMS if name == "params" else f"a.{name}"


def _intent_sql(present: set[str]) -> str:
    """The intent's JSON text: later columns left out while NULL, as ``intent_json`` does."""
    cols = [_col(c, present) for c in INTENT_COLUMNS]

    def array(k: int) -> str:
        return f"json_array({', '.join(cols[:k])})"

    branches = [
        f"WHEN {cols[k - 1]} IS NOT NULL THEN {array(k)}"
        for k in range(_N_INTENT, BASE_INTENT_COLUMNS, -1)
    ]
    return f"CASE {' '.join(branches)} ELSE {array(BASE_INTENT_COLUMNS)} END"


def _outcome_sql(present: set[str]) -> str:
    """The outcome's JSON text; NULL (so the row is checked from its columns) when the float
    would not read back as the same number from the text SQLite writes for it."""
    cols = [_col(c, present) for c in RESULT_COLUMNS]
    dur = _col("duration_ms", present)
    faithful = f"typeof({dur}) != 'real' OR CAST(printf('%!.15g', {dur}) AS REAL) = {dur}"
    return f"CASE WHEN {faithful} THEN json_array({', '.join(cols)}) END"


def _exact_columns(present: set[str]) -> str:
    return ", ".join(_col(c, present) for c in VERIFY_COLUMNS)


_FROM = "FROM aegis_audit a LEFT JOIN aegis_audit_params p ON p.id = a.id"


def sqlite_spec(present: set[str]) -> dict[str, Any]:
    """The SQL a range walker runs (``audit.chain_walk.walk_sqlite``), bounds as parameters."""
    fast = (
        "SELECT a.id, a.prev_hash, a.row_hash, a.result_hash, a.result, "
        f"{_col('final_seq', present)}, "
        f"CAST(a.prev_hash || char(10) || a.id || char(10) || ({_intent_sql(present)}) AS BLOB), "
        f"CAST(a.row_hash || char(10) || ({_outcome_sql(present)}) AS BLOB) "
        f"{_FROM} WHERE a.id > ? AND a.id <= ? ORDER BY a.id"
    )
    exact = f"SELECT {_exact_columns(present)} {_FROM}"
    # The same without the join, for a range with no out-of-row params (checked in the same
    # snapshot, so there the join could only ever have found nothing).
    inline = fast.replace(_FROM, "FROM aegis_audit a").replace(_SIDE_PARAMS, "a.params")
    return {
        "fast_sql": fast,
        "fast_inline_sql": inline,
        "side_rows_sql": "SELECT 1 FROM aegis_audit_params WHERE id > ? AND id <= ? LIMIT 1",
        "exact_sql": f"{exact} WHERE a.id > ? AND a.id <= ? ORDER BY a.id",
        "exact_by_id_sql": f"{exact} WHERE a.id IN ({{ids}})",
        "base": BASE_INTENT_COLUMNS,
        "n_intent": _N_INTENT,
    }


def _present(engine: Engine) -> set[str]:
    cols = readable(engine, VERIFY_COLUMNS)
    return {
        name for name, col in zip(VERIFY_COLUMNS, cols, strict=True) if col is audit_log.c[name]
    }


def verify(engine: Engine, *, chunk: int = 5000) -> VerifyReport:
    """Check the whole chain inside one read snapshot (concurrent writers are not "inserts")."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")  # pysqlite would not start a read transaction itself
        else:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        head = conn.execute(
            select(chain_head.c.last_id, chain_head.c.last_hash).where(chain_head.c.id == 1)
        ).first()
        head_id = int(head[0]) if head is not None else None
        head_hash = head[1] if head is not None else None
        if engine.dialect.name == "sqlite":
            walks = _walk_sqlite(conn, engine, head_id)
        else:
            walk = RangeWalk(0, GENESIS_HASH, head_id, _exact_by_id(conn, engine))
            walk.feed(python_fast_rows(_rows(conn, engine, chunk), BASE_INTENT_COLUMNS, _N_INTENT))
            walks = [walk.to_dict()]
        sealed = approval_seal.check(conn)
        conn.rollback()
    report = finish_walk(walks, head_id, head_hash)
    if not (sealed.problems or sealed.unchained):
        return report
    return attrs.evolve(
        report,
        problems=(*report.problems, *sealed.problems),
        unchained_answers=sealed.unchained,
        unchained_requests=sealed.unchained_requests,
    )


def _rows(conn: Connection, engine: Engine, chunk: int) -> Iterator[Sequence[Any]]:
    cols = with_side_params(readable(engine, VERIFY_COLUMNS))
    last = None
    while True:
        stmt = select(*cols).select_from(record_source()).order_by(audit_log.c.id).limit(chunk)
        if last is not None:
            stmt = stmt.where(audit_log.c.id > last)
        batch = conn.execute(stmt).all()
        yield from (tuple(r) for r in batch)
        if len(batch) < chunk:
            return
        last = batch[-1][0]


def _exact_by_id(conn: Connection, engine: Engine) -> walk_mod.ExactCheck:
    cols = with_side_params(readable(engine, VERIFY_COLUMNS))

    def exact(ids: list[int]) -> dict[int, tuple[bool, bool]]:
        stmt = select(*cols).select_from(record_source()).where(audit_log.c.id.in_(ids))
        rows = [tuple(r) for r in conn.execute(stmt)]
        return exact_check(rows, BASE_INTENT_COLUMNS, _N_INTENT)

    return exact


def _walk_sqlite(conn: Connection, engine: Engine, head_id: int | None) -> list[dict[str, Any]]:
    raw: Any = conn.connection.driver_connection
    spec = sqlite_spec(_present(engine))
    path = Path(engine.url.database or ":memory:")
    n = workers()
    end = head_id or 0
    # A plain file only: a URI or options in the URL are this connection's to interpret.
    plain_file = not engine.url.query and path.is_file()
    if n < 2 or end < PARALLEL_MIN or not plain_file or not sys.executable:
        return [walk_mod.walk_sqlite(raw, {**spec, **_start(raw, 0, _NO_END, head_id)})]
    bounds = [end * i // n for i in range(n)] + [_NO_END]
    ranges = [_start(raw, bounds[i], bounds[i + 1], head_id) for i in range(n)]
    children = [_spawn({**spec, **r, "path": str(path.resolve())}) for r in ranges[:-1]]
    mine = walk_mod.walk_sqlite(raw, {**spec, **ranges[-1]})
    results = [
        _collect(child, raw, {**spec, **r}) for child, r in zip(children, ranges, strict=False)
    ]
    return [*results, mine]


def _start(raw: Any, lo: int, hi: int, head_id: int | None) -> dict[str, Any]:
    """A range ``lo < id <= hi`` starts after the last row at or below ``lo``."""
    found = raw.execute(
        "SELECT id, row_hash FROM aegis_audit WHERE id <= ? ORDER BY id DESC LIMIT 1", (lo,)
    ).fetchone()
    prev_id, prev_hash = (int(found[0]), found[1]) if found else (0, GENESIS_HASH)
    return {"prev_id": prev_id, "prev_hash": prev_hash, "hi": hi, "head_id": head_id}


def _spawn(spec: dict[str, Any]) -> subprocess.Popen[bytes] | None:
    try:
        child = subprocess.Popen(
            [sys.executable, "-I", walk_mod.__file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert child.stdin is not None
        child.stdin.write(json.dumps(spec).encode())
        child.stdin.close()
    except OSError:
        return None
    return child


def _collect(
    child: subprocess.Popen[bytes] | None, raw: Any, spec: dict[str, Any]
) -> dict[str, Any]:
    """A child's findings; if it failed in any way, the range is walked here instead."""
    if child is not None:
        assert child.stdout is not None
        out = child.stdout.read()
        if child.wait() == 0:
            try:
                result: dict[str, Any] = json.loads(out)
                return result
            except ValueError:
                pass
    return walk_mod.walk_sqlite(raw, spec)
