"""The Anthropic adapter with real ``anthropic.types`` and ``AsyncAnthropic`` against a stand-in."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from aegis.adapters.anthropic import govern_tool_call, govern_tool_use, tool_results_to_api_format
from anthropic import AsyncAnthropic
from anthropic.types import Message, TextBlock, ToolUseBlock
from anthropic_standin import StandIn, serve

from aegis import Action, ApprovalDecision, Result, ResultStatus, Runtime
from aegis.runtime.audit import AuditStore
from conftest import Recorder
from plugin_helpers import Human

# Verbatim from the original README's "Integrations" section (it runs inside an async function).
README_SNIPPET = """
from aegis.adapters.anthropic import govern_tool_call

for block in response.content:
    if block.type == "tool_use":
        result = await govern_tool_call(
            runtime=runtime, tool_name=block.name,
            tool_input=block.input, target="my_system")
"""


async def run_readme_snippet(runtime: Runtime, response: Message) -> Any:
    source = (
        "async def snippet(runtime, response):\n"
        + textwrap.indent(textwrap.dedent(README_SNIPPET), "    ")
        + "    return result\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, "README.md", "exec"), namespace)
    return await namespace["snippet"](runtime, response)


def message(*blocks: Any) -> Message:
    return Message(
        id="msg_1",
        type="message",
        role="assistant",
        model="claude-test",
        content=list(blocks),
        stop_reason="tool_use",
        stop_sequence=None,
        usage={"input_tokens": 1, "output_tokens": 1},  # type: ignore[arg-type]
    )


def use(name: str, tool_id: str = "toolu_1", **tool_input: Any) -> ToolUseBlock:
    return ToolUseBlock(type="tool_use", id=tool_id, name=name, input=tool_input)


async def test_readme_snippet_runs_the_allowed_call_through_the_runtime(
    runtime: Runtime, recorder: Recorder, store: AuditStore
) -> None:
    response = message(TextBlock(type="text", text="sure"), use("get_order", order_id=5))
    result = await run_readme_snippet(runtime, response)
    assert isinstance(result, Result) and result.ok
    assert [(a.type, a.target, a.params) for a in recorder.ran] == [
        ("get_order", "my_system", {"order_id": 5})
    ]
    [rec] = store.query(limit=None)
    assert (rec.action_type, rec.target, rec.result, rec.params) == (
        "get_order", "my_system", "success", {"order_id": 5}
    )  # fmt: skip
    assert (rec.agent_id, rec.session_id) == ("support-bot", "sess-7")


async def test_blocked_call_never_runs(
    runtime: Runtime, recorder: Recorder, store: AuditStore
) -> None:
    calls: list[Any] = []
    result = await govern_tool_use(
        runtime, use("delete_customer", id=1), "crm", tool=lambda **kw: calls.append(kw)
    )
    assert result.status is ResultStatus.BLOCKED and calls == [] and recorder.ran == []
    [block] = tool_results_to_api_format([result])
    assert block["is_error"] is True and block["tool_use_id"] == "toolu_1"
    assert str(block["content"]).startswith("Blocked by policy: delete_customer on crm")
    assert [r.result for r in store.query(limit=None)] == ["blocked"]


async def test_denied_call_never_runs_and_claude_is_told_why(
    runtime: Runtime, human: Human, store: AuditStore
) -> None:
    calls: list[Any] = []
    human.answer = ApprovalDecision.deny(approver="ana", reason="refunds over 100 need a manager")
    result = await govern_tool_use(
        runtime, use("refund", amount=250), "payments", tool=lambda **kw: calls.append(kw)
    )
    assert result.status is ResultStatus.DENIED and calls == []
    [block] = tool_results_to_api_format([result])
    assert block["is_error"] is True and "refunds over 100 need a manager" in str(block["content"])
    [rec] = store.query(limit=None)
    assert (rec.result, rec.approver) == ("denied", "ana")


async def test_approved_call_runs_the_given_tool_with_the_approved_params(
    runtime: Runtime, human: Human, recorder: Recorder, store: AuditStore
) -> None:
    seen: list[dict[str, Any]] = []

    async def refund(amount: int) -> str:
        seen.append({"amount": amount})
        return f"refunded {amount}"

    human.answer = ApprovalDecision.approve(approver="ana")
    result = await govern_tool_use(runtime, use("refund", amount=20), "payments", tool=refund)
    assert result.ok and seen == [{"amount": 20}] and recorder.ran == []
    [block] = tool_results_to_api_format([result])
    assert block == {
        "type": "tool_result", "tool_use_id": "toolu_1", "content": "refunded 20", "is_error": False
    }  # fmt: skip
    assert [r.result for r in store.query(limit=None)] == ["success"]


async def test_raising_tool_is_failed_audited_and_an_error_block(
    runtime: Runtime, store: AuditStore
) -> None:
    def broken(**_: Any) -> None:
        raise ConnectionError("backend unreachable")

    result = await govern_tool_use(runtime, use("get_stock", sku="A1"), "shop", tool=broken)
    assert result.status is ResultStatus.FAILED
    [block] = tool_results_to_api_format([result])
    assert block["is_error"] is True and "ConnectionError: backend unreachable" in str(
        block["content"]
    )
    [rec] = store.query(limit=None)
    assert (rec.result, rec.error) == ("failed", "ConnectionError: backend unreachable")


async def test_input_that_is_not_an_object_is_recorded_and_not_run(
    runtime: Runtime, recorder: Recorder, store: AuditStore
) -> None:
    result = await govern_tool_call(runtime, "get_order", ["not", "an", "object"], "shop")  # type: ignore[arg-type]
    assert result.status is ResultStatus.FAILED and recorder.ran == []
    [rec] = store.query(limit=None)
    assert rec.params == {"tool_input": ["not", "an", "object"]} and rec.result == "failed"


def test_results_need_an_id_and_pairs_supply_one() -> None:
    ok = Result(Action("get_order", "shop"), ResultStatus.SUCCESS, data={"id": 5})
    with pytest.raises(ValueError, match="no tool_use_id"):
        tool_results_to_api_format([ok])
    assert tool_results_to_api_format([("toolu_9", ok)]) == [
        {"type": "tool_result", "tool_use_id": "toolu_9", "content": '{"id": 5}', "is_error": False}
    ]


async def test_a_full_tool_use_turn_with_the_real_client(
    runtime: Runtime, recorder: Recorder, store: AuditStore
) -> None:
    stand_in = StandIn(
        [
            {"id": "toolu_a", "name": "get_order", "input": {"order_id": 5}},
            {"id": "toolu_b", "name": "delete_customer", "input": {"id": 9}},
            {"id": "toolu_c", "name": "get_broken", "input": {}},
        ]
    )
    with serve(stand_in):
        client = AsyncAnthropic(api_key="sk-test", base_url=stand_in.url, max_retries=0)
        tools = [
            {"name": n, "description": n, "input_schema": {"type": "object"}}
            for n in ("get_order", "delete_customer", "get_broken")
        ]
        messages: list[Any] = [{"role": "user", "content": "tidy up order 5"}]
        first = await client.messages.create(
            model="claude-test", max_tokens=100, tools=tools, messages=messages
        )
        assert first.stop_reason == "tool_use"
        results = [
            await govern_tool_use(runtime, block, "crm")
            for block in first.content
            if block.type == "tool_use"
        ]
        messages += [
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": tool_results_to_api_format(results)},
        ]
        final = await client.messages.create(
            model="claude-test", max_tokens=100, tools=tools, messages=messages
        )
        await client.close()
    sent = stand_in.requests[-1]["body"]["messages"][-1]["content"]
    assert [(b["tool_use_id"], b["is_error"]) for b in sent] == [
        ("toolu_a", False), ("toolu_b", True), ("toolu_c", True)
    ]  # fmt: skip
    assert [a.type for a in recorder.ran] == ["get_order", "get_broken"]  # never delete_customer
    text = final.content[0].text  # type: ignore[union-attr]
    assert "toolu_b error=True: Blocked by policy: delete_customer on crm was not run" in text
    recs = store.query(limit=None)
    assert [(r.action_type, r.result) for r in recs] == [
        ("get_order", "success"), ("delete_customer", "blocked"), ("get_broken", "failed")
    ]  # fmt: skip


async def test_an_approvers_edit_is_what_the_tool_runs_with(store: AuditStore) -> None:
    from aegis import Policy
    from aegis.adapters.base import CallableExecutor
    from conftest import POLICY
    from plugin_helpers import EditingApprover

    seen: list[dict[str, Any]] = []

    def refund(amount: int, lines: list[str]) -> str:
        lines.append("checked")  # a plain list: the tool may use it as JSON-shaped input
        seen.append({"amount": amount, "lines": lines})
        return "ok"

    async with Runtime(
        executor=CallableExecutor(lambda a: None),
        policy=Policy.from_yaml_string(POLICY, source="p.yaml"),
        approval_handler=EditingApprover({"amount": 100}),
        audit=store,
    ) as runtime:
        result = await govern_tool_use(
            runtime, use("refund", amount=1000, lines=["a"]), "payments", tool=refund
        )
    assert result.ok and seen == [{"amount": 100, "lines": ["a", "checked"]}]
    assert [(r.params["amount"], r.result) for r in store.query(limit=None)] == [
        (1000, "skipped"), (100, "success")
    ]  # fmt: skip


async def test_an_audit_store_that_cannot_write_raises_and_nothing_runs(
    runtime: Runtime, store: AuditStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aegis import AuditError

    calls: list[Any] = []

    async def cannot_write(*args: Any, **kwargs: Any) -> Any:
        raise AuditError("disk full")

    monkeypatch.setattr(store, "begin", cannot_write)
    monkeypatch.setattr(store, "record", cannot_write)
    with pytest.raises(AuditError, match="disk full"):
        await govern_tool_use(
            runtime, use("get_order", order_id=1), "shop", tool=lambda **kw: calls.append(kw)
        )
    assert calls == []


async def test_identity_fixed_on_the_runtime_wins_over_the_call(
    runtime: Runtime, store: AuditStore
) -> None:
    result = await govern_tool_call(
        runtime, "get_order", {"order_id": 2}, "shop", agent_id="claims-admin", session_id="conv-1"
    )
    assert result.ok
    [rec] = store.query(limit=None)
    assert (rec.agent_id, rec.session_id) == ("support-bot", "sess-7")


async def test_the_calls_identity_is_recorded_when_the_runtime_fixes_none(
    store: AuditStore, recorder: Recorder
) -> None:
    from aegis import Policy
    from conftest import POLICY

    async with Runtime(
        executor=recorder, policy=Policy.from_yaml_string(POLICY, source="p.yaml"), audit=store
    ) as runtime:
        await govern_tool_call(
            runtime, "get_order", {"order_id": 2}, "shop", agent_id="claude-1", session_id="conv-1"
        )
    [rec] = store.query(limit=None)
    assert (rec.agent_id, rec.session_id) == ("claude-1", "conv-1")


async def test_input_nested_past_the_limit_is_recorded_and_not_run(
    runtime: Runtime, recorder: Recorder, store: AuditStore
) -> None:
    deep: Any = "leaf"
    for _ in range(100):
        deep = {"d": deep}
    calls: list[Any] = []
    result = await govern_tool_call(
        runtime, "get_order", {"x": deep}, "shop", tool=lambda **kw: calls.append(kw)
    )
    assert result.status is ResultStatus.FAILED and "cannot be params" in (result.error or "")
    assert calls == [] and recorder.ran == []
    [rec] = store.query(limit=None)
    assert rec.result == "failed" and rec.params["tool_input"].startswith("{'x': {'d'")
