"""Ways around Aegis tried on the Anthropic adapter, as an attacker (or a careless app) would."""

from __future__ import annotations

from typing import Any

from aegis.adapters.anthropic import govern_tool_use, tool_results_to_api_format
from anthropic.types import ToolUseBlock

from aegis import Policy, ResultStatus, Runtime
from aegis.runtime.audit import AuditStore
from conftest import POLICY
from plugin_helpers import EditingApprover, Unreachable


def use(name: str, tool_id: str, **tool_input: Any) -> ToolUseBlock:
    return ToolUseBlock(type="tool_use", id=tool_id, name=name, input=tool_input)


async def test_an_approve_rule_with_no_handler_given_is_denied(store: AuditStore) -> None:
    ran: list[Any] = []
    async with Runtime(
        executor=Unreachable(), policy=Policy.from_yaml_string(POLICY), audit=store
    ) as rt:
        result = await govern_tool_use(
            rt, use("refund", "toolu_1", amount=5), "pay", tool=lambda **kw: ran.append(kw)
        )
    assert result.status is ResultStatus.DENIED and ran == []
    [block] = tool_results_to_api_format([result])
    assert block["is_error"] is True and block["tool_use_id"] == "toolu_1"
    assert [r.result for r in store.query(limit=None)] == ["denied"]


async def test_an_edited_call_still_answers_its_tool_use_block(store: AuditStore) -> None:
    """The edit runs as a new action: it must keep the block's id, or the app cannot answer."""
    ran: list[Any] = []
    async with Runtime(
        executor=Unreachable(),
        policy=Policy.from_yaml_string(POLICY),
        approval_handler=EditingApprover({"amount": 1}),
        audit=store,
    ) as rt:
        result = await govern_tool_use(
            rt, use("refund", "toolu_9", amount=500), "pay", tool=lambda **kw: ran.append(kw)
        )
    assert result.ok and ran == [{"amount": 1}]
    [block] = tool_results_to_api_format([result])
    assert block["tool_use_id"] == "toolu_9" and block["is_error"] is False


async def test_two_blocks_with_one_id_are_each_decided(store: AuditStore) -> None:
    """A duplicate id must not let the second call ride on the first one's decision."""
    ran: list[str] = []
    async with Runtime(
        executor=Unreachable(), policy=Policy.from_yaml_string(POLICY), audit=store
    ) as rt:
        first = await govern_tool_use(
            rt, use("get_order", "toolu_1", id=1), "shop", tool=lambda **kw: ran.append("get")
        )
        second = await govern_tool_use(
            rt, use("delete_order", "toolu_1", id=1), "shop", tool=lambda **kw: ran.append("del")
        )
    assert first.ok and second.status is ResultStatus.BLOCKED and ran == ["get"]
    assert [r.result for r in store.query(limit=None)] == ["success", "blocked"]
