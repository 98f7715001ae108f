"""Ways around Aegis tried on the OpenAI Agents SDK adapter, as an attacker would.

Real ``Runner`` runs with a scripted model; assertions on what really ran and on the audit.
"""

from __future__ import annotations

from typing import Any

import pytest
from aegis.adapters.openai_agents import govern_tools, governed_tool
from agents import Agent, Runner, function_tool
from openai_agents_helpers import ScriptedModel, call_tool, echo_last_tool_output

from aegis import AuditError, Runtime
from aegis.runtime.audit import AuditStore
from plugin_helpers import Unreachable, payment_policy


async def run(tools: list[Any], name: str, args: dict[str, Any]) -> str:
    model = ScriptedModel(call_tool(name, args), echo_last_tool_output)
    result = await Runner.run(Agent(name="pay-agent", model=model, tools=tools), "go")
    return str(result.final_output)


@pytest.mark.parametrize("way", ["governed_tool", "guardrail"])
async def test_a_number_sent_as_a_string_is_still_blocked(store: AuditStore, way: str) -> None:
    """The tool's schema would turn "5000" into 5000: the policy must not see a mere string."""
    paid: list[int] = []

    def pay(amount: int) -> str:
        """Pay."""
        paid.append(amount)
        return "paid"

    async with Runtime(
        executor=Unreachable(), policy=payment_policy(block_above=1000), audit=store
    ) as rt:
        if way == "governed_tool":
            tools = [governed_tool(pay, runtime=rt, action_type="pay", action_target="bank")]
        else:
            tools = govern_tools([function_tool(pay)], runtime=rt, action_target="bank")
        out = await run(tools, "pay", {"amount": "5000"})
    assert paid == [] and "was not run" in out
    assert [r.result for r in store.query(limit=None)] == ["blocked"]


async def test_an_approve_rule_with_no_handler_given_is_denied(store: AuditStore) -> None:
    paid: list[int] = []

    @function_tool
    def pay(amount: int) -> str:
        """Pay."""
        paid.append(amount)
        return "paid"

    async with Runtime(executor=Unreachable(), policy=payment_policy(), audit=store) as rt:
        tools = govern_tools([pay], runtime=rt, action_target="bank")
        out = await run(tools, "pay", {"amount": 5})
    assert paid == [] and "was not run" in out
    assert [r.result for r in store.query(limit=None)] == ["denied"]


async def test_a_guardrail_whose_store_cannot_write_stops_the_tool(
    store: AuditStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK runs the tool unless the guardrail answers: an audit failure must not be one."""
    ran: list[str] = []

    @function_tool
    def lookup_contact(email: str) -> str:
        """Look up."""
        ran.append(email)
        return "found"

    async def cannot_write(*args: Any, **kwargs: Any) -> Any:
        raise AuditError("disk full")

    async with Runtime(executor=Unreachable(), policy=payment_policy(), audit=store) as rt:
        tools = govern_tools([lookup_contact], runtime=rt, action_target="crm")
        monkeypatch.setattr(store, "begin", cannot_write)
        monkeypatch.setattr(store, "record", cannot_write)
        with pytest.raises(Exception, match="disk full") as raised:  # the SDK wraps it
            await run(tools, "lookup_contact", {"email": "a@b"})
    assert isinstance(raised.value.__cause__, AuditError) and ran == []
