"""A pending row begun ``detached`` is completed by another process, never 'interrupted'."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from aegis import Action, Result, ResultStatus
from aegis.runtime.audit import AuditStore

BEGIN = textwrap.dedent(
    """
    import asyncio, sys
    from aegis import Action
    from aegis.runtime.audit import AuditStore

    async def main():
        async with AuditStore(sys.argv[1]) as store:
            detached = sys.argv[2] == "1"
            print(await store.begin(Action("Bash", "claude-code"), None, detached=detached))

    asyncio.run(main())
    """
)


def _begin_in_a_process_that_exits(url: str, detached: bool) -> int:
    done = subprocess.run(
        [sys.executable, "-c", BEGIN, url, "1" if detached else "0"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return int(done.stdout.strip())


async def test_detached_row_survives_its_writer_and_is_completed_elsewhere(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    detached = _begin_in_a_process_that_exits(url, detached=True)
    owned = _begin_in_a_process_that_exits(url, detached=False)
    async with AuditStore(url) as store:  # opening marks rows of dead owners
        assert store.get(owned).result == "interrupted"  # type: ignore[union-attr]
        assert store.get(detached).result == "pending"  # type: ignore[union-attr]
        await store.finish(detached, Result(Action("Bash", "claude-code"), ResultStatus.SUCCESS))
        assert store.get(detached).result == "success"  # type: ignore[union-attr]


async def test_a_detached_intent_leaves_the_next_intent_in_its_batch_owned(tmp_path: Path) -> None:
    """One transaction holding a detached and then an ordinary intent (as under concurrency):
    only the first row is detached; the second still names this process, so a crash of this
    process marks it interrupted."""
    from aegis.runtime.audit.interrupted import current_owner
    from aegis.runtime.audit.record import intent_payload, intent_values, now_iso
    from aegis.runtime.audit.writer import INTENT, WriteOp

    url = f"sqlite:///{tmp_path / 'batch.db'}"
    async with AuditStore(url) as store:
        writer = store._writer
        assert writer is not None
        ops = []
        for detached in (True, False):
            act = Action("Bash", "claude-code")
            values = intent_values(act, None, None, "error", None, store.redactor, now_iso())
            op = WriteOp(INTENT, intent_payload(values))
            op.detached = detached
            ops.append(op)
        with writer.connection_lock:
            writer._write(ops)  # one transaction for both
        assert all(op.error is None for op in ops)
    import sqlite3

    with sqlite3.connect(tmp_path / "batch.db") as conn:
        owners = [r[0] for r in conn.execute("SELECT owner FROM aegis_audit ORDER BY id")]
    assert owners == ["detached", current_owner()]
