"""Fixtures for the OpenAI Agents SDK adapter: a runtime on the shared SQLite ``store`` whose
approvals a test answers by setting ``human.answer`` (tests/plugin_helpers.py), tracing off."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")

import pytest
from agents import set_tracing_disabled
from openai_agents_helpers import POLICY

from aegis import Policy, Runtime
from aegis.runtime.approval.handlers import CallbackApprovalHandler
from aegis.runtime.audit import AuditStore
from plugin_helpers import Human, Unreachable

set_tracing_disabled(True)


@pytest.fixture
async def runtime(store: AuditStore, human: Human) -> AsyncIterator[Runtime]:
    async with Runtime(
        executor=Unreachable(),
        policy=Policy.from_yaml_string(POLICY, source="agents-policy.yaml"),
        approval_handler=CallbackApprovalHandler(human),
        audit=store,
        session_id="sess-42",
    ) as rt:
        yield rt
