from __future__ import annotations

import os
from pathlib import Path

from aegis import Action
from aegis.core.risk import Approval
from aegis.runtime.watcher import PolicyWatcher

GOOD = """version: "1"
rules:
  - name: reads
    match: {type: "read*"}
    risk_level: low
    approval: auto
"""
STRICT = GOOD.replace("approval: auto", "approval: block")
BAD = GOOD.replace("approval: auto", "approval: maybe")


def bump(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))


def test_reload_good_then_keep_old_on_bad(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    errors: list[str] = []
    w = PolicyWatcher(path, on_error=errors.append)
    assert w.evaluate(Action("read", "x")).approval is Approval.AUTO

    bump(path, STRICT)
    assert w.check() is True
    assert w.evaluate(Action("read", "x")).approval is Approval.BLOCK

    bump(path, BAD)
    assert w.check() is False
    assert w.evaluate(Action("read", "x")).approval is Approval.BLOCK  # old policy kept
    assert w.last_error is not None and "policy.yaml:" in w.last_error
    assert errors and "keeping the previous policy" in errors[0]

    path.unlink()
    assert w.check() is False
    assert w.evaluate(Action("read", "x")).approval is Approval.BLOCK


async def test_watcher_task_picks_up_changes(tmp_path: Path) -> None:
    import asyncio

    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    reloaded = asyncio.Event()
    w = PolicyWatcher(path, interval=0.01, on_reload=lambda p: reloaded.set())
    async with w:
        bump(path, STRICT)
        await asyncio.wait_for(reloaded.wait(), 5)
    assert w.evaluate(Action("read", "x")).approval is Approval.BLOCK
