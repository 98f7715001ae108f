"""A scripted chat model and recording tools for the LangChain adapter tests (the policy is
``plugin_helpers.TOOLS_POLICY``).

The stock fake chat models raise on ``bind_tools``; this one records what was bound and
answers from a shared script (``create_agent`` binds again every turn), and remembers the
messages it was shown, so a test can check what the model saw after a refusal.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool, tool
from pydantic import ConfigDict, Field


class ScriptedChatModel(BaseChatModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    script: list[AIMessage]
    seen: list[list[BaseMessage]] = Field(default_factory=list)
    bound: list[list[str]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(self, messages: list[BaseMessage], *a: Any, **kw: Any) -> ChatResult:
        self.seen.append(list(messages))
        return ChatResult(generations=[ChatGeneration(message=self.script.pop(0))])

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        self.bound.append([getattr(t, "name", str(t)) for t in tools])
        return self

    def tool_messages(self) -> list[ToolMessage]:
        last = self.seen[-1] if self.seen else []
        return [m for m in last if isinstance(m, ToolMessage)]


def call(name: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def turn(*calls: dict[str, Any]) -> AIMessage:
    return AIMessage(content="", tool_calls=list(calls))


def make_tools(calls: list[tuple[str, dict[str, Any]]]) -> list[BaseTool]:
    """Real langchain-core tools; each appends (name, args) to ``calls`` when it really runs."""

    @tool
    def lookup_contact(name: str) -> str:
        """Find a CRM contact by name."""
        calls.append(("lookup_contact", {"name": name}))
        return f"{name}: ann@example.com"

    @tool
    def delete_contact(contact_id: int) -> str:
        """Delete a CRM contact."""
        calls.append(("delete_contact", {"contact_id": contact_id}))
        return "deleted"

    @tool
    def send_email(to: str, body: str) -> str:
        """Send an email."""
        calls.append(("send_email", {"to": to, "body": body}))
        return "sent"

    @tool
    def flaky_export(rows: int) -> str:
        """Export rows (always breaks)."""
        calls.append(("flaky_export", {"rows": rows}))
        raise ValueError("export backend is down")

    return [lookup_contact, delete_contact, send_email, flaky_export]


async def approve_with_edits(runtime: Any, edits: dict[str, Any]) -> None:
    """Answer the one pending request as a human would with ``aegis approvals --set``."""
    import asyncio

    for _ in range(400):
        pending = runtime.audit.approvals.list(state="pending") if runtime.audit.is_open else []
        if pending:
            runtime.audit.approvals.respond(
                pending[0].id,
                channel="cli",
                responder="alice",
                verdict="approve",
                reason="fixed the address",
                edits=edits,
            )
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no approval request was stored")
