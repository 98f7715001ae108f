"""CrewAI writes under $HOME and phones home unless told not to: both are set before it loads.

``audit_url``, ``audit_rows`` and the policy's text are shared (tests/plugin_helpers.py)."""

from __future__ import annotations

import os
import tempfile

os.environ["HOME"] = tempfile.mkdtemp(prefix="aegis-crewai-home-")
os.environ["CREWAI_DISABLE_TELEMETRY"] = "true"
os.environ["CREWAI_TRACING_ENABLED"] = "false"
os.environ["OTEL_SDK_DISABLED"] = "true"

import pytest

from aegis import Policy
from plugin_helpers import TOOLS_POLICY


@pytest.fixture
def policy() -> Policy:
    return Policy.from_yaml_string(TOOLS_POLICY, source="policy.yaml")
