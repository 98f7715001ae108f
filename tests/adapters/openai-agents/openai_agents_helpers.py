"""A scripted ``Model`` for real ``Runner`` runs with no network, and a policy for the tests.

The model's second turn repeats the tool's output back as its final answer, so a test can
assert on exactly what the model was told (the refusal text, the tool's result).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from agents import ModelResponse, Usage
from agents.models.interface import Model
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

POLICY = """\
version: "1"
defaults: {risk_level: medium, approval: approve}
rules:
  - name: reads
    match: {type: "read*"}
    risk_level: low
    approval: auto
  - name: crm_writes_need_a_human
    match: {type: "write", target: "crm"}
    risk_level: high
    approval: approve
  - name: no_deletes
    match: {type: "delete*"}
    risk_level: critical
    approval: block
  - name: lookups
    match: {type: "lookup*"}
    risk_level: low
    approval: auto
"""

Turn = Callable[[list[Any]], list[Any]]


def call_tool(name: str, arguments: dict[str, Any], call_id: str = "call_1") -> Turn:
    def turn(_items: list[Any]) -> list[Any]:
        return [
            ResponseFunctionToolCall(
                type="function_call",
                id=f"fc_{call_id}",
                call_id=call_id,
                name=name,
                arguments=json.dumps(arguments),
                status="completed",
            )
        ]

    return turn


def tool_outputs(items: list[Any]) -> list[str]:
    """Every function_call_output the model has been shown, in order."""
    found = []
    for item in items:
        data = item if isinstance(item, dict) else item.model_dump()
        if data.get("type") == "function_call_output":
            out = data.get("output")
            found.append(out if isinstance(out, str) else json.dumps(out))
    return found


def say(text: str) -> list[Any]:
    return [
        ResponseOutputMessage(
            type="message",
            id="msg_1",
            role="assistant",
            status="completed",
            content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
        )
    ]


def echo_last_tool_output(items: list[Any]) -> list[Any]:
    outputs = tool_outputs(items)
    return say(outputs[-1] if outputs else "(no tool output)")


class ScriptedModel(Model):
    """Plays its turns in order; records the tools it was offered and the inputs it saw."""

    def __init__(self, *turns: Turn) -> None:
        self.turns = list(turns)
        self.offered: list[list[Any]] = []
        self.inputs: list[list[Any]] = []

    async def get_response(
        self,
        system_instructions: str | None,
        input: Any,
        model_settings: Any,
        tools: list[Any],
        output_schema: Any,
        handoffs: list[Any],
        tracing: Any,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: Any,
        **_: Any,
    ) -> ModelResponse:
        items = [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
        self.inputs.append(items)
        self.offered.append(list(tools))
        turn = self.turns.pop(0)
        return ModelResponse(output=turn(items), usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("the tests run without streaming")
