"""Ways around Aegis tried on the CrewAI adapter, as an attacker (or a careless user) would.

Real CrewAI tools and crews; what really ran is recorded by the tools, outcomes read back from
the SQLite audit store.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from aegis.adapters.crewai import AegisToolHook, CrewAIExecutor, govern_tools
from crew_helpers import Calls, ScriptedLLM, make_tools
from crewai import Agent, Crew, Task
from crewai.tools import BaseTool
from pydantic import Field

from aegis import Action, ApprovalDecision, Policy, Runtime
from aegis.runtime.approval.handlers import CallbackApprovalHandler


class NativeLLM(ScriptedLLM):
    """A scripted LLM that asks for tools by native function calling (Bedrock-style dicts)."""

    script: list[Any] = Field(default_factory=list)

    def supports_function_calling(self) -> bool:
        return True


def native(name: str, args: dict[str, Any], call_id: str) -> list[dict[str, Any]]:
    return [{"toolUseId": call_id, "name": name, "input": args}]


def native_script() -> list[Any]:
    return [
        native("lookup_contact", {"name": "Ann"}, "c1"),
        native("delete_contact", {"contact_id": 7}, "c2"),
        native("send_email", {"to": "ann@example.com", "body": "hi"}, "c3"),
        "tidied",
    ]


def deny_all(action: Action, decision: Any) -> ApprovalDecision:
    return ApprovalDecision.deny("legal@corp", "ask legal before mailing customers")


def make_runtime(policy: Policy, audit_url: str) -> Runtime:
    return Runtime(
        executor=CrewAIExecutor([]),
        policy=policy,
        audit=audit_url,
        approval_handler=CallbackApprovalHandler(deny_all),
    )


def crew(llm: ScriptedLLM, tools: list[BaseTool]) -> Crew:
    agent = Agent(role="crm clerk", goal="tidy the CRM", backstory="careful", llm=llm, tools=tools)
    task = Task(description="tidy up the CRM", expected_output="a summary", agent=agent)
    return Crew(agents=[agent], tasks=[task])


@pytest.mark.parametrize("way", ["govern_tools", "hook"])
def test_native_function_calls_are_governed(
    policy: Policy, audit_url: str, audit_rows: Any, way: str
) -> None:
    calls: Calls = []
    llm = NativeLLM(model="scripted", script=native_script())
    runtime = make_runtime(policy, audit_url)
    if way == "govern_tools":
        out = crew(llm, govern_tools(runtime, make_tools(calls), target="crm")).kickoff()
    else:
        with AegisToolHook(runtime, target="crm"):
            out = crew(llm, make_tools(calls)).kickoff()
    assert out.raw == "tidied"
    assert calls == [("lookup_contact", {"name": "Ann"})]
    assert [(r.action_type, r.result) for r in audit_rows()] == [
        ("lookup_contact", "success"),
        ("delete_contact", "blocked"),
        ("send_email", "denied"),
    ]


def test_copies_of_a_governed_tool_are_still_governed(
    policy: Policy, audit_url: str, audit_rows: Any
) -> None:
    calls: Calls = []
    runtime = make_runtime(policy, audit_url)
    delete = govern_tools(runtime, make_tools(calls))[1]
    copies = [delete.model_copy(), copy.copy(delete), delete.to_structured_tool()]
    outs = [c.run(contact_id=1) for c in copies[:2]]
    outs.append(copies[2].invoke({"contact_id": 1}))
    assert calls == []
    assert all("Blocked by policy" in str(o) for o in outs)
    assert [r.result for r in audit_rows()] == ["blocked"] * 3


class DeleteContact(BaseTool):
    """A tool whose name CrewAI sanitizes for the LLM ("delete_contact")."""

    name: str = "Delete Contact"
    description: str = "Delete a CRM contact."
    deleted: list[int] = Field(default_factory=list)

    def _run(self, contact_id: int) -> str:
        self.deleted.append(contact_id)
        return "deleted"


def no_deletes(rule_name: str) -> Policy:
    return Policy.from_yaml_string(
        f"""
version: "1"
defaults: {{risk_level: low, approval: auto}}
rules:
  - {{name: no_deletes, match: {{type: "{rule_name}"}}, risk_level: critical, approval: block}}
"""
    )


def delete_once() -> ScriptedLLM:
    script = [
        'Thought: delete\nAction: Delete Contact\nAction Input: {"contact_id": 7}',
        "Thought: I am done\nFinal Answer: tidied",
    ]
    return ScriptedLLM(model="scripted", script=script)


def test_a_rule_for_the_tools_own_name_holds_under_the_hook(
    audit_url: str, audit_rows: Any
) -> None:
    """A policy written for a tool's name must hold whichever way the tool is governed."""
    runtime = make_runtime(no_deletes("Delete Contact"), audit_url)
    wrapped, hooked = DeleteContact(), DeleteContact()
    crew(delete_once(), govern_tools(runtime, [wrapped])).kickoff()
    with AegisToolHook(runtime, target="crewai"):
        crew(delete_once(), [hooked]).kickoff()
    assert wrapped.deleted == hooked.deleted == []
    assert [(r.action_type, r.result) for r in audit_rows()] == [
        ("Delete Contact", "blocked"),
        ("Delete Contact", "blocked"),
    ]


@pytest.mark.parametrize("rule_name", ["Delete Contact", "delete_contact"])
def test_the_hook_blocks_under_either_name_of_the_tool(
    rule_name: str, audit_url: str, audit_rows: Any
) -> None:
    """The hook named actions by CrewAI's sanitized name before it named them as the tool is:
    a policy written against its old records ("delete_contact") must not stop matching."""
    runtime = make_runtime(no_deletes(rule_name), audit_url)
    tool = DeleteContact()
    with AegisToolHook(runtime, target="crewai"):
        crew(delete_once(), [tool]).kickoff()
    assert tool.deleted == []
    assert [(r.action_type, r.result) for r in audit_rows()] == [(rule_name, "blocked")]


def test_a_failure_the_tool_declares_is_recorded_failed(
    policy: Policy, audit_url: str, audit_rows: Any
) -> None:
    """A CrewAI tool reports failure by returning a ``ToolFailure`` (also when its usage limit
    is spent, without running): the audit must not call that a success."""
    from crewai.tools import ToolFailure

    ran: list[int] = []

    class LookupBroken(BaseTool):
        name: str = "lookup_broken"
        description: str = "Look up rows (the backend is down)."

        def _run(self, rows: int) -> Any:
            ran.append(rows)
            return ToolFailure(message="backend is down")

    class LookupOnce(BaseTool):
        name: str = "lookup_once"
        description: str = "Look up, once."
        max_usage_count: int | None = 1

        def _run(self, rows: int) -> str:
            ran.append(rows)
            return "found"

    runtime = make_runtime(policy, audit_url)
    broken, once = govern_tools(runtime, [LookupBroken(), LookupOnce()])
    outs = [broken.run(rows=1), once.run(rows=2), once.run(rows=3)]
    executor = CrewAIExecutor([LookupBroken()])
    from aegis.adapters.base import call_sync

    direct = call_sync(
        lambda: runtime.run_one(Action("lookup_broken", "x", params={"rows": 4}), executor=executor)
    )
    assert ran == [1, 2, 4]
    assert "backend is down" in str(outs[0]) and outs[1] == "found"
    assert "usage limit" in str(outs[2])
    assert not direct.ok
    assert [(r.action_type, r.result) for r in audit_rows()] == [
        ("lookup_broken", "failed"),
        ("lookup_once", "success"),
        ("lookup_once", "failed"),
        ("lookup_broken", "failed"),
    ]


@pytest.mark.parametrize("way", ["govern_tools", "hook"])
async def test_a_crew_kicked_off_natively_async_is_governed(
    policy: Policy, audit_url: str, audit_rows: Any, way: str
) -> None:
    """``akickoff`` runs tools (and the hooks) from inside a running event loop."""
    from crew_helpers import crm_script

    calls: Calls = []
    llm = ScriptedLLM(model="scripted", script=crm_script())
    runtime = make_runtime(policy, audit_url)
    if way == "govern_tools":
        out = await crew(llm, govern_tools(runtime, make_tools(calls), target="crm")).akickoff()
    else:
        with AegisToolHook(runtime, target="crm"):
            out = await crew(llm, make_tools(calls)).akickoff()
    assert out.raw == "tidied"
    assert calls == [("lookup_contact", {"name": "Ann"}), ("flaky_export", {"rows": 5})]
    assert [(r.action_type, r.result) for r in audit_rows()] == [
        ("lookup_contact", "success"),
        ("delete_contact", "blocked"),
        ("send_email", "denied"),
        ("flaky_export", "failed"),
    ]
