"""LangChainExecutor, AegisTool and govern_tools with real langchain-core tools.

Every test asserts on what the tools really did (``calls``) and on rows in the real SQLite
audit store, never on a status alone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aegis.adapters.langchain import AegisTool, GovernedTool, LangChainExecutor, govern_tools
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import BaseTool, tool
from lc_helpers import ScriptedChatModel, approve_with_edits, call, make_tools, turn

from aegis import Action, ApprovalDecision, Policy, ResultStatus, Runtime
from aegis.adapters.base import CallableExecutor
from aegis.runtime.approval.handlers import CallbackApprovalHandler
from plugin_helpers import TOOLS_POLICY

# The original README's LangChain snippet, character for character.
README_SNIPPET = """\
from aegis.adapters.langchain import LangChainExecutor, AegisTool

# Wrap existing LangChain tools with governance
executor = LangChainExecutor(tools=[DuckDuckGoSearchRun()])
runtime = Runtime(executor=executor, policy=Policy.from_yaml("policy.yaml"))

# Or expose governed actions AS LangChain tools
tool = AegisTool.from_runtime(runtime, name="governed_search",
description="Policy-governed search", action_type="search", action_target="web")
"""


def deny_email(action: Action, decision: Any) -> ApprovalDecision:
    return ApprovalDecision.deny("legal@corp", "ask legal before mailing customers")


def test_readme_snippet_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, audit_rows: Any
) -> None:
    searched: list[str] = []

    class DuckDuckGoSearchRun(BaseTool):
        """Offline stand-in with the real tool's name and input; records instead of searching."""

        name: str = "duckduckgo_search"
        description: str = "search the web"

        def _run(self, query: str) -> str:
            searched.append(query)
            return f"results for {query}"

    monkeypatch.chdir(tmp_path)
    (tmp_path / "policy.yaml").write_text(
        TOOLS_POLICY + "  - {name: ddg, match: {type: duck*}, approval: auto}\n"
    )
    ns: dict[str, Any] = {"Runtime": Runtime, "Policy": Policy}
    ns["DuckDuckGoSearchRun"] = DuckDuckGoSearchRun
    exec(README_SNIPPET, ns)
    runtime: Runtime = ns["runtime"]

    # The executor runs the tool whose name is the action's type, params as its input.
    direct = runtime_call(runtime, Action("duckduckgo_search", "web", params={"query": "aegis"}))
    assert direct.ok and direct.data == "results for aegis" and searched == ["aegis"]

    # The governed tool is a real LangChain tool; its calls are "search" actions on "web".
    governed = ns["tool"]
    assert isinstance(governed, BaseTool) and governed.name == "governed_search"
    out = governed.invoke({"query": "policy engines"})
    # The runtime's executor has no tool named "search": the model is told so, nothing runs.
    assert "no LangChain tool named 'search'" in out and searched == ["aegis"]
    store_path = tmp_path / "aegis_audit.db"
    assert store_path.exists()
    rows = [(r.action_type, r.target, r.result) for r in read_rows(f"sqlite:///{store_path}")]
    assert rows == [("duckduckgo_search", "web", "success"), ("search", "web", "failed")]


def runtime_call(runtime: Runtime, action: Action) -> Any:
    from aegis.adapters.base import call_sync

    return call_sync(lambda: runtime.run_one(action))


def read_rows(url: str) -> list[Any]:
    from aegis.runtime.audit import AuditStore

    store = AuditStore(url)
    store.open_sync()
    try:
        return store.query(limit=None)
    finally:
        store.close_sync()


async def test_executor_runs_the_tool_named_by_the_action_type(
    policy: Policy, audit_url: str, audit_rows: Any
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    executor = LangChainExecutor(tools=make_tools(calls))
    async with Runtime(executor=executor, policy=policy, audit=audit_url, agent_id="a1") as rt:
        ok = await rt.run_one(Action("lookup_contact", "crm", params={"name": "Ann"}))
        blocked = await rt.run_one(Action("delete_contact", "crm", params={"contact_id": 7}))
        broken = await rt.run_one(Action("flaky_export", "crm", params={"rows": 3}))
        unknown = await rt.run_one(Action("lookup_nothing", "crm"))
    assert ok.ok and ok.data == "Ann: ann@example.com"
    assert blocked.status is ResultStatus.BLOCKED
    assert broken.status is ResultStatus.FAILED and "export backend is down" in broken.error
    assert unknown.status is ResultStatus.FAILED and "no LangChain tool" in unknown.error
    assert [name for name, _ in calls] == ["lookup_contact", "flaky_export"]
    rows = audit_rows()
    assert [r.result for r in rows] == ["success", "blocked", "failed", "failed"]
    assert {r.agent_id for r in rows} == {"a1"}


def test_executor_refuses_two_tools_with_one_name() -> None:
    tools = make_tools([])
    with pytest.raises(ValueError, match="two LangChain tools"):
        LangChainExecutor(tools=[tools[0], tools[0]])


async def test_aegis_tool_blocked_and_denied_calls_say_why(
    policy: Policy, audit_url: str, audit_rows: Any
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    executor = LangChainExecutor(tools=make_tools(calls))
    handler = CallbackApprovalHandler(deny_email)
    async with Runtime(
        executor=executor, policy=policy, audit=audit_url, approval_handler=handler
    ) as rt:
        delete = AegisTool.from_runtime(
            rt, "remove", "Delete a contact", "delete_contact", "crm", session_id="chat-9"
        )
        email = AegisTool.from_runtime(rt, "mail", "Send mail", "send_email", "smtp")
        blocked = await delete.ainvoke(call("remove", {"contact_id": 1}, "c1"))
        denied = await email.ainvoke(call("mail", {"to": "x@y", "body": "hi"}, "c2"))
    assert calls == []
    assert isinstance(blocked, ToolMessage) and blocked.status == "error"
    assert blocked.content.startswith("Blocked by policy: delete_contact on crm")
    assert isinstance(denied, ToolMessage) and denied.status == "error"
    assert "ask legal before mailing customers" in denied.content
    rows = audit_rows()
    assert [(r.action_type, r.result) for r in rows] == [
        ("delete_contact", "blocked"),
        ("send_email", "denied"),
    ]
    assert rows[0].session_id == "chat-9" and rows[0].params == {"contact_id": 1}


async def test_governed_tools_keep_name_description_and_schema(policy: Policy) -> None:
    tools = make_tools([])
    async with Runtime(executor=LangChainExecutor([]), policy=policy, audit="sqlite://") as rt:
        governed = govern_tools(rt, tools, target="crm")
        assert govern_tools(rt, governed) == governed  # never governed twice
    for raw, wrapped in zip(tools, governed, strict=True):
        assert isinstance(wrapped, GovernedTool) and wrapped is not raw
        assert (wrapped.name, wrapped.description) == (raw.name, raw.description)
        schema = wrapped.tool_call_schema.model_json_schema()  # type: ignore[union-attr]
        assert schema == raw.tool_call_schema.model_json_schema()  # type: ignore[union-attr]


async def test_core_only_agent_loop_over_governed_tools(
    policy: Policy, audit_url: str, audit_rows: Any
) -> None:
    """langchain-core has no agent loop: this is the loop users write, over governed tools."""
    calls: list[tuple[str, dict[str, Any]]] = []
    model = ScriptedChatModel(
        script=[
            turn(
                call("lookup_contact", {"name": "Ann"}, "1"),
                call("delete_contact", {"contact_id": 7}, "2"),
                call("send_email", {"to": "ann@example.com", "body": "hi"}, "3"),
                call("flaky_export", {"rows": 5}, "4"),
            ),
        ]
    )
    handler = CallbackApprovalHandler(deny_email)
    async with Runtime(
        executor=LangChainExecutor([]),
        policy=policy,
        audit=audit_url,
        approval_handler=handler,
        session_id="loop-1",
    ) as rt:
        tools = {t.name: t for t in govern_tools(rt, make_tools(calls), target="crm")}
        bound = model.bind_tools(list(tools.values()))
        reply = await bound.ainvoke([HumanMessage("tidy up the CRM")])
        answers = [await tools[c["name"]].ainvoke(c) for c in reply.tool_calls]
    assert calls == [("lookup_contact", {"name": "Ann"}), ("flaky_export", {"rows": 5})]
    ok, blocked, denied, failed = answers
    assert ok.content == "Ann: ann@example.com" and ok.status == "success"
    assert blocked.status == "error" and "no_deletes" in blocked.content
    assert denied.status == "error" and "ask legal" in denied.content
    assert failed.status == "error" and "export backend is down" in failed.content
    rows = audit_rows()
    assert [(r.action_type, r.target, r.result) for r in rows] == [
        ("lookup_contact", "crm", "success"),
        ("delete_contact", "crm", "blocked"),
        ("send_email", "crm", "denied"),
        ("flaky_export", "crm", "failed"),
    ]
    assert {r.session_id for r in rows} == {"loop-1"}


def test_sync_invoke_of_a_governed_tool(policy: Policy, audit_url: str, audit_rows: Any) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    rt = Runtime(executor=LangChainExecutor([]), policy=policy, audit=audit_url)
    lookup, delete, *_ = govern_tools(rt, make_tools(calls))
    assert lookup.invoke({"name": "Bo"}) == "Bo: ann@example.com"
    assert delete.invoke({"contact_id": 1}).startswith("Blocked by policy")
    assert calls == [("lookup_contact", {"name": "Bo"})]
    assert [r.result for r in audit_rows()] == ["success", "blocked"]


async def test_a_human_edit_is_what_the_tool_runs_with(
    policy: Policy, audit_url: str, audit_rows: Any
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    async with Runtime(
        executor=LangChainExecutor([]), policy=policy, audit=audit_url, approval_handler="queue"
    ) as rt:
        send = govern_tools(rt, make_tools(calls))[2]
        pending = asyncio.ensure_future(send.ainvoke({"to": "all@corp", "body": "hi"}))
        await approve_with_edits(rt, {"to": "team@corp"})
        out = await pending
    assert out == "sent" and calls == [("send_email", {"to": "team@corp", "body": "hi"})]
    original, edited = audit_rows()
    assert (original.result, edited.result, edited.parent_id) == ("skipped", "success", original.id)
    assert edited.params == {"to": "team@corp", "body": "hi"}


async def test_governed_tool_executor_uses_the_given_action() -> None:
    seen: list[str] = []

    @tool
    def lookup_contact(name: str) -> str:
        """Find."""
        seen.append(name)
        return name

    rt = Runtime(executor=LangChainExecutor([]), policy=Policy.from_dict({"version": "1"}))
    (governed,) = govern_tools(rt, [lookup_contact])
    executor = governed._executor()
    assert isinstance(executor, CallableExecutor)
    result = await executor.execute(Action("lookup_contact", "x", params={"name": "handed"}))
    assert result.data == "handed" and seen == ["handed"]


def test_registered_through_the_entry_point() -> None:
    from aegis import plugins

    registration = plugins.get_registry().get("executors", "langchain")
    assert registration is not None
    executor = registration.obj(tools=make_tools([]))
    assert isinstance(executor, LangChainExecutor) and "send_email" in executor.tools


def test_loading_the_plugin_does_not_import_langchain() -> None:
    """Every policy load builds the registry; LangChain's import must not ride along."""
    import subprocess
    import sys

    code = (
        "import sys; from aegis import plugins; reg = plugins.get_registry(); "
        "assert reg.get('executors', 'langchain') is not None; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'langchain', "
        "'langchain_core', 'langgraph'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
