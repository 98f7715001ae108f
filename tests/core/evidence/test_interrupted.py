"""A process killed mid-action leaves 'interrupted', never 'pending' for ever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from audit_helpers import action, decide, raw, run_action

from aegis.runtime.audit import AuditStore
from aegis.runtime.audit.interrupted import current_owner, owner_gone
from aegis.runtime.audit.ship import Shipper

CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from aegis import Action, Policy, Runtime
    from aegis.adapters.base import BaseExecutor
    from aegis.core.result import Result, ResultStatus
    from aegis.runtime.audit import AuditStore

    class Slow(BaseExecutor):
        async def execute(self, action):
            print("running", flush=True)
            time.sleep(60)
            return Result(action, ResultStatus.SUCCESS)

    async def main():
        policy = Policy.from_dict({"version": "1", "defaults": {"approval": "auto"},
                                   "rules": [{"name": "all", "match": {"type": "*"},
                                              "approval": "auto", "risk_level": "low"}]})
        async with AuditStore(sys.argv[1]) as store:
            rt = Runtime(executor=Slow(), policy=policy, audit=store)
            await rt.run_one(Action("transfer_funds", "bank", {"amount": 5}))

    asyncio.run(main())
    """
)


async def test_sigkill_mid_action_leaves_an_interrupted_record(tmp_path: Path, db_url: str) -> None:
    async with AuditStore(db_url) as store:
        await run_action(store)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script), db_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "running"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    [(result, owner)] = raw(db_url, "SELECT result, owner FROM aegis_audit WHERE id = 2")
    assert result == "pending" and f":{child.pid}:" in owner

    async with AuditStore(db_url) as store:
        assert store.interrupted == [2]
        rec = store.get(2)
        assert rec is not None
        assert (rec.action_type, rec.result) == ("transfer_funds", "interrupted")
        assert f"process {child.pid} on " in (rec.reason or "")
        assert "may or may not have run" in (rec.reason or "")
        assert not rec.executed
        report = store.verify()
        assert report.ok and report.pending == ()
        assert store.count(result="interrupted") == 1
    async with AuditStore(db_url) as store:  # once is enough
        assert store.interrupted == []


async def test_live_and_unknown_owners_are_left_alone(db_url: str) -> None:
    async with AuditStore(db_url) as store:
        act = action()
        mine = await store.begin(act, decide(act))
        theirs = await store.begin(act, decide(act))
        old = await store.begin(act, decide(act))
    raw(db_url, "UPDATE aegis_audit SET owner = 'elsewhere:1:1' WHERE id = :i", i=theirs)
    raw(
        db_url,
        "UPDATE aegis_audit SET owner = NULL, created_at = '2000-01-01' WHERE id = :i",
        i=old,
    )
    async with AuditStore(db_url) as store:
        assert store.interrupted == []  # this process (alive) and two it cannot judge
        assert [store.get(i).result for i in (mine, theirs, old)] == ["pending"] * 3  # type: ignore[union-attr]
        import datetime as dt

        assert store.recover(older_than=dt.timedelta(days=1)) == [old]
        assert "written before owners were recorded" in (store.get(old).reason or "")  # type: ignore[union-attr]


def test_owner_liveness() -> None:
    me = current_owner()
    assert owner_gone(me) is False
    host, pid, token = me.rsplit(":", 2)
    start, boot, ns = token.split("/")
    assert owner_gone(f"{host}:{pid}:{int(start) + 1}/{boot}/{ns}") is True  # the pid was reused
    assert owner_gone(f"{host}:{pid}:{start}/{boot}/{ns}") is False
    assert owner_gone(f"{host}:{pid}:{start}/00000000/{ns}") is True  # an earlier boot
    assert owner_gone(f"{host}:99999999:{start}/{boot}/1") is None  # another pid namespace
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    time.sleep(0.05)
    assert owner_gone(f"{host}:{dead.pid}:1") is True
    assert owner_gone(None) is None and owner_gone("garbage") is None
    assert owner_gone(f"{host}:{dead.pid}:1/{boot}/{ns}") is True
    assert owner_gone(f"another-host:{os.getpid()}:{token}") is None


async def test_a_store_from_before_owners_opens_and_reads(db_url: str) -> None:
    async with AuditStore(db_url) as store:
        await run_action(store)
    raw(db_url, "ALTER TABLE aegis_audit DROP COLUMN owner")
    reader = AuditStore(db_url)
    assert [r.id for r in reader.query()] == [1] and reader.verify().ok
    async with AuditStore(db_url) as store:  # the writer adds the column
        await run_action(store)
        assert store.verify().ok and store.count() == 2


async def test_sinks_receive_the_interrupted_record_and_scan_past_it(db_url: str) -> None:
    class Collect:
        name = "collect"

        def __init__(self) -> None:
            self.seen: list[tuple[int, str]] = []

        def emit(self, records: Any) -> None:
            self.seen += [(r.id, r.result) for r in records]

    async with AuditStore(db_url) as store:
        act = action()
        stuck = await store.begin(act, decide(act))
        for _ in range(3):
            await run_action(store)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = current_owner().rsplit(":", 2)[0]
    raw(
        db_url, "UPDATE aegis_audit SET owner = :o WHERE id = :i", o=f"{host}:{dead.pid}:1", i=stuck
    )
    sink = Collect()
    async with AuditStore(db_url, sinks=[sink]) as store:
        await run_action(store)
    assert sorted(sink.seen) == [
        (1, "interrupted"),
        (2, "success"),
        (3, "success"),
        (4, "success"),
        (5, "success"),
    ]
    # Where a shipper's next scan starts: past every row, not back at the one that was stuck.
    store = AuditStore(db_url)
    shipper = Shipper(sink, store.engine, None)  # type: ignore[arg-type]
    assert shipper._fetch(final_seq=5, scan_from=1) == ([], 6)
