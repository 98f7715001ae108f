from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from runtime_helpers import RecordingExecutor

from aegis import Policy, Runtime
from aegis.runtime.approval.handlers import AutoApprovalHandler
from aegis.runtime.audit import AuditStore
from quickstart_policy import QUICKSTART_POLICY


@pytest.fixture
def policy() -> Policy:
    return Policy.from_yaml_string(QUICKSTART_POLICY, source="quickstart.yaml")


@pytest.fixture
def executor() -> RecordingExecutor:
    return RecordingExecutor()


@pytest.fixture
async def runtime(
    policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> AsyncIterator[Runtime]:
    async with Runtime(
        executor=executor, policy=policy, approval_handler=AutoApprovalHandler(), audit=store
    ) as rt:
        yield rt
