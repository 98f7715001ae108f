"""The audit file deleted or replaced under a running store: nothing more runs.

Without the guard, SQLite keeps committing into the unlinked inode: every action "is audited"
into a file no one can ever read. These tests run real actions through a real ``Runtime`` and
count what the executor actually ran.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from aegis import Action, Policy, Result, ResultStatus, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.errors import AuditError
from aegis.runtime.approval.handlers import AutoApprovalHandler
from aegis.runtime.audit import AuditStore
from aegis.runtime.audit import file as audit_file

POLICY = {"version": "1", "defaults": {"approval": "block"}, "rules": [
    {"name": "reads", "match": {"type": "read*"}, "risk_level": "low", "approval": "auto"},
]}  # fmt: skip


class Counting(BaseExecutor):
    def __init__(self) -> None:
        self.ran = 0

    async def execute(self, action: Action) -> Result:
        self.ran += 1
        return Result(action, ResultStatus.SUCCESS)


def _runtime(store: AuditStore, executor: Counting) -> Runtime:
    return Runtime(
        executor=executor,
        policy=Policy.from_dict(POLICY),
        approval_handler=AutoApprovalHandler(),
        audit=store,
    )


async def _one(runtime: Runtime) -> Result:
    return await runtime.run_one(Action("read_contact", "crm", params={"id": 1}))


@pytest.mark.parametrize("procfs", [True, False], ids=["procfs", "fstat"])
@pytest.mark.parametrize("what", ["db", "db_and_sidecars", "wal"])
async def test_deleted_audit_file_stops_actions(
    tmp_path: Path, what: str, procfs: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not procfs:  # as where /proc/self/fd is missing: the log's link count decides
        monkeypatch.setattr(audit_file, "_proc_link", lambda fd: None)
    path = tmp_path / "audit.db"
    executor = Counting()
    async with AuditStore(f"sqlite:///{path}") as store:
        runtime = _runtime(store, executor)
        assert (await _one(runtime)).status is ResultStatus.SUCCESS
        victims = {
            "db": [path],
            "db_and_sidecars": [path, Path(f"{path}-wal"), Path(f"{path}-shm")],
            "wal": [Path(f"{path}-wal")],
        }[what]
        for victim in victims:
            victim.unlink()
        with pytest.raises(AuditError, match=r"deleted|write-ahead log"):
            await _one(runtime)
        with pytest.raises(AuditError):  # and it stays failed: no silent recovery
            await _one(runtime)
    assert executor.ran == 1


@pytest.mark.parametrize("procfs", [True, False], ids=["procfs", "fstat"])
async def test_replaced_write_ahead_log_stops_actions(
    tmp_path: Path, procfs: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not procfs:
        monkeypatch.setattr(audit_file, "_proc_link", lambda fd: None)
    path = tmp_path / "audit.db"
    executor = Counting()
    async with AuditStore(f"sqlite:///{path}") as store:
        runtime = _runtime(store, executor)
        await _one(runtime)
        assert store._guard is not None
        assert (store._guard._wal_link is not None) is (procfs and Path("/proc/self/fd").is_dir())
        other = tmp_path / "other"
        other.write_bytes(b"")
        os.replace(other, Path(f"{path}-wal"))
        with pytest.raises(AuditError, match="write-ahead log"):
            await _one(runtime)
    assert executor.ran == 1


async def test_replaced_audit_file_stops_actions(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    executor = Counting()
    async with AuditStore(f"sqlite:///{path}") as store:
        runtime = _runtime(store, executor)
        await _one(runtime)
        os.replace(other, path)
        with pytest.raises(AuditError, match="replaced"):
            await _one(runtime)
    assert executor.ran == 1


async def test_a_chdir_does_not_trip_the_guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    executor = Counting()
    async with AuditStore("sqlite:///relative.db") as store:
        runtime = _runtime(store, executor)
        await _one(runtime)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        assert (await _one(runtime)).status is ResultStatus.SUCCESS
    assert executor.ran == 2
    assert AuditStore(f"sqlite:///{tmp_path / 'relative.db'}").count() == 2


async def test_concurrent_actions_all_fail_closed_after_deletion(tmp_path: Path) -> None:
    import asyncio

    path = tmp_path / "audit.db"
    executor = Counting()
    async with AuditStore(f"sqlite:///{path}") as store:
        runtime = _runtime(store, executor)
        await _one(runtime)
        path.unlink()
        outcomes = await asyncio.gather(*(_one(runtime) for _ in range(20)), return_exceptions=True)
    assert all(isinstance(o, AuditError) for o in outcomes)
    assert executor.ran == 1
