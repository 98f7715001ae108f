"""Shared pieces for the stateful-condition tests (imported by basename, like other helpers)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aegis import Action, Policy, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.core.result import Result, ResultStatus


class CountingExecutor(BaseExecutor):
    """Counts what really ran: the tests assert on ``ran``, not only on statuses."""

    def __init__(self) -> None:
        self.ran: list[Action] = []

    async def execute(self, action: Action) -> Result:
        self.ran.append(action)
        return Result(action=action, status=ResultStatus.SUCCESS)


def policy(rules: str) -> Policy:
    return Policy.from_yaml_string(
        "version: '1'\ndefaults: {risk_level: low, approval: auto}\nrules:\n" + rules
    )


async def drive(
    url: str, rules: str, actions: list[dict[str, Any]], tasks: int, *, repeat: int = 1
) -> int:
    """Run ``actions`` (each ``repeat`` times) from ``tasks`` concurrent tasks through one
    runtime; returns how many the executor ran."""
    executor = CountingExecutor()
    work = [Action(**a) for a in actions for _ in range(repeat)]
    async with Runtime(
        executor=executor, policy=policy(rules), audit=url, approval_handler="auto"
    ) as runtime:

        async def worker(mine: list[Action]) -> None:
            for item in mine:
                await runtime.run_one(item)

        await asyncio.gather(*(worker(work[i::tasks]) for i in range(tasks)))
    return len(executor.ran)


def drive_in_processes(
    url: str, rules: str, actions: list[dict[str, Any]], processes: int, tasks: int, repeat: int
) -> list[int]:
    """``drive`` in ``processes`` OS processes on one database; how many each one ran."""
    here = str(Path(__file__).parent)
    code = (
        "import sys, json, asyncio; sys.path.insert(0, sys.argv[1]); import limits_helpers as h;"
        " a = json.loads(sys.argv[2]);"
        " print(asyncio.run(h.drive(a['url'], a['rules'], a['actions'], a['tasks'],"
        " repeat=a['repeat'])))"
    )
    arg = json.dumps(
        {"url": url, "rules": rules, "actions": actions, "tasks": tasks, "repeat": repeat}
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, here, arg],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    counts, errors = [], []
    for p in procs:
        out, err = p.communicate(timeout=300)
        if p.returncode != 0:
            errors.append(err)
        else:
            counts.append(int(out.strip().splitlines()[-1]))
    assert not errors, errors
    return counts


#: Sessions of the PostgreSQL server waiting for a lock on a read of the usage table.
LOCK_WAITS = """
SELECT count(*) FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND query ILIKE 'SELECT%FROM aegis_limit_usage%'
"""


def pg_connect(url: str) -> Any:
    """A plain psycopg connection to the test server: another session (a locker, a monitor)."""
    import psycopg
    from sqlalchemy import make_url

    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(plain)


async def saw_a_lock_wait(
    task: asyncio.Future[Any],
    monitor: Any,
    bound: float,
    ready: Callable[[], bool] = lambda: True,
) -> bool:
    """Whether this loop ran while ``task`` waited for a lock on the usage table (``ready``:
    from when to look). A read on the loop's own thread would stop this very check."""
    deadline = time.monotonic() + bound
    while not task.done() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        if not ready():
            continue
        (waiting,) = monitor.execute(LOCK_WAITS).fetchone() or (0,)
        if waiting and not task.done():
            return True
    return False
