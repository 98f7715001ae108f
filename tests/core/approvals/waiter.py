"""A separate process that waits on an approval: ``python waiter.py DB_URL OUT.json``.

It runs one 'pay' action through a Runtime with the ``queue`` channel and writes what the
executor received and the result to OUT.json. The executor also appends to OUT.ran, so a
test can tell whether the action ran even if the process is killed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from aegis import Action, Policy, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.core.result import Result, ResultStatus

POLICY = """
version: "1"
defaults: {risk_level: low, approval: auto}
rules:
  - name: big_payment
    match: {type: pay}
    risk_level: high
    approval: approve
"""


class Appender(BaseExecutor):
    def __init__(self, path: Path) -> None:
        self.path = path

    async def execute(self, action: Action) -> Any:
        with self.path.open("a") as fh:
            fh.write(json.dumps(dict(action.params)) + "\n")
        return Result(action, ResultStatus.SUCCESS)


async def main(url: str, out: Path, timeout: float) -> None:
    executor = Appender(out.with_suffix(".ran"))
    async with Runtime(
        executor=executor,
        policy=Policy.from_yaml_string(POLICY),
        approval_handler="queue",
        audit=url,
        approval_timeout=timeout,
        agent_id="agent-7",
    ) as rt:
        print("waiting", flush=True)
        result = await rt.run_one(
            Action("pay", "bank", params={"count": 150, "token": "sk-live-abcdefghijklmnop1234"})
        )
    out.write_text(
        json.dumps(
            {
                "status": result.status.value,
                "reason": result.reason,
                "params": dict(result.action.params),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(
        main(sys.argv[1], Path(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 60)
    )
