from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from runtime_helpers import RecordingExecutor

from aegis import Policy, Runtime
from aegis.runtime.approval import AutoApprovalHandler
from aegis.runtime.audit import AuditStore
from quickstart_policy import QUICKSTART_POLICY


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
