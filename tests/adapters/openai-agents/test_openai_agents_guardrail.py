"""``aegis_guardrail`` / ``govern_tools``: existing ``@function_tool`` tools, governed in place."""

from __future__ import annotations

from typing import Any

import pytest
from aegis.adapters.openai_agents import aegis_guardrail, govern_tools
from agents import Agent, FunctionTool, Runner, WebSearchTool, function_tool
from openai_agents_helpers import ScriptedModel, call_tool, echo_last_tool_output

from aegis import ApprovalDecision, Runtime
from aegis.adapters.base import CallableExecutor
from aegis.runtime.audit import AuditStore
from plugin_helpers import Human


def crm_tools(calls: list[tuple[str, Any]]) -> list[FunctionTool]:
    @function_tool
    def delete_contact(contact_id: int) -> str:
        """Delete a contact."""
        calls.append(("delete_contact", contact_id))
        return "deleted"

    @function_tool
    def lookup_contact(email: str) -> str:
        """Look a contact up."""
        calls.append(("lookup_contact", email))
        return f"found {email}"

    @function_tool
    def write(note: str) -> str:
        """Write a note on the CRM."""
        calls.append(("write", note))
        return "written"

    return [delete_contact, lookup_contact, write]


async def run(tools: list[Any], name: str, args: dict[str, Any]) -> str:
    model = ScriptedModel(call_tool(name, args), echo_last_tool_output)
    result = await Runner.run(Agent(name="crm-agent", model=model, tools=tools), "go")
    return str(result.final_output)


async def test_blocked_existing_tool_never_runs(runtime: Runtime, store: AuditStore) -> None:
    calls: list[tuple[str, Any]] = []
    tools = govern_tools(crm_tools(calls), runtime=runtime, action_target="crm")
    out = await run(tools, "delete_contact", {"contact_id": 7})
    assert calls == []
    assert out.startswith("Blocked by policy: delete_contact on crm was not run")
    [rec] = store.query(limit=None)
    assert (rec.action_type, rec.target, rec.result) == ("delete_contact", "crm", "blocked")
    assert (rec.params, rec.agent_id, rec.session_id) == ({"contact_id": 7}, "crm-agent", "sess-42")


async def test_allowed_existing_tool_runs_once_and_the_release_is_audited(
    runtime: Runtime, store: AuditStore
) -> None:
    calls: list[tuple[str, Any]] = []
    tools = govern_tools(crm_tools(calls), runtime=runtime, action_target="crm")
    assert await run(tools, "lookup_contact", {"email": "a@x"}) == "found a@x"
    assert calls == [("lookup_contact", "a@x")]
    [rec] = store.query(limit=None)
    assert (rec.action_type, rec.result) == ("lookup_contact", "success")
    assert "released to the OpenAI Agents SDK" in (rec.reason or "")


async def test_denied_existing_tool_never_runs_and_the_model_sees_why(
    runtime: Runtime, store: AuditStore, human: Human
) -> None:
    calls: list[tuple[str, Any]] = []
    tools = govern_tools(crm_tools(calls), runtime=runtime, action_target="crm")
    human.answer = ApprovalDecision.deny(approver="ana", reason="ask legal first")
    out = await run(tools, "write", {"note": "hello"})
    assert calls == [] and "ask legal first" in out
    assert [r.result for r in store.query(limit=None)] == ["denied"]


async def test_guardrail_goes_last_and_the_tool_object_is_governed_in_place(
    runtime: Runtime,
) -> None:
    calls: list[tuple[str, Any]] = []
    tools = crm_tools(calls)
    governed = govern_tools(tools, runtime=runtime, action_target="crm")
    assert [id(t) for t in governed] == [id(t) for t in tools]
    assert all(
        t.tool_input_guardrails and t.tool_input_guardrails[-1].name == "aegis" for t in tools
    )


async def test_hosted_tools_are_refused_not_left_ungoverned(runtime: Runtime) -> None:
    with pytest.raises(TypeError, match="only FunctionTools"):
        govern_tools([WebSearchTool()], runtime=runtime, action_target="web")


async def test_explicit_action_type_on_one_guardrail(runtime: Runtime, store: AuditStore) -> None:
    calls: list[str] = []

    @function_tool(
        tool_input_guardrails=[aegis_guardrail(runtime, action_target="crm", action_type="delete")]
    )
    def archive(contact_id: int) -> str:
        """Archive (really a delete)."""
        calls.append("archive")
        return "archived"

    out = await run([archive], "archive", {"contact_id": 1})
    assert calls == [] and out.startswith("Blocked by policy: delete on crm")
    [rec] = store.query(limit=None)
    assert (rec.action_type, rec.result) == ("delete", "blocked")


async def test_list_arguments_are_released_unchanged(runtime: Runtime, store: AuditStore) -> None:
    seen: list[list[str]] = []

    @function_tool
    def lookup_many(emails: list[str]) -> str:
        """Look several contacts up."""
        seen.append(emails)
        return f"found {len(emails)}"

    tools = govern_tools([lookup_many], runtime=runtime, action_target="crm")
    assert await run(tools, "lookup_many", {"emails": ["a@x", "b@x"]}) == "found 2"
    assert seen == [["a@x", "b@x"]]


async def test_a_guardrail_refuses_to_run_a_call_a_human_edited(store: AuditStore) -> None:
    from openai_agents_helpers import POLICY

    from aegis import Policy
    from plugin_helpers import EditingApprover

    calls: list[tuple[str, Any]] = []
    async with Runtime(
        executor=CallableExecutor(lambda a: None),
        policy=Policy.from_yaml_string(POLICY, source="p.yaml"),
        approval_handler=EditingApprover({"note": "something else"}),
        audit=store,
    ) as runtime:
        tools = govern_tools(crm_tools(calls), runtime=runtime, action_target="crm")
        out = await run(tools, "write", {"note": "hello"})
    assert calls == []  # neither the original nor the edited call ran
    assert out.startswith("Failed: write on crm ran and failed") and "guardrail" in out
    assert [r.result for r in store.query(limit=None)] == ["skipped", "failed"]
