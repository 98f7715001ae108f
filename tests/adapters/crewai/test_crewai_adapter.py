"""AegisCrewAITool, wrapped tools and the tool hook, with real CrewAI tools and a real Crew.

Tools record what really ran; outcomes are read back from the SQLite audit store.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aegis.adapters.crewai import AegisCrewAITool, AegisToolHook, CrewAIExecutor, govern_tools
from crew_helpers import Calls, ScriptedLLM, crm_script, make_tools
from crewai import Agent, Crew, Task
from crewai.tools import BaseTool

from aegis import Action, ApprovalDecision, Policy, ResultStatus, Runtime
from aegis.adapters.base import call_sync
from aegis.runtime.approval.handlers import CallbackApprovalHandler

# The original README's CrewAI snippet, character for character.
README_SNIPPET = """\
from aegis.adapters.crewai import AegisCrewAITool

tool = AegisCrewAITool(runtime=runtime, name="governed_search",
description="Search with governance", action_type="search",
action_target="web", fn=lambda query: do_search(query))
"""


def deny_email() -> CallbackApprovalHandler:
    def answer(action: Action, decision: Any) -> ApprovalDecision:
        return ApprovalDecision.deny("legal@corp", "ask legal before mailing customers")

    return CallbackApprovalHandler(answer)


def make_runtime(policy: Policy, audit_url: str, **kw: Any) -> Runtime:
    kw.setdefault("approval_handler", deny_email())
    return Runtime(executor=CrewAIExecutor([]), policy=policy, audit=audit_url, **kw)


def test_readme_snippet_runs_as_written(policy: Policy, audit_url: str, audit_rows: Any) -> None:
    searched: list[str] = []

    def do_search(query: str) -> str:
        searched.append(query)
        return f"results for {query}"

    runtime = make_runtime(policy, audit_url, session_id="s-readme")
    ns: dict[str, Any] = {"runtime": runtime, "do_search": do_search}
    exec(README_SNIPPET, ns)
    tool = ns["tool"]
    assert isinstance(tool, BaseTool) and tool.name == "governed_search"
    assert list(tool.args_schema.model_fields) == ["query"]
    assert tool.run(query="aegis") == "results for aegis" and searched == ["aegis"]
    (row,) = audit_rows()
    assert (row.action_type, row.target, row.params, row.result, row.session_id) == (
        "search",
        "web",
        {"query": "aegis"},
        "success",
        "s-readme",
    )


def test_blocked_denied_and_failing_calls(policy: Policy, audit_url: str, audit_rows: Any) -> None:
    ran: list[str] = []

    def fn(tag: str) -> str:
        ran.append(tag)
        if tag == "boom":
            raise RuntimeError("disk full")
        return "done"

    runtime = make_runtime(policy, audit_url)
    delete = AegisCrewAITool(
        runtime=runtime,
        name="rm",
        description="d",
        action_type="delete",
        action_target="crm",
        fn=fn,
    )
    mail = AegisCrewAITool(
        runtime=runtime,
        name="mail",
        description="m",
        action_type="send",
        action_target="smtp",
        fn=fn,
    )
    flaky = AegisCrewAITool(
        runtime=runtime, name="f", description="f", action_type="flaky", action_target="x", fn=fn
    )
    blocked = delete.run(tag="a")
    denied = mail.run(tag="b")
    failed = flaky.run(tag="boom")
    assert ran == ["boom"]
    assert blocked.startswith("Blocked by policy: delete on crm was not run")
    assert denied.startswith("Not approved") and "ask legal before mailing" in denied
    assert failed.startswith("Failed: flaky on x") and "disk full" in failed
    assert [r.result for r in audit_rows()] == ["blocked", "denied", "failed"]


def test_positional_arguments_bind_to_fn(policy: Policy, audit_url: str, audit_rows: Any) -> None:
    runtime = make_runtime(policy, audit_url)
    tool = AegisCrewAITool(
        runtime=runtime,
        name="s",
        description="s",
        action_type="search",
        action_target="web",
        fn=lambda query, limit=3: f"{query}/{limit}",
    )
    assert tool.run("aegis") == "aegis/3"
    assert audit_rows()[0].params == {"query": "aegis"}


def test_governed_tools_are_never_cached(policy: Policy, audit_url: str) -> None:
    tool = AegisCrewAITool(
        runtime=make_runtime(policy, audit_url),
        name="s",
        description="s",
        action_type="search",
        action_target="web",
        fn=lambda query: query,
        cache_function=lambda args, result: True,
    )
    assert tool.cache_function({}, "x") is False


def test_wrapped_existing_tools(policy: Policy, audit_url: str, audit_rows: Any) -> None:
    calls: Calls = []
    runtime = make_runtime(policy, audit_url, agent_id="crm-agent")
    raw = make_tools(calls)
    governed = govern_tools(runtime, raw, target="crm")
    assert govern_tools(runtime, governed) == governed  # never governed twice
    lookup, delete, send, flaky = governed
    for before, after in zip(raw, governed, strict=True):
        assert after is not before and after.name == before.name
        assert after.args_schema is before.args_schema
    assert lookup.run(name="Ann") == "Ann: ann@example.com"
    assert delete.run(contact_id=7).startswith("Blocked by policy")
    assert "ask legal" in send.run(to="a@b", body="x")
    assert "export backend is down" in flaky.run(rows=1)
    assert calls == [("lookup_contact", {"name": "Ann"}), ("flaky_export", {"rows": 1})]
    rows = audit_rows()
    assert [(r.action_type, r.target, r.result) for r in rows] == [
        ("lookup_contact", "crm", "success"),
        ("delete_contact", "crm", "blocked"),
        ("send_email", "crm", "denied"),
        ("flaky_export", "crm", "failed"),
    ]
    assert {r.agent_id for r in rows} == {"crm-agent"}


def test_tool_without_fn_uses_the_runtimes_executor(
    policy: Policy, audit_url: str, audit_rows: Any
) -> None:
    calls: Calls = []
    runtime = Runtime(executor=CrewAIExecutor(make_tools(calls)), policy=policy, audit=audit_url)
    tool = AegisCrewAITool(
        runtime=runtime,
        name="find",
        description="find",
        action_type="lookup_contact",
        action_target="crm",
    )
    assert tool.run(name="Bo") == "Bo: ann@example.com"
    assert calls == [("lookup_contact", {"name": "Bo"})]


async def test_async_run(policy: Policy, audit_url: str, audit_rows: Any) -> None:
    async def fn(query: str) -> str:
        return query.upper()

    async with make_runtime(policy, audit_url) as runtime:
        tool = AegisCrewAITool(
            runtime=runtime,
            name="s",
            description="s",
            action_type="search",
            action_target="w",
            fn=fn,
        )
        assert await tool.arun(query="aegis") == "AEGIS"
    assert audit_rows()[0].result == "success"


async def test_a_human_edit_is_what_fn_runs_with(
    policy: Policy, audit_url: str, audit_rows: Any
) -> None:
    seen: list[str] = []
    runtime = make_runtime(policy, audit_url, approval_handler="queue")
    tool = AegisCrewAITool(
        runtime=runtime,
        name="mail",
        description="send mail",
        action_type="send_email",
        action_target="smtp",
        fn=lambda to: seen.append(to) or f"sent to {to}",
    )
    call_sync(runtime.open)  # opened (tables made) before this thread reads the requests
    # CrewAI calls tools synchronously; the test answers meanwhile, as `aegis approvals` would.
    pending = asyncio.ensure_future(asyncio.to_thread(tool.run, to="all@corp"))
    for _ in range(400):
        if runtime.audit.approvals.list(state="pending"):
            break
        await asyncio.sleep(0.05)
    (request,) = runtime.audit.approvals.list(state="pending")
    runtime.audit.approvals.respond(
        request.id, channel="cli", responder="alice", verdict="approve", edits={"to": "team@corp"}
    )
    assert await pending == "sent to team@corp" and seen == ["team@corp"]
    assert [r.result for r in audit_rows()] == ["skipped", "success"]


def crew(llm: ScriptedLLM, tools: list[BaseTool]) -> Crew:
    agent = Agent(role="crm clerk", goal="tidy the CRM", backstory="careful", llm=llm, tools=tools)
    task = Task(description="tidy up the CRM", expected_output="a summary", agent=agent)
    return Crew(agents=[agent], tasks=[task])


def check_crew_outcome(llm: ScriptedLLM, calls: Calls, rows: list[Any]) -> None:
    assert calls == [("lookup_contact", {"name": "Ann"}), ("flaky_export", {"rows": 5})]
    shown = llm.shown()
    assert "Ann: ann@example.com" in shown
    assert "Blocked by policy: delete_contact on crm was not run" in shown
    assert "ask legal before mailing customers" in shown
    assert "export backend is down" in shown
    assert [(r.action_type, r.result) for r in rows] == [
        ("lookup_contact", "success"),
        ("delete_contact", "blocked"),
        ("send_email", "denied"),
        ("flaky_export", "failed"),
    ]


def test_crew_with_governed_tools(policy: Policy, audit_url: str, audit_rows: Any) -> None:
    calls: Calls = []
    llm = ScriptedLLM(model="scripted", script=crm_script())
    runtime = make_runtime(policy, audit_url, session_id="crew-run-1")
    out = crew(llm, govern_tools(runtime, make_tools(calls), target="crm")).kickoff()
    assert out.raw == "tidied"
    rows = audit_rows()
    check_crew_outcome(llm, calls, rows)
    assert {r.session_id for r in rows} == {"crew-run-1"}


def test_crew_governed_by_the_tool_hook(policy: Policy, audit_url: str, audit_rows: Any) -> None:
    calls: Calls = []
    llm = ScriptedLLM(model="scripted", script=crm_script())
    runtime = make_runtime(policy, audit_url)
    the_crew = crew(llm, make_tools(calls))
    with AegisToolHook(runtime, target="crm"):
        out = the_crew.kickoff()
    assert out.raw == "tidied"
    rows = audit_rows()
    check_crew_outcome(llm, calls, rows)
    assert {(r.agent_id, r.session_id, r.target) for r in rows} == {
        ("crm clerk", str(the_crew.id), "crm")
    }
    # Unregistered afterwards: the hook no longer sees calls.
    from crewai.hooks import get_before_tool_call_hooks

    assert all(getattr(h, "__self__", None) is None for h in get_before_tool_call_hooks())


def test_hook_leaves_governed_tools_to_govern_themselves(
    policy: Policy, audit_url: str, audit_rows: Any
) -> None:
    calls: Calls = []
    llm = ScriptedLLM(model="scripted", script=crm_script())
    runtime = make_runtime(policy, audit_url)
    with AegisToolHook(runtime, target="hook"):
        crew(llm, govern_tools(runtime, make_tools(calls), target="crm")).kickoff()
    rows = audit_rows()
    check_crew_outcome(llm, calls, rows)
    assert {r.target for r in rows} == {"crm"}  # one row per call, not two


def test_executor_runs_the_tool_named_by_the_action_type(
    policy: Policy, audit_url: str, audit_rows: Any
) -> None:
    calls: Calls = []
    runtime = Runtime(executor=CrewAIExecutor(make_tools(calls)), policy=policy, audit=audit_url)
    ok = call_sync(lambda: runtime.run_one(Action("lookup_contact", "crm", params={"name": "A"})))
    missing = call_sync(lambda: runtime.run_one(Action("lookup_other", "crm")))
    assert ok.ok and ok.data == "A: ann@example.com"
    assert missing.status is ResultStatus.FAILED and "no CrewAI tool" in (missing.error or "")
    with pytest.raises(ValueError, match="two CrewAI tools"):
        CrewAIExecutor(make_tools([])[:1] * 2)


def test_registered_through_the_entry_point() -> None:
    from aegis import plugins

    registration = plugins.get_registry().get("executors", "crewai")
    assert registration is not None
    assert isinstance(registration.obj(tools=make_tools([])), CrewAIExecutor)


def test_loading_the_plugin_does_not_import_crewai() -> None:
    """Every policy load builds the registry; CrewAI's import (seconds) must not ride along."""
    import subprocess
    import sys

    code = (
        "import sys; from aegis import plugins; reg = plugins.get_registry(); "
        "assert reg.get('executors', 'crewai') is not None; print('crewai' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_hook_fails_closed_when_aegis_cannot_decide(policy: Policy, audit_url: str) -> None:
    """CrewAI runs a tool when a hook raises; the hook must block instead, and say why."""
    calls: Calls = []
    llm = ScriptedLLM(model="scripted", script=crm_script()[:1] + crm_script()[-1:])
    broken = Runtime(executor=CrewAIExecutor([]), policy=policy, audit="nosuchdb://nowhere")
    with AegisToolHook(broken, target="crm"):
        out = crew(llm, make_tools(calls)).kickoff()
    assert out.raw == "tidied" and calls == []
    assert "Aegis could not govern this call, so it was not run" in llm.shown()
