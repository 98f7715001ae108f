"""A pending row a hook writes is always closable: by its report, or by its deadline.

The attacks: the write that pairs a call with its row fails after the row was written (a crash,
a full disk, a lock); the report's write fails after the pairing was claimed; a call comes with
no id; an id comes twice. Each used to leave a row 'pending' that nothing would ever close.
Failures are injected in the real SQLite file with triggers, so the code under test runs as is.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aegis.adapters.hooks import mapping
from aegis.adapters.hooks.run import post_tool_use, pre_tool_use, reap
from hooks_testkit import AEGIS, payloads, records

from aegis import Policy, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.errors import AuditError

PAYLOADS = payloads("claude_code")
FAR = 10.0**10  # "now", long after every report was due


class _NoExec(BaseExecutor):
    async def execute(self, action: Any) -> Any:
        raise AssertionError("a hook never executes")


def _runtime(policy: Path, db: str) -> Runtime:
    return Runtime(
        executor=_NoExec(), policy=Policy.from_yaml(policy), audit=db, agent_id="claude-code"
    )


@contextlib.contextmanager
def failing(db: str, table: str, verb: str) -> Iterator[None]:
    """Every ``verb`` (INSERT/UPDATE/DELETE) on ``table`` fails while inside the block."""
    conn = sqlite3.connect(db.removeprefix("sqlite:///"))
    conn.execute(
        f"CREATE TRIGGER crash BEFORE {verb} ON {table} "
        "BEGIN SELECT RAISE(ABORT, 'injected crash'); END"
    )
    conn.commit()
    try:
        yield
    finally:
        conn.execute("DROP TRIGGER crash")
        conn.commit()
        conn.close()


async def _setup(policy: Path, db: str) -> None:
    """One reported call, so every table exists before a fault is injected."""
    async with _runtime(policy, db) as runtime:
        await pre_tool_use(runtime, mapping.claude_call(PAYLOADS["bash_ls"]), wait_rules=())
        await post_tool_use(runtime, mapping.claude_call(PAYLOADS["bash_ls_post"]))


async def _reap_all(policy: Path, db: str) -> int:
    async with _runtime(policy, db) as runtime:
        return await reap(runtime, now=FAR)


async def test_a_failed_pairing_write_leaves_no_unclosable_row(
    hook_policy: Path, db_url: str
) -> None:
    await _setup(hook_policy, db_url)
    call = mapping.claude_call(PAYLOADS["bash_make"])
    with failing(db_url, "aegis_hook_pending", "INSERT"):
        async with _runtime(hook_policy, db_url) as runtime:
            try:
                answer = await pre_tool_use(runtime, call, wait_rules=())
            except Exception:
                answer = None  # the hook's top level turns this into a deny
    assert answer is None or answer.decision == "deny"
    await _reap_all(hook_policy, db_url)
    assert "pending" not in [r.result for r in records(db_url)]
    # ... and the refusal itself is on the trail, with the reason.
    refused = [r for r in records(db_url) if r.target == "make test"]
    assert refused and all(r.result == "blocked" for r in refused)
    assert "audit" in (refused[0].reason or "")


def test_a_failed_pairing_write_in_the_real_hook_process_is_a_deny(
    hook_policy: Path, db_url: str
) -> None:
    import asyncio

    asyncio.run(_setup(hook_policy, db_url))
    with failing(db_url, "aegis_hook_pending", "INSERT"):
        done = subprocess.run(
            [AEGIS, "hook", "claude-code", "--policy", str(hook_policy), "--db", db_url],
            input=json.dumps(PAYLOADS["bash_make"]),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert '"allow"' not in done.stdout
    asyncio.run(_reap_all(hook_policy, db_url))
    assert [r.result for r in records(db_url)] == ["success", "blocked"]


async def test_a_failed_report_leaves_the_row_closable(hook_policy: Path, db_url: str) -> None:
    await _setup(hook_policy, db_url)
    async with _runtime(hook_policy, db_url) as runtime:
        await pre_tool_use(runtime, mapping.claude_call(PAYLOADS["bash_make"]), wait_rules=())
    with failing(db_url, "aegis_audit", "UPDATE"):
        async with _runtime(hook_policy, db_url) as runtime:
            with pytest.raises(AuditError):
                await post_tool_use(runtime, mapping.claude_call(PAYLOADS["bash_fail_post"]))
    assert await _reap_all(hook_policy, db_url) == 1
    row = records(db_url)[1]
    assert (row.target, row.result, row.error) == ("make test", "failed", "outcome not reported")


async def test_a_failed_close_by_the_deadline_is_tried_again(
    hook_policy: Path, db_url: str
) -> None:
    async with _runtime(hook_policy, db_url) as runtime:
        await pre_tool_use(runtime, mapping.claude_call(PAYLOADS["bash_make"]), wait_rules=())
    with failing(db_url, "aegis_audit", "UPDATE"):
        assert await _reap_all(hook_policy, db_url) == 0  # logged, kept, never a raise
    assert [r.result for r in records(db_url)] == ["pending"]
    assert await _reap_all(hook_policy, db_url) == 1
    assert [(r.result, r.error) for r in records(db_url)] == [("failed", "outcome not reported")]


async def test_a_call_without_an_id_is_closed_when_due(hook_policy: Path, db_url: str) -> None:
    anonymous = {k: v for k, v in PAYLOADS["bash_ls"].items() if k != "tool_use_id"}
    async with _runtime(hook_policy, db_url) as runtime:
        got = await pre_tool_use(runtime, mapping.claude_call(anonymous), wait_rules=())
        assert got.decision == "allow"
        assert await reap(runtime, now=time.time()) == 0  # not due yet
    assert await _reap_all(hook_policy, db_url) == 1
    assert [(r.result, r.error) for r in records(db_url)] == [("failed", "outcome not reported")]


async def test_an_id_seen_twice_strands_neither_row(hook_policy: Path, db_url: str) -> None:
    async with _runtime(hook_policy, db_url) as runtime:
        for _ in range(2):
            await pre_tool_use(runtime, mapping.claude_call(PAYLOADS["bash_ls"]), wait_rules=())
        await post_tool_use(runtime, mapping.claude_call(PAYLOADS["bash_ls_post"]))
    assert await _reap_all(hook_policy, db_url) == 1
    assert [(r.id, r.result, r.error) for r in records(db_url)] == [
        (1, "failed", "outcome not reported"),  # its id was taken by the second call
        (2, "success", None),
    ]


@pytest.mark.postgres
async def test_pairing_on_postgresql(hook_policy: Path, pg_url: str) -> None:
    """The side writes' SQL on PostgreSQL's driver: pair, supersede, unpair, close when due."""
    anonymous = {k: v for k, v in PAYLOADS["bash_make"].items() if k != "tool_use_id"}
    async with _runtime(hook_policy, pg_url) as runtime:
        for payload in (PAYLOADS["bash_ls"], PAYLOADS["bash_ls"], anonymous):
            await pre_tool_use(runtime, mapping.claude_call(payload), wait_rules=())
        await post_tool_use(runtime, mapping.claude_call(PAYLOADS["bash_ls_post"]))
        assert await reap(runtime, now=FAR) == 2
        assert await reap(runtime, now=FAR) == 0
    assert [(r.id, r.result, r.error) for r in records(pg_url)] == [
        (1, "failed", "outcome not reported"),
        (2, "success", None),
        (3, "failed", "outcome not reported"),
    ]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("audit.db", "{cwd}/audit.db"),  # a plain path, as AuditStore takes it
        ("sub/audit.db", "{cwd}/sub/audit.db"),
        ("sqlite:///audit.db", "sqlite:///{cwd}/audit.db"),
        ("sqlite+pysqlite:///audit.db", "sqlite+pysqlite:///{cwd}/audit.db"),
        ("sqlite:////abs/audit.db", "sqlite:////abs/audit.db"),
        ("/abs/audit.db", "/abs/audit.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql://u@127.0.0.1/aegis", "postgresql://u@127.0.0.1/aegis"),
    ],
)
def test_the_audit_location_a_hook_is_given_is_made_absolute(
    given: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent runs its hook in whatever directory it is in: a relative audit path, left
    relative, sent each call's record to a different database, where nobody looks."""
    import aegis_hook

    monkeypatch.chdir(tmp_path)
    assert aegis_hook.absolute_db(given) == expected.format(cwd=tmp_path)
