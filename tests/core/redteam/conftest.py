"""Fixtures for the red-team tests: a throw-away audit store and two tiny policies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redteam_helpers import APPROVE_POLICY, AUTO_POLICY

from aegis import Policy
from aegis.runtime.audit import AuditStore


@pytest.fixture
def auto_policy() -> Policy:
    return Policy.from_yaml_string(AUTO_POLICY)


@pytest.fixture
def approve_policy() -> Policy:
    return Policy.from_yaml_string(APPROVE_POLICY)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AuditStore]:
    s = AuditStore(f"sqlite:///{tmp_path / 'audit.db'}")
    await s.open()
    yield s
    await s.close()
