"""An executed action's params are written once, not again with its outcome.

The outcome used to be an UPDATE of the whole row; SQLite rewrites every overflow page of a row
it updates, so a 50 MB param made a 100 MB file, and under disk pressure it was the outcome
write that failed. Large params now live in ``aegis_audit_params``, written once with the
intent; the outcome update touches only the small row.
"""

from __future__ import annotations

from pathlib import Path

from audit_helpers import action, raw, run_action

from aegis.runtime.audit import AuditStore

BIG = 4 * 1024 * 1024


def _file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


async def test_big_params_are_stored_once(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    url = f"sqlite:///{path}"
    blob = "x" * BIG
    async with AuditStore(url) as store:
        await run_action(store, action(params={"note": blob}))
        record = store.query()[0]
        assert record.params == {"note": blob}
        assert record.result == "success"
        assert store.verify().status == "ok"
    # Closed: the WAL is checkpointed into the file and removed. A second copy (the row as
    # rewritten by the outcome's UPDATE) would leave the first one's pages behind as free pages.
    written = _file_bytes(path)
    assert written < 1.3 * BIG, f"{written} bytes on disk for a {BIG}-byte param"
    assert raw(url, "PRAGMA freelist_count")[0][0] < 16


async def test_small_params_stay_in_the_row(db_url: str) -> None:
    async with AuditStore(db_url) as store:
        await run_action(store, action(params={"id": 7}))
        assert raw(db_url, "SELECT count(*) FROM aegis_audit_params")[0][0] == 0
        assert store.query()[0].params == {"id": 7}


async def test_deleting_the_stored_params_is_tampering(db_url: str) -> None:
    async with AuditStore(db_url) as store:
        audit_id = await run_action(store, action(params={"note": "y" * 5000}))
    raw(db_url, "DELETE FROM aegis_audit_params")
    report = AuditStore(db_url).verify()
    assert report.edited == [audit_id]


async def test_editing_the_stored_params_is_tampering(db_url: str) -> None:
    async with AuditStore(db_url) as store:
        await run_action(store)
        audit_id = await run_action(store, action(params={"note": "y" * 5000}))
    raw(db_url, 'UPDATE aegis_audit_params SET params = \'{"note": "z"}\'')
    assert AuditStore(db_url).verify().edited == [audit_id]


async def test_big_params_reach_sinks(db_url: str, tmp_path: Path) -> None:
    from aegis.builtins.sinks import JsonlSink

    out = tmp_path / "out.jsonl"
    async with AuditStore(db_url, sinks=[JsonlSink(out)]) as store:
        await run_action(store, action(params={"note": "q" * 5000}))
    assert '"note":"' + "q" * 5000 in out.read_text()
