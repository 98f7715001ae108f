"""The store signs checkpoints by itself: every N outcomes, every T seconds, and on close."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import run_action

from aegis.errors import AuditError
from aegis.runtime.audit import AuditStore
from aegis.runtime.audit.autocheckpoint import CheckpointSchedule
from aegis.runtime.audit.checkpoint import Checkpoint, load_checkpoints
from aegis.runtime.audit.evidence import verify_against


async def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


async def test_every_n_records_and_on_close(
    tmp_path: Path, db_url: str, keys: tuple[Path, Path], public: Any
) -> None:
    out = tmp_path / "cps"
    published: list[Checkpoint] = []
    schedule = CheckpointSchedule(
        key=keys[0], directory=out, publish=published.append, every_records=5
    )
    async with AuditStore(db_url, checkpoints=schedule) as store:
        for i in range(12):
            await run_action(store)
            if i == 4:
                await wait_for(lambda: len(published) >= 1)
        await wait_for(lambda: len(published) >= 2)
    files = load_checkpoints([out])
    assert [cp.finals for cp in published] == [cp.finals for cp in files]
    assert published[0].finals >= 5 and published[-1].finals == 12  # the close one
    assert all(b.finals - a.finals >= 5 for a, b in itertools.pairwise(published[:-1]))
    report = verify_against(AuditStore(db_url).engine, files, public)
    assert report.ok and report.matching == len(files), report.summary()


async def test_every_t_seconds_picks_up_only_changes(
    tmp_path: Path, db_url: str, signer: Any, public: Any
) -> None:
    published: list[Checkpoint] = []
    schedule = CheckpointSchedule(
        key=signer, publish=published.append, every_seconds=0.05, on_close=False
    )
    async with AuditStore(db_url, checkpoints=schedule) as store:
        await run_action(store)
        await wait_for(lambda: published and published[-1].finals == 1)
        signed = len(published)  # one more if the timer fired between the intent and outcome
        await asyncio.sleep(0.3)
        assert len(published) == signed  # nothing changed, nothing signed again
        await run_action(store)
        await wait_for(lambda: published[-1].finals == 2)
    assert verify_against(AuditStore(db_url).engine, published, public).ok


async def test_resumes_the_tree_of_an_existing_store(
    tmp_path: Path, db_url: str, keys: tuple[Path, Path], public: Any
) -> None:
    async with AuditStore(db_url) as store:
        for _ in range(7):
            await run_action(store)
    out = tmp_path / "cps"
    schedule = CheckpointSchedule(key=keys[0], directory=out, every_records=3)
    async with AuditStore(db_url, checkpoints=schedule) as store:
        for _ in range(4):
            await run_action(store)
        assert store.checkpointer is not None
    cps = load_checkpoints([out])
    assert cps[-1].finals == 11
    assert verify_against(AuditStore(db_url).engine, cps, public).ok


def test_a_schedule_must_say_when_and_where(keys: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="directory or a publish"):
        CheckpointSchedule(key=keys[0], every_records=1)
    with pytest.raises(ValueError, match="at least 1"):
        CheckpointSchedule(key=keys[0], directory=tmp_path, every_records=0)
    with pytest.raises(ValueError, match="needs every_records"):
        CheckpointSchedule(key=keys[0], directory=tmp_path, on_close=False)


async def test_a_bad_key_fails_the_open(tmp_path: Path, db_url: str) -> None:
    (tmp_path / "bad.key").write_text("not a key")
    schedule = CheckpointSchedule(key=tmp_path / "bad.key", directory=tmp_path, every_records=1)
    with pytest.raises(AuditError, match=r"bad\.key"):
        async with AuditStore(db_url, checkpoints=schedule):
            pass
