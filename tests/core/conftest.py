"""Fixtures shared by the core tests: a real SQLite audit store in the test's temp dir."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aegis.runtime.audit import AuditStore


@pytest.fixture
def audit_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit.db'}"


@pytest.fixture
async def store(audit_url: str) -> AsyncIterator[AuditStore]:
    s = AuditStore(audit_url)
    await s.open()
    yield s
    await s.close()
