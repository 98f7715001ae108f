"""The v1 agent loop (``langchain.agents.create_agent``) with a scripted model, governed two ways.

``AegisMiddleware`` governs the tools the agent was given; ``govern_tools`` hands the agent
only governed tools. Either way the model's tool calls are actions, the tools record what
really ran, and the audit rows are read back from SQLite.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aegis.adapters.langchain import AegisMiddleware, LangChainExecutor, govern_tools
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from lc_helpers import ScriptedChatModel, approve_with_edits, call, make_tools, turn

from aegis import Action, ApprovalDecision, Policy, Runtime
from aegis.runtime.approval.handlers import CallbackApprovalHandler


def script() -> list[AIMessage]:
    return [
        turn(
            call("lookup_contact", {"name": "Ann"}, "1"),
            call("delete_contact", {"contact_id": 7}, "2"),
            call("send_email", {"to": "ann@example.com", "body": "hi"}, "3"),
            call("flaky_export", {"rows": 5}, "4"),
        ),
        AIMessage(content="done"),
    ]


def handler() -> CallbackApprovalHandler:
    def answer(action: Action, decision: Any) -> ApprovalDecision:
        return ApprovalDecision.deny("legal@corp", "ask legal before mailing customers")

    return CallbackApprovalHandler(answer)


def check_outcome(
    model: ScriptedChatModel, calls: list[tuple[str, dict[str, Any]]], rows: list[Any]
) -> None:
    # The tool node runs a turn's calls concurrently: compare without order.
    assert sorted(calls) == [("flaky_export", {"rows": 5}), ("lookup_contact", {"name": "Ann"})]
    by_id = {m.tool_call_id: m for m in model.tool_messages()}
    assert by_id["1"].content == "Ann: ann@example.com" and by_id["1"].status == "success"
    assert by_id["2"].status == "error" and by_id["2"].content.startswith("Blocked by policy")
    assert by_id["3"].status == "error" and "ask legal before mailing" in by_id["3"].content
    assert by_id["4"].status == "error" and "export backend is down" in by_id["4"].content
    outcome = sorted((r.action_type, r.result) for r in rows)
    assert outcome == [
        ("delete_contact", "blocked"),
        ("flaky_export", "failed"),
        ("lookup_contact", "success"),
        ("send_email", "denied"),
    ]


@pytest.mark.parametrize("mode", ["async", "sync"])
async def test_middleware_governs_every_tool_call(
    policy: Policy, audit_url: str, audit_rows: Any, mode: str
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    model = ScriptedChatModel(script=script())
    runtime = Runtime(
        executor=LangChainExecutor([]),
        policy=policy,
        audit=audit_url,
        approval_handler=handler(),
        agent_id="crm-agent",
    )
    agent = create_agent(
        model,
        tools=make_tools(calls),
        middleware=[AegisMiddleware(runtime, target="crm")],
        checkpointer=InMemorySaver(),
    )
    inputs = {"messages": [HumanMessage("tidy up the CRM")]}
    config = {"configurable": {"thread_id": "thread-77"}}
    if mode == "async":
        out = await agent.ainvoke(inputs, config)
    else:
        # a sync caller: the agent runs in a worker thread with no event loop of its own
        out = await asyncio.to_thread(agent.invoke, inputs, config)
    await runtime.close()
    assert out["messages"][-1].content == "done"
    rows = audit_rows()
    check_outcome(model, calls, rows)
    assert {(r.agent_id, r.session_id, r.target) for r in rows} == {
        ("crm-agent", "thread-77", "crm")
    }


async def test_agent_given_only_governed_tools(
    policy: Policy, audit_url: str, audit_rows: Any
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    model = ScriptedChatModel(script=script())
    async with Runtime(
        executor=LangChainExecutor([]),
        policy=policy,
        audit=audit_url,
        approval_handler=handler(),
        session_id="s-1",
    ) as rt:
        agent = create_agent(model, tools=govern_tools(rt, make_tools(calls), target="crm"))
        out = await agent.ainvoke({"messages": [HumanMessage("tidy up the CRM")]})
    assert out["messages"][-1].content == "done"
    # The model was offered exactly the four tool names, each of them a governed one.
    assert model.bound[0] == ["lookup_contact", "delete_contact", "send_email", "flaky_export"]
    rows = audit_rows()
    check_outcome(model, calls, rows)
    assert {r.session_id for r in rows} == {"s-1"}


async def test_middleware_runs_the_tool_with_a_human_edit(
    policy: Policy, audit_url: str, audit_rows: Any
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    model = ScriptedChatModel(
        script=[turn(call("send_email", {"to": "all@corp", "body": "hi"}, "1")), AIMessage("ok")]
    )
    async with Runtime(
        executor=LangChainExecutor([]), policy=policy, audit=audit_url, approval_handler="queue"
    ) as rt:
        agent = create_agent(model, tools=make_tools(calls), middleware=[AegisMiddleware(rt)])
        run = asyncio.ensure_future(agent.ainvoke({"messages": [HumanMessage("mail everyone")]}))
        await approve_with_edits(rt, {"to": "team@corp"})
        await run
    assert calls == [("send_email", {"to": "team@corp", "body": "hi"})]
    (message,) = model.tool_messages()
    assert isinstance(message, ToolMessage) and message.content == "sent"
    assert [r.result for r in audit_rows()] == ["skipped", "success"]
