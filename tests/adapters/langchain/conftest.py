from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lc_helpers import POLICY

from aegis import Policy
from aegis.runtime.audit import AuditStore


@pytest.fixture
def policy() -> Policy:
    return Policy.from_yaml_string(POLICY, source="policy.yaml")


@pytest.fixture
def audit_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit.db'}"


@pytest.fixture
def audit_rows(audit_url: str) -> Any:
    """Reads the real SQLite audit store the way `aegis audit` does."""

    def read() -> list[Any]:
        store = AuditStore(audit_url)
        store.open_sync()
        try:
            return store.query(limit=None)
        finally:
            store.close_sync()

    return read
