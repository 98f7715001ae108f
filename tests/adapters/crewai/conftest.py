"""CrewAI writes under $HOME and phones home unless told not to: both are set before it loads."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

os.environ["HOME"] = tempfile.mkdtemp(prefix="aegis-crewai-home-")
os.environ["CREWAI_DISABLE_TELEMETRY"] = "true"
os.environ["CREWAI_TRACING_ENABLED"] = "false"
os.environ["OTEL_SDK_DISABLED"] = "true"

import pytest

from aegis import Policy
from aegis.runtime.audit import AuditStore

POLICY = """
version: "1"
defaults: { risk_level: medium, approval: approve }
rules:
  - name: lookups
    match: { type: "lookup*" }
    risk_level: low
    approval: auto
  - name: searches
    match: { type: "search*" }
    risk_level: low
    approval: auto
  - name: flaky_is_fine
    match: { type: "flaky*" }
    risk_level: low
    approval: auto
  - name: no_deletes
    match: { type: "delete*" }
    risk_level: critical
    approval: block
"""


@pytest.fixture
def policy() -> Policy:
    return Policy.from_yaml_string(POLICY, source="policy.yaml")


@pytest.fixture
def audit_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit.db'}"


@pytest.fixture
def audit_rows(audit_url: str) -> Any:
    def read() -> list[Any]:
        store = AuditStore(audit_url)
        store.open_sync()
        try:
            return store.query(limit=None)
        finally:
            store.close_sync()

    return read
