"""One action run through a Runtime whose approval channel is Slack (the stand-in)."""

from __future__ import annotations

import asyncio
from typing import Any

from aegis.approvals.slack import SlackChannel
from slack_standin import APP_TOKEN, BOT_TOKEN, CHANNEL, FakeSlack

from aegis import Action, Policy, Runtime
from aegis.runtime.audit import AuditStore
from plugin_helpers import PAY, Recorder, payment_policy


def policy(approvers: str = "") -> Policy:
    """Payments over 1,000 ask a human, over 1,000,000 are blocked."""
    return payment_policy(approvers, above=1000, block_above=1_000_000)


class Flow:
    """One action run through a Runtime whose approval channel is Slack (the stand-in)."""

    def __init__(
        self,
        store: AuditStore,
        slack: FakeSlack,
        pol: Policy,
        *,
        socket: bool = True,
        timeout: float = 15.0,
        action: Action = PAY,
        base_url: str | None = None,
    ) -> None:
        self.store, self.slack, self.executor = store, slack, Recorder()
        self.channel = SlackChannel(
            CHANNEL,
            token=BOT_TOKEN,
            app_token=APP_TOKEN if socket else None,
            base_url=base_url or slack.api_url,
        )
        self.task = asyncio.ensure_future(self._run(pol, timeout, action))

    async def _run(self, pol: Policy, timeout: float, action: Action) -> Any:
        async with Runtime(
            executor=self.executor,
            policy=pol,
            approval_handler=self.channel,
            audit=self.store,
            approval_timeout=timeout,
        ) as rt:
            return await rt.run_one(action)

    async def message(self) -> dict[str, Any]:
        """The approval message as posted (waits until it is)."""
        for _ in range(500):
            if self.slack.posted() or self.task.done():
                break
            await asyncio.sleep(0.01)
        if self.task.done():
            raise AssertionError(f"the run ended before posting: {self.task.result()!r}")
        return self.slack.posted()[-1]

    async def ts(self) -> str:
        """The posted message's ts (from the stand-in's answer, as the channel saw it)."""
        await self.message()
        for _ in range(200):
            if self.channel._threads:
                return next(iter(self.channel._threads))[1]
            await asyncio.sleep(0.01)
        raise AssertionError("the channel never recorded its message")

    async def result(self) -> Any:
        return await asyncio.wait_for(self.task, 30)

    def answers(self) -> list[tuple[str, bool]]:
        (request,) = self.store.approvals.list(limit=None)
        return [(a.responder, a.accepted) for a in request.answers]

    async def close(self) -> None:
        if not self.task.done():
            self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.channel.aclose()
