"""Fixtures for the red-team tests: two tiny policies (the store is tests/core/conftest.py's)."""

from __future__ import annotations

import pytest
from redteam_helpers import APPROVE_POLICY, AUTO_POLICY

from aegis import Policy


@pytest.fixture
def auto_policy() -> Policy:
    return Policy.from_yaml_string(AUTO_POLICY)


@pytest.fixture
def approve_policy() -> Policy:
    return Policy.from_yaml_string(APPROVE_POLICY)
