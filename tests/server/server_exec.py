"""An executor for server processes started by tests: appends every action it runs to a file."""

from __future__ import annotations

import json
import os

from aegis import Action, Result, ResultStatus
from aegis.adapters.base import BaseExecutor


class FileRecorder(BaseExecutor):
    def __init__(self, path: str) -> None:
        self.path = path

    async def execute(self, action: Action) -> Result:
        line = json.dumps(
            {
                "type": action.type,
                "target": action.target,
                "params": dict(action.params),
                "pid": os.getpid(),
            }
        )
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        return Result(action=action, status=ResultStatus.SUCCESS)


def ran(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
