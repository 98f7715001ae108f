"""Fixtures for the Slack channel: a stand-in Slack on 127.0.0.1 and a real audit store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_flow import Flow
from slack_standin import BOT_TOKEN, SIGNING_SECRET, FakeSlack

from aegis import Policy
from aegis.runtime.audit import AuditStore


@pytest.fixture
async def slack(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    # What `aegis serve` would have in its environment for the interactivity route.
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("AEGIS_SLACK_API_URL", fake.api_url)
    yield fake
    await fake.stop()


@pytest.fixture
async def flows() -> AsyncIterator[list[Flow]]:
    made: list[Flow] = []
    yield made
    for flow in made:
        await flow.close()


@pytest.fixture
def flow(store: AuditStore, slack: FakeSlack, flows: list[Flow]) -> Any:
    def make(pol: Policy, **kw: Any) -> Flow:
        made = Flow(store, slack, pol, **kw)
        flows.append(made)
        return made

    return make
