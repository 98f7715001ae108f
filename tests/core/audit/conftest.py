from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aegis.runtime.audit import AuditStore


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit.db'}"


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[AuditStore]:
    async with AuditStore(db_url) as s:
        yield s
