"""Shared pieces for the stateful-condition tests (imported by basename, like other helpers)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
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
