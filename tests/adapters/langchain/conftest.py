"""The LangChain tests' policy; ``audit_url`` and ``audit_rows`` are shared (plugin_helpers)."""

from __future__ import annotations

import pytest

from aegis import Policy
from plugin_helpers import TOOLS_POLICY


@pytest.fixture
def policy() -> Policy:
    return Policy.from_yaml_string(TOOLS_POLICY, source="policy.yaml")
