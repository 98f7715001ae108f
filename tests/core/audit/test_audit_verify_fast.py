"""The fast verify (hashed text built by SQLite, ranges walked in processes of their own) finds
exactly what the exact walk from the columns finds, for every kind of tampering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from audit_helpers import Action, ResultStatus, raw, run_action

from aegis.runtime.audit import AuditStore
from aegis.runtime.audit import chain_walk as audit_chain_walk
from aegis.runtime.audit import verify as audit_verify
from aegis.runtime.audit.chain import VERIFY_COLUMNS, VerifyReport, verify_rows
from aegis.runtime.audit.schema import record_columns, record_source

ODD_TEXT = (
    "café ☕ 𝄞 中文",  # non-ASCII, astral plane: the writer escapes it as \\uXXXX
    "tab\there\nnew\x01line\x7f",  # control characters and DEL
    'quote " back \\ slash /',
    "\\u00e9 is not é",  # an escape written out literally
)


@pytest.fixture
async def trail(db_url: str) -> AuditStore:
    """Forty records of every shape the columns can take."""
    async with AuditStore(db_url) as s:
        for i in range(40):
            kw: dict[str, Any] = {}
            if i % 3 == 0:
                kw = {"chain_id": f"task-{i}", "parent_agent_id": "boss", "chain_depth": 2}
            elif i % 3 == 1:
                kw = {"chain_id": f"task-{i}"}  # chain_depth 0: only some later columns set
            params: dict[str, Any] = {"i": i, "text": ODD_TEXT[i % len(ODD_TEXT)]}
            if i % 7 == 0:
                params["big"] = "x" * 5000  # stored out of row (aegis_audit_params)
            act = Action(
                "read_contact",
                "crm_café_中文" if i % 5 == 0 else f"crm_{i}",
                params=params,
                description=ODD_TEXT[(i + 1) % 4] if i % 2 else "",
                **kw,
            )
            durations = (1.5, 0.1 + 0.2, 1e16, 12345678.123, 2.5e-05, 100.0)
            await run_action(
                s,
                act,
                status=ResultStatus.SUCCESS if i % 4 else ResultStatus.FAILED,
                duration_ms=durations[i % len(durations)],
                error="bœm" if i % 4 == 0 else None,
            )
    return s


def reference(url: str) -> VerifyReport:
    """The exact walk, from the columns, in one pass (the writer's own encoding)."""
    from sqlalchemy import create_engine, select

    from aegis.runtime.audit.schema import chain_head

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            head = conn.execute(select(chain_head.c.last_id, chain_head.c.last_hash)).first()
            cols = record_columns(VERIFY_COLUMNS)
            rows = [tuple(r) for r in conn.execute(select(*cols).select_from(record_source()))]
        rows.sort(key=lambda r: r[0])
        return verify_rows(iter(rows), head[0] if head else None, head[1] if head else None)
    finally:
        engine.dispose()


@pytest.fixture(params=[1, 3], ids=["one-process", "three-processes"])
def workers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("AEGIS_VERIFY_WORKERS", str(request.param))
    monkeypatch.setattr(audit_verify, "PARALLEL_MIN", 0)
    return int(request.param)


def test_an_honest_trail_of_odd_values_verifies(trail: AuditStore, workers: int) -> None:
    report = trail.verify()
    assert report.ok, report.summary()
    assert report.checked == 40


def test_honest_rows_never_need_the_exact_check(
    trail: AuditStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Non-ASCII text, control characters, DEL and ordinary floats pass on the database's text;
    only a float SQLite writes in another exponent form (1e16: ``1.0e+16``) needs the columns."""
    monkeypatch.setenv("AEGIS_VERIFY_WORKERS", "1")
    calls: list[int] = []
    real = audit_chain_walk.exact_check

    def counting(rows: Any, base: int, n: int) -> dict[int, tuple[bool, bool]]:
        out = real(rows, base, n)
        calls.extend(out)
        return out

    monkeypatch.setattr(audit_chain_walk, "exact_check", counting)
    assert trail.verify().ok
    assert set(calls) == {i + 1 for i in range(40) if i % 6 == 2}  # the 1e16 durations


TAMPERING = {
    "ascii field": ["UPDATE aegis_audit SET target = 'crm_staging' WHERE id = 12"],
    "non-ascii field": ["UPDATE aegis_audit SET target = 'café ☕ 𝄞 中文!' WHERE id = 11"],
    "literal escape for the character": [
        "UPDATE aegis_audit SET target = '\\u00e9 is not \\u00e9' WHERE id = 16"
    ],
    "float by one ulp": [
        "UPDATE aegis_audit SET duration_ms = 1.5000000000000002 WHERE duration_ms = 1.5"
    ],
    "text in the float column": ["UPDATE aegis_audit SET duration_ms = '1.5 ms' WHERE id = 7"],
    "blob in a text column": ["UPDATE aegis_audit SET target = x'63726d5f3230' WHERE id = 20"],
    "blob in the outcome": ["UPDATE aegis_audit SET error = x'00ff' WHERE id = 21"],
    "later column set": ["UPDATE aegis_audit SET chain_depth = 5 WHERE id = 3"],
    "later column cleared": ["UPDATE aegis_audit SET parent_agent_id = NULL WHERE id = 4"],
    "side params added for an inline row": [
        "INSERT INTO aegis_audit_params (id, params) VALUES (9, '[999]')"
    ],
    "side params edited": ["UPDATE aegis_audit_params SET params = '{}' WHERE id = 8"],
    # The first hex digit flipped to another one (a plain 'f' would be no change 1 time in 16).
    "hash rewritten": [
        "UPDATE aegis_audit SET row_hash = "
        "CASE WHEN substr(row_hash, 1, 1) = 'f' THEN '0' ELSE 'f' END || substr(row_hash, 2) "
        "WHERE id = 5"
    ],
    "result hash rewritten": ["UPDATE aegis_audit SET result_hash = NULL WHERE id = 6"],
    "set back to pending": ["UPDATE aegis_audit SET result = 'pending' WHERE id = 30"],
    "rows deleted at a range boundary": ["DELETE FROM aegis_audit WHERE id IN (13, 14, 27)"],
    "first row deleted": ["DELETE FROM aegis_audit WHERE id = 1"],
    "tail deleted": ["DELETE FROM aegis_audit WHERE id > 37"],
    "row inserted beyond the head": [
        "INSERT INTO aegis_audit (id, created_at, action_type, target, params, description, "
        "decision, result, prev_hash, row_hash) SELECT 41, created_at, 'read', 'crm', '{}', '', "
        "'auto', 'success', row_hash, row_hash FROM aegis_audit WHERE id = 40"
    ],
    "two rows swapped": [
        "UPDATE aegis_audit SET id = -1 WHERE id = 18",
        "UPDATE aegis_audit SET id = 18 WHERE id = 19",
        "UPDATE aegis_audit SET id = 19 WHERE id = -1",
    ],
}


@pytest.mark.parametrize("sqls", list(TAMPERING.values()), ids=list(TAMPERING))
def test_tampering_is_found_as_the_exact_walk_finds_it(
    trail: AuditStore, db_url: str, workers: int, sqls: list[str]
) -> None:
    for sql in sqls:
        raw(db_url, sql)
    expected = reference(db_url)
    assert not expected.ok, "the tampering case itself is wrong"
    report = trail.verify()
    assert report.problems == expected.problems
    assert report.pending == expected.pending
    assert (report.checked, report.last_id) == (expected.checked, expected.last_id)


def test_a_failed_worker_process_leaves_its_range_to_this_one(
    trail: AuditStore, db_url: str, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw(db_url, "UPDATE aegis_audit SET target = 'x' WHERE id = 2")
    monkeypatch.setattr(audit_chain_walk, "__file__", str(Path(db_url[10:]).parent / "gone.py"))
    assert trail.verify().edited == [2]


def test_the_other_ranges_are_walked_by_other_processes(
    trail: AuditStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AEGIS_VERIFY_WORKERS", "3")
    monkeypatch.setattr(audit_verify, "PARALLEL_MIN", 0)
    here: list[int] = []
    real = audit_chain_walk.walk_sqlite

    def counting(conn: Any, spec: dict[str, Any], **kw: Any) -> dict[str, Any]:
        here.append(spec["prev_id"])
        return real(conn, spec, **kw)

    monkeypatch.setattr(audit_verify.walk_mod, "walk_sqlite", counting)
    assert trail.verify().ok
    assert len(here) == 1 and here[0] > 0  # this process walked only the last range


def test_bytes_that_are_not_utf8_in_a_text_column_are_an_edit(
    trail: AuditStore, db_url: str, workers: int
) -> None:
    raw(db_url, "UPDATE aegis_audit SET target = CAST(x'fffe' AS TEXT) WHERE id = 17")
    report = trail.verify()
    assert report.edited == [17], report.summary()


def test_a_blob_and_bad_text_together_still_name_the_rows(
    trail: AuditStore, db_url: str, workers: int
) -> None:
    """The blob makes the database's JSON functions fail: the range is walked from the columns,
    where the text that is not UTF-8 is an edit too."""
    raw(db_url, "UPDATE aegis_audit SET target = x'00ff' WHERE id = 12")
    raw(db_url, "UPDATE aegis_audit SET agent_id = CAST(x'fffe' AS TEXT) WHERE id = 13")
    assert trail.verify().edited == [12, 13]
