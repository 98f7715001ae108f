"""Recording CrewAI tools and a scripted LLM (a ``crewai.BaseLLM`` answering from a list)."""

from __future__ import annotations

import json
from typing import Any

from crewai import BaseLLM
from crewai.tools import BaseTool
from pydantic import Field

Calls = list[tuple[str, dict[str, Any]]]


def make_tools(calls: Calls) -> list[BaseTool]:
    """Real CrewAI BaseTools; each appends (name, args) to ``calls`` when it really runs."""

    class LookupContact(BaseTool):
        name: str = "lookup_contact"
        description: str = "Find a CRM contact by name."

        def _run(self, name: str) -> str:
            calls.append(("lookup_contact", {"name": name}))
            return f"{name}: ann@example.com"

    class DeleteContact(BaseTool):
        name: str = "delete_contact"
        description: str = "Delete a CRM contact."

        def _run(self, contact_id: int) -> str:
            calls.append(("delete_contact", {"contact_id": contact_id}))
            return "deleted"

    class SendEmail(BaseTool):
        name: str = "send_email"
        description: str = "Send an email."

        def _run(self, to: str, body: str) -> str:
            calls.append(("send_email", {"to": to, "body": body}))
            return "sent"

    class FlakyExport(BaseTool):
        name: str = "flaky_export"
        description: str = "Export rows (always breaks)."

        def _run(self, rows: int) -> str:
            calls.append(("flaky_export", {"rows": rows}))
            raise ValueError("export backend is down")

    return [LookupContact(), DeleteContact(), SendEmail(), FlakyExport()]


def react(tool: str, args: dict[str, Any]) -> str:
    return f"Thought: I will use {tool}\nAction: {tool}\nAction Input: {json.dumps(args)}"


class ScriptedLLM(BaseLLM):
    """Answers each call with the next scripted text; keeps every prompt it was shown."""

    script: list[str] = Field(default_factory=list)
    seen: list[Any] = Field(default_factory=list)

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        self.seen.append(messages)
        return self.script.pop(0)

    def supports_function_calling(self) -> bool:
        return False

    def shown(self) -> str:
        """Everything the model was shown, as one text (tool observations included)."""
        parts: list[str] = []
        for messages in self.seen:
            if isinstance(messages, str):
                parts.append(messages)
            else:
                parts += [str(m.get("content", "")) for m in messages]
        return "\n".join(parts)


def crm_script() -> list[str]:
    return [
        react("lookup_contact", {"name": "Ann"}),
        react("delete_contact", {"contact_id": 7}),
        react("send_email", {"to": "ann@example.com", "body": "hi"}),
        react("flaky_export", {"rows": 5}),
        "Thought: I am done\nFinal Answer: tidied",
    ]
