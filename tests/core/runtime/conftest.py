from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aegis.runtime.audit import AuditStore

from aegis import Action, Policy, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.core.result import Result, ResultStatus
from aegis.runtime.approval import AutoApprovalHandler

QUICKSTART_POLICY = """
version: "1"
defaults:
  risk_level: medium
  approval: approve
rules:
  - name: read_safe
    match: { type: "read*" }
    risk_level: low
    approval: auto
  - name: bulk_ops_need_approval
    match: { type: "bulk_*" }
    conditions:
      param_gt: { count: 100 }
    risk_level: high
    approval: approve
  - name: no_deletes
    match: { type: "delete*" }
    risk_level: critical
    approval: block
"""


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


@pytest.fixture
def policy() -> Policy:
    return Policy.from_yaml_string(QUICKSTART_POLICY, source="quickstart.yaml")


@pytest.fixture
def executor() -> RecordingExecutor:
    return RecordingExecutor()


@pytest.fixture
def audit_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit.db'}"


@pytest.fixture
async def store(audit_url: str) -> AsyncIterator[AuditStore]:
    s = AuditStore(audit_url)
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def runtime(
    policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> AsyncIterator[Runtime]:
    async with Runtime(
        executor=executor, policy=policy, approval_handler=AutoApprovalHandler(), audit=store
    ) as rt:
        yield rt


def rows(store: AuditStore, **filters: Any) -> list[Any]:
    return list(store.query(**filters))
