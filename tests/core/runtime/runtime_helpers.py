"""Shared pieces for the runtime tests (imported by basename, like the other test helpers)."""

from __future__ import annotations

from typing import Any

from aegis import Action
from aegis.adapters.base import BaseExecutor
from aegis.core.result import Result, ResultStatus
from aegis.runtime.audit import AuditStore


class RecordingExecutor(BaseExecutor):
    """Counts what really ran: the fail-closed tests assert on ``ran``, not on statuses."""

    def __init__(self, fail: bool = False, raise_exc: BaseException | None = None) -> None:
        self.ran: list[Action] = []
        self.fail = fail
        self.raise_exc = raise_exc

    async def execute(self, action: Action) -> Result:
        self.ran.append(action)
        if self.raise_exc is not None:
            raise self.raise_exc
        status = ResultStatus.FAILED if self.fail else ResultStatus.SUCCESS
        return Result(action=action, status=status, data={"n": len(self.ran)})


def rows(store: AuditStore, **filters: Any) -> list[Any]:
    return list(store.query(limit=None, **filters))
