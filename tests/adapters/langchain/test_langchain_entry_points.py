"""Every way a governed LangChain tool can be called, tried as an attacker would.

Each test asserts on what the tool really did (``calls``) and on the audit rows.
"""

from __future__ import annotations

from typing import Any

import pytest
from aegis.adapters.langchain import LangChainExecutor, govern_tools
from langchain_core.messages import ToolMessage
from langchain_core.tools import ToolException, tool
from lc_helpers import call, make_tools

from aegis import Action, Policy, Runtime


async def test_batch_and_stream_of_a_blocked_tool_never_run_it(
    policy: Policy, audit_url: str, audit_rows: Any
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    rt = Runtime(executor=LangChainExecutor([]), policy=policy, audit=audit_url)
    delete = govern_tools(rt, make_tools(calls))[1]
    outs = await delete.abatch([{"contact_id": 1}, call("delete_contact", {"contact_id": 2}, "c")])
    outs += [chunk async for chunk in delete.astream({"contact_id": 3})]
    await rt.close()
    assert calls == []
    assert all("Blocked by policy" in str(getattr(o, "content", o)) for o in outs)
    assert [r.result for r in audit_rows()] == ["blocked"] * 3


def test_sync_batch_stream_and_run_of_a_blocked_tool_never_run_it(
    policy: Policy, audit_url: str, audit_rows: Any
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    rt = Runtime(executor=LangChainExecutor([]), policy=policy, audit=audit_url)
    delete = govern_tools(rt, make_tools(calls))[1]
    outs = delete.batch([{"contact_id": 1}, {"contact_id": 2}])
    outs += list(delete.stream({"contact_id": 3}))
    outs.append(delete.run({"contact_id": 4}))
    with pytest.raises(ToolException, match="Blocked by policy"):
        delete._run(contact_id=5)  # the method itself, not only the public entries
    assert calls == []
    assert all("Blocked by policy" in str(o) for o in outs[:4])
    assert [r.result for r in audit_rows()] == ["blocked"] * 5


def test_an_approve_rule_with_no_handler_given_does_not_run(
    policy: Policy, audit_url: str, audit_rows: Any
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    rt = Runtime(executor=LangChainExecutor([]), policy=policy, audit=audit_url)
    send = govern_tools(rt, make_tools(calls))[2]
    out = send.invoke(call("send_email", {"to": "a@b", "body": "x"}, "c1"))
    assert isinstance(out, ToolMessage) and out.status == "error"
    assert calls == []
    assert [r.result for r in audit_rows()] == ["denied"]


def test_a_string_input_is_refused_without_running(
    policy: Policy, audit_url: str, audit_rows: Any
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    rt = Runtime(executor=LangChainExecutor([]), policy=policy, audit=audit_url)
    delete = govern_tools(rt, make_tools(calls))[1]
    out = delete.invoke("7")
    assert "keyword arguments only" in out and calls == []


def broken_lookup(ran: list[int]) -> Any:
    """A tool whose backend is down and which turns that failure into text itself."""

    @tool
    def lookup_broken(rows: int) -> str:
        """Look up rows (the backend is down)."""
        ran.append(rows)
        raise ToolException("backend is down")

    lookup_broken.handle_tool_error = True
    return lookup_broken


async def test_a_wrapped_tool_that_handles_its_own_error_is_recorded_failed(
    policy: Policy, audit_url: str, audit_rows: Any
) -> None:
    """A tool with ``handle_tool_error`` turns its failure into text: still a failure."""
    ran: list[int] = []
    lookup_broken = broken_lookup(ran)
    async with Runtime(executor=LangChainExecutor([]), policy=policy, audit=audit_url) as rt:
        (governed,) = govern_tools(rt, [lookup_broken])
        out = await governed.ainvoke(call("lookup_broken", {"rows": 1}, "c1"))
        executor = LangChainExecutor([lookup_broken])
        direct = await rt.run_one(
            Action("lookup_broken", "x", params={"rows": 2}), executor=executor
        )
    assert ran == [1, 2]
    assert isinstance(out, ToolMessage) and out.status == "error"
    assert "backend is down" in out.content
    assert not direct.ok
    assert [r.result for r in audit_rows()] == ["failed", "failed"]


async def test_middleware_records_a_tool_that_handles_its_own_error_as_failed(
    policy: Policy, audit_url: str, audit_rows: Any
) -> None:
    from aegis.adapters.langchain import AegisMiddleware
    from langchain.agents import create_agent
    from langchain_core.messages import AIMessage, HumanMessage
    from lc_helpers import ScriptedChatModel, turn

    ran: list[int] = []
    lookup_broken = broken_lookup(ran)
    model = ScriptedChatModel(
        script=[turn(call("lookup_broken", {"rows": 1}, "1")), AIMessage("ok")]
    )
    async with Runtime(executor=LangChainExecutor([]), policy=policy, audit=audit_url) as rt:
        agent = create_agent(model, tools=[lookup_broken], middleware=[AegisMiddleware(rt)])
        await agent.ainvoke({"messages": [HumanMessage("look")]})
    assert ran == [1]
    (message,) = model.tool_messages()
    assert message.status == "error" and "backend is down" in message.content
    assert [r.result for r in audit_rows()] == ["failed"]


async def test_sync_invoke_inside_the_running_loop_is_still_governed(
    policy: Policy, audit_url: str, audit_rows: Any
) -> None:
    """A sync call from async code (the runtime opened on this loop) still goes through it."""
    calls: list[tuple[str, dict[str, Any]]] = []
    async with Runtime(executor=LangChainExecutor([]), policy=policy, audit=audit_url) as rt:
        lookup, delete, *_ = govern_tools(rt, make_tools(calls))
        assert lookup.invoke({"name": "Ann"}) == "Ann: ann@example.com"
        assert delete.invoke({"contact_id": 1}).startswith("Blocked by policy")
    assert calls == [("lookup_contact", {"name": "Ann"})]
    assert [r.result for r in audit_rows()] == ["success", "blocked"]


async def test_middleware_unknown_tools_and_bad_arguments_are_recorded_not_run(
    policy: Policy, audit_url: str, audit_rows: Any
) -> None:
    from aegis.adapters.langchain import AegisMiddleware
    from langchain.agents import create_agent
    from langchain_core.messages import AIMessage, HumanMessage
    from lc_helpers import ScriptedChatModel, turn

    calls: list[tuple[str, dict[str, Any]]] = []
    model = ScriptedChatModel(
        script=[
            turn(
                call("lookup_nothing", {"q": "x"}, "1"),
                call("lookup_contact", {"name": {"not": "a string"}}, "2"),
                call("delete_contact", {"contact_id": "not a number"}, "3"),
            ),
            AIMessage("done"),
        ]
    )
    async with Runtime(executor=LangChainExecutor([]), policy=policy, audit=audit_url) as rt:
        agent = create_agent(model, tools=make_tools(calls), middleware=[AegisMiddleware(rt)])
        await agent.ainvoke({"messages": [HumanMessage("go")]})
    assert calls == []
    assert {m.tool_call_id: m.status for m in model.tool_messages()} == {
        "1": "error",
        "2": "error",
        "3": "error",
    }
    assert sorted((r.action_type, r.result) for r in audit_rows()) == [
        ("delete_contact", "blocked"),
        ("lookup_contact", "failed"),
        ("lookup_nothing", "failed"),
    ]
