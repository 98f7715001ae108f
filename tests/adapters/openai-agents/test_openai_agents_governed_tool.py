"""``governed_tool``: real FunctionTools, run by a real ``Runner`` with a scripted model."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from aegis.adapters.openai_agents import governed_tool
from agents import Agent, FunctionTool, RunContextWrapper, Runner
from agents.tool_context import ToolContext
from openai_agents_helpers import ScriptedModel, call_tool, echo_last_tool_output

from aegis import ApprovalDecision, Runtime
from aegis.adapters.base import CallableExecutor
from aegis.runtime.audit import AuditStore
from plugin_helpers import Human

# Verbatim from the original README's "Integrations" section.
README_SNIPPET = '''
from aegis.adapters.base import CallableExecutor
from aegis.adapters.openai_agents import governed_tool

@governed_tool(runtime=runtime, action_type="write", action_target="crm")
async def update_contact(name: str, email: str) -> str:
    """Update a CRM contact -- governed by Aegis policy."""
    return await crm.update(name=name, email=email)
'''


class FakeCRM:
    def __init__(self) -> None:
        self.updates: list[dict[str, str]] = []

    async def update(self, *, name: str, email: str) -> str:
        self.updates.append({"name": name, "email": email})
        return f"updated {name} <{email}>"


def readme_tool(runtime: Runtime, crm: FakeCRM) -> FunctionTool:
    namespace: dict[str, Any] = {"runtime": runtime, "crm": crm}
    exec(compile(textwrap.dedent(README_SNIPPET), "README.md", "exec"), namespace)
    tool = namespace["update_contact"]
    assert isinstance(tool, FunctionTool)
    return tool


async def run_agent(tool: FunctionTool, name: str, args: dict[str, Any], **agent: Any) -> Any:
    model = ScriptedModel(call_tool(name, args), echo_last_tool_output)
    result = await Runner.run(
        Agent(name=agent.pop("agent_name", "crm-agent"), model=model, tools=[tool], **agent),
        "do it",
    )
    return result.final_output


def test_readme_snippet_gives_a_real_function_tool(runtime: Runtime) -> None:
    tool = readme_tool(runtime, FakeCRM())
    assert tool.name == "update_contact"
    assert tool.description == "Update a CRM contact -- governed by Aegis policy."
    schema = tool.params_json_schema
    assert schema["required"] == ["name", "email"]
    assert schema["properties"]["email"]["type"] == "string"
    assert schema["additionalProperties"] is False and tool.strict_json_schema


async def test_readme_snippet_approved_call_runs_and_is_audited(
    runtime: Runtime, store: AuditStore, human: Human
) -> None:
    crm = FakeCRM()
    human.answer = ApprovalDecision.approve(approver="ana", reason="looks right")
    out = await run_agent(
        readme_tool(runtime, crm), "update_contact", {"name": "Ada", "email": "a@x"}
    )
    assert out == "updated Ada <a@x>"
    assert crm.updates == [{"name": "Ada", "email": "a@x"}]
    [asked] = human.asked
    assert (asked.type, asked.target, asked.params) == (
        "write",
        "crm",
        {"name": "Ada", "email": "a@x"},
    )
    [rec] = store.query(limit=None)
    assert (rec.action_type, rec.target, rec.result, rec.decision) == (
        "write",
        "crm",
        "success",
        "approved",
    )
    assert rec.params == {"name": "Ada", "email": "a@x"} and rec.approver == "ana"


async def test_denied_call_never_runs_and_the_model_sees_the_reason(
    runtime: Runtime, store: AuditStore, human: Human
) -> None:
    crm = FakeCRM()
    human.answer = ApprovalDecision.deny(approver="ana", reason="not during the freeze")
    out = await run_agent(
        readme_tool(runtime, crm), "update_contact", {"name": "Ada", "email": "a@x"}
    )
    assert crm.updates == []
    assert (
        out.startswith("Not approved: write on crm was not run") and "not during the freeze" in out
    )
    [rec] = store.query(limit=None)
    assert (rec.result, rec.approval_reason) == ("denied", "not during the freeze")


async def test_blocked_call_never_reaches_the_tool_and_the_run_completes(
    runtime: Runtime, store: AuditStore
) -> None:
    calls: list[int] = []

    @governed_tool(runtime=runtime, action_type="delete", action_target="crm")
    def delete_contact(contact_id: int) -> str:
        """Delete a contact."""
        calls.append(contact_id)
        return "deleted"

    out = await run_agent(delete_contact, "delete_contact", {"contact_id": 7})
    assert calls == []
    assert out == "Blocked by policy: delete on crm was not run. Reason: matched rule 'no_deletes'"
    [rec] = store.query(limit=None)
    assert (rec.action_type, rec.result, rec.matched_rule) == ("delete", "blocked", "no_deletes")
    assert rec.params == {"contact_id": 7}


async def test_allowed_sync_tool_runs_with_validated_arguments(
    runtime: Runtime, store: AuditStore
) -> None:
    seen: list[tuple[int, list[str]]] = []

    @governed_tool(runtime=runtime, action_type="read", action_target="crm")
    def find(limit: int, tags: list[str]) -> dict[str, Any]:
        """Find contacts.

        Args:
            limit: how many at most.
            tags: tags to match.
        """
        seen.append((limit, tags))
        return {"found": limit}

    assert find.params_json_schema["properties"]["limit"]["description"] == "how many at most."
    out = await run_agent(find, "find", {"limit": 3, "tags": ["vip"]})
    assert seen == [(3, ["vip"])] and out == str({"found": 3})  # the SDK str()s a dict
    [rec] = store.query(limit=None)
    assert (rec.result, rec.attempts, rec.params) == ("success", 1, {"limit": 3, "tags": ["vip"]})


async def test_raising_tool_is_failed_audited_and_explained(
    runtime: Runtime, store: AuditStore
) -> None:
    @governed_tool(runtime=runtime, action_type="read", action_target="crm")
    async def flaky(q: str) -> str:
        """Always breaks."""
        raise RuntimeError("crm is down")

    out = await run_agent(flaky, "flaky", {"q": "x"})
    assert out == "Failed: read on crm ran and failed: RuntimeError: crm is down (executor raised)"
    [rec] = store.query(limit=None)
    assert (rec.result, rec.error) == ("failed", "RuntimeError: crm is down")


async def test_identity_flows_from_the_sdk_agent_and_the_runtime(
    runtime: Runtime, store: AuditStore
) -> None:
    @governed_tool(runtime=runtime, action_type="read", action_target="crm")
    async def ping() -> str:
        """Ping."""
        return "pong"

    assert await run_agent(ping, "ping", {}, agent_name="sales-bot") == "pong"
    [rec] = store.query(limit=None)
    assert (rec.agent_id, rec.session_id) == ("sales-bot", "sess-42")


async def test_identity_on_the_runtime_wins_over_the_agent_name(
    store: AuditStore, runtime: Runtime
) -> None:
    runtime.agent_id = "registered-agent"

    @governed_tool(runtime=runtime, action_type="read", action_target="crm", session_id="s-9")
    async def ping() -> str:
        """Ping."""
        return "pong"

    await run_agent(ping, "ping", {}, agent_name="claims-to-be-admin")
    [rec] = store.query(limit=None)
    assert (rec.agent_id, rec.session_id) == ("registered-agent", "sess-42")


async def test_a_tools_session_is_recorded_when_the_runtime_fixes_none(store: AuditStore) -> None:
    from openai_agents_helpers import POLICY

    from aegis import Policy

    async with Runtime(
        executor=CallableExecutor(lambda a: None),
        policy=Policy.from_yaml_string(POLICY, source="p.yaml"),
        audit=store,
    ) as runtime:

        @governed_tool(runtime=runtime, action_type="read", action_target="crm", session_id="s-9")
        async def ping() -> str:
            """Ping."""
            return "pong"

        await run_agent(ping, "ping", {}, agent_name="sales-bot")
    [rec] = store.query(limit=None)
    assert (rec.agent_id, rec.session_id) == ("sales-bot", "s-9")


def _ctx(tool: FunctionTool, arguments: str) -> ToolContext[Any]:
    return ToolContext(
        context=None, tool_name=tool.name, tool_call_id="call_x", tool_arguments=arguments
    )


async def test_no_way_around_aegis_on_the_tool(runtime: Runtime, store: AuditStore) -> None:
    calls: list[int] = []

    @governed_tool(runtime=runtime, action_type="delete", action_target="crm")
    async def purge(contact_id: int) -> str:
        """Purge."""
        calls.append(contact_id)
        return "purged"

    # The SDK keeps the function it wraps on the tool; a governed tool must not expose the raw one.
    with pytest.raises(Exception):  # noqa: B017 - the SDK's own error for "no wrapped callable"
        raw = purge.__wrapped__
        raw(1)
    # Invoked exactly as the SDK invokes tools, it is still governed.
    out = await purge.on_invoke_tool(_ctx(purge, '{"contact_id": 1}'), '{"contact_id": 1}')
    assert out.startswith("Blocked by policy") and calls == []
    assert [r.result for r in store.query(limit=None)] == ["blocked"]


@pytest.mark.parametrize("arguments", ["not json", "[1, 2]"])
async def test_malformed_arguments_are_audited_and_not_run(
    runtime: Runtime, store: AuditStore, arguments: str
) -> None:
    calls: list[str] = []

    @governed_tool(runtime=runtime, action_type="read", action_target="crm")
    async def fetch(q: str) -> str:
        """Fetch."""
        calls.append(q)
        return q

    out = await fetch.on_invoke_tool(_ctx(fetch, arguments), arguments)
    assert calls == [] and out.startswith("Failed: read on crm ran and failed")
    [rec] = store.query(limit=None)
    assert rec.result == "failed" and rec.params == {"arguments": arguments}


async def test_arguments_that_fail_the_schema_are_a_failure_not_a_call(
    runtime: Runtime, store: AuditStore
) -> None:
    calls: list[int] = []

    @governed_tool(runtime=runtime, action_type="read", action_target="crm")
    async def get(contact_id: int) -> int:
        """Get."""
        calls.append(contact_id)
        return contact_id

    out = await get.on_invoke_tool(_ctx(get, '{"contact_id": "seven"}'), '{"contact_id": "seven"}')
    assert calls == [] and "ValidationError" in out
    assert [r.result for r in store.query(limit=None)] == ["failed"]


async def test_context_argument_is_passed_through_and_not_a_param(
    runtime: Runtime, store: AuditStore
) -> None:
    seen: list[Any] = []

    @governed_tool(runtime=runtime, action_type="read", action_target="crm")
    async def whoami(ctx: RunContextWrapper[Any], greeting: str) -> str:
        """Greets the user in the run context."""
        seen.append(ctx.context)
        return f"{greeting} {ctx.context['user']}"

    assert "ctx" not in whoami.params_json_schema["properties"]
    model = ScriptedModel(call_tool("whoami", {"greeting": "hi"}), echo_last_tool_output)
    result = await Runner.run(
        Agent(name="a", model=model, tools=[whoami]), "x", context={"user": "ada"}
    )
    assert result.final_output == "hi ada" and seen == [{"user": "ada"}]
    [rec] = store.query(limit=None)
    assert rec.params == {"greeting": "hi"}


def test_bad_configuration_is_refused_at_decoration(runtime: Runtime) -> None:
    with pytest.raises(TypeError, match="aegis Runtime"):
        governed_tool(runtime=object(), action_type="read", action_target="crm")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="non-empty"):
        governed_tool(runtime=runtime, action_type="", action_target="crm")


async def test_an_approvers_edit_is_what_the_tool_runs_with(store: AuditStore) -> None:
    from openai_agents_helpers import POLICY

    from aegis import Policy
    from plugin_helpers import EditingApprover

    crm = FakeCRM()
    async with Runtime(
        executor=CallableExecutor(lambda a: None),
        policy=Policy.from_yaml_string(POLICY, source="p.yaml"),
        approval_handler=EditingApprover({"email": "ada@corp.example"}),
        audit=store,
    ) as runtime:
        out = await run_agent(
            readme_tool(runtime, crm), "update_contact", {"name": "Ada", "email": "typo@x"}
        )
    assert crm.updates == [{"name": "Ada", "email": "ada@corp.example"}]
    assert out == "updated Ada <ada@corp.example>"
    recs = store.query(limit=None)
    assert [(r.params["email"], r.result) for r in recs] == [
        ("typo@x", "skipped"), ("ada@corp.example", "success")
    ]  # fmt: skip


async def test_an_audit_store_that_cannot_write_stops_the_run_before_the_tool(
    runtime: Runtime, store: AuditStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aegis import AuditError

    calls: list[str] = []

    @governed_tool(runtime=runtime, action_type="read", action_target="crm")
    async def fetch(q: str) -> str:
        """Fetch."""
        calls.append(q)
        return q

    async def cannot_write(*args: Any, **kwargs: Any) -> Any:
        raise AuditError("disk full")

    monkeypatch.setattr(store, "begin", cannot_write)
    monkeypatch.setattr(store, "record", cannot_write)
    with pytest.raises(Exception, match="disk full") as raised:  # the SDK wraps it: UserError
        await run_agent(fetch, "fetch", {"q": "x"})
    assert isinstance(raised.value.__cause__, AuditError) and calls == []


async def test_parallel_calls_in_one_turn_are_governed_one_by_one(
    runtime: Runtime, store: AuditStore
) -> None:
    from openai_agents_helpers import say, tool_outputs

    ran: list[str] = []

    @governed_tool(runtime=runtime, action_type="read", action_target="crm")
    async def read_note(note_id: int) -> str:
        """Read a note."""
        ran.append(f"read {note_id}")
        return f"note {note_id}"

    @governed_tool(runtime=runtime, action_type="delete", action_target="crm")
    async def drop_note(note_id: int) -> str:
        """Drop a note."""
        ran.append(f"drop {note_id}")
        return "dropped"

    def both(items: list[Any]) -> list[Any]:
        return call_tool("read_note", {"note_id": 1}, "c1")(items) + call_tool(
            "drop_note", {"note_id": 2}, "c2"
        )(items)

    model = ScriptedModel(both, lambda items: say(" | ".join(tool_outputs(items))))
    result = await Runner.run(Agent(name="a", model=model, tools=[read_note, drop_note]), "x")
    assert ran == ["read 1"]
    assert result.final_output.startswith("note 1 | Blocked by policy: delete on crm")
    assert sorted((r.action_type, r.result) for r in store.query(limit=None)) == [
        ("delete", "blocked"), ("read", "success")
    ]  # fmt: skip


async def test_arguments_nested_past_the_limit_are_audited_and_not_run(
    runtime: Runtime, store: AuditStore
) -> None:
    calls: list[Any] = []

    @governed_tool(runtime=runtime, action_type="read", action_target="crm")
    async def fetch(q: str) -> str:
        """Fetch."""
        calls.append(q)
        return q

    deep = '{"q": ' + "[" * 200 + "]" * 200 + "}"
    out = await fetch.on_invoke_tool(_ctx(fetch, deep), deep)
    assert calls == [] and "cannot be params" in out
    [rec] = store.query(limit=None)
    assert rec.result == "failed" and rec.params == {"arguments": deep}
