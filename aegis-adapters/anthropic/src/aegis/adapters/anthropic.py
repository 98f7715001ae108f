"""Anthropic Messages API tool use, governed by Aegis.

Claude asks for tools with ``tool_use`` blocks; the application runs them and answers with
``tool_result`` blocks. Aegis sits in between:

* ``govern_tool_call(runtime, tool_name, tool_input, target)`` makes
  ``Action(tool_name, target, params=tool_input)`` and takes it through the runtime. The tool
  runs as the execute stage: the runtime's own executor, or ``tool=`` (a function called with
  the params the runtime hands over, a human's edits included). It returns the audited
  ``Result``; it never raises for a blocked, denied or failed call.
* ``govern_tool_use(runtime, block, target)`` does the same for a ``ToolUseBlock`` and keeps
  its id on the action, so ``tool_results_to_api_format(results)`` can answer each block.
* ``tool_results_to_api_format(results)`` gives the ``tool_result`` blocks for the next user
  message: the tool's output when it succeeded; otherwise ``Result.explain()`` (what happened
  and why) with ``is_error: true``, so Claude is told plainly that nothing ran.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from anthropic.types import ToolResultBlockParam, ToolUseBlock

from aegis.adapters.base import BaseExecutor, CallableExecutor
from aegis.core.action import Action
from aegis.core.frozen import freeze_params, thaw
from aegis.core.result import Result
from aegis.errors import ActionError
from aegis.runtime.engine import Runtime

__all__ = ["govern_tool_call", "govern_tool_use", "tool_results_to_api_format"]

TOOL_USE_ID = "tool_use_id"  # the Action.metadata key that links a result to its block


class _Refuse(BaseExecutor):
    """Stands in for the runtime's executor when the input cannot be a call at all."""

    def __init__(self, problem: str) -> None:
        self._problem = problem

    async def execute(self, action: Action) -> Result:
        raise TypeError(self._problem)


def _excerpt(value: object, limit: int = 2000) -> str | list[Any]:
    """What the audit keeps of an input that cannot be params: a list as is, else its text."""
    if isinstance(value, list) and all(isinstance(v, str | int | float | bool) for v in value):
        return value
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _calling(tool: Callable[..., Any]) -> Callable[[Action], Any]:
    """``tool(**params)`` with the params the runtime hands over, as plain JSON shapes (dicts,
    lists) like the ``tool_use`` input; a sync tool runs on a worker thread."""
    if inspect.iscoroutinefunction(tool):
        return lambda action: tool(**thaw(action.params))

    async def in_thread(action: Action) -> Any:
        value = await asyncio.to_thread(tool, **thaw(action.params))
        return await value if inspect.isawaitable(value) else value

    return in_thread


async def govern_tool_call(
    runtime: Runtime,
    tool_name: str,
    tool_input: Mapping[str, Any],
    target: str,
    *,
    tool: Callable[..., Any] | None = None,
    tool_use_id: str | None = None,
    agent_id: str | None = None,
    session_id: str | None = None,
    description: str = "",
) -> Result:
    """Take one tool call through ``runtime``; the tool runs only if the runtime allows it.

    An input that is not a JSON object (Claude's tool inputs always are) is still recorded,
    under ``params={"tool_input": ...}``, and fails without running anything.
    """
    if not isinstance(runtime, Runtime):
        raise TypeError(f"govern_tool_call needs an aegis Runtime, got {type(runtime).__name__}")
    problem = None
    params: Mapping[str, Any]
    if not isinstance(tool_input, Mapping):
        params = {"tool_input": _excerpt(tool_input)}
        problem = f"tool input must be a JSON object, got {type(tool_input).__name__}"
    else:
        try:
            params = freeze_params(tool_input)
        except ActionError as exc:
            params = {"tool_input": _excerpt(tool_input)}
            problem = f"tool input cannot be params: {exc}"
    action = Action(
        tool_name,
        target,
        params=params,
        description=description,
        agent_id=agent_id,
        session_id=session_id,
        metadata={TOOL_USE_ID: tool_use_id} if tool_use_id else {},
    )
    executor: BaseExecutor | None = None
    if problem:
        executor = _Refuse(problem)
    elif tool is not None:
        executor = CallableExecutor(_calling(tool))
    return await runtime.run_one(action, executor=executor)


async def govern_tool_use(
    runtime: Runtime,
    block: ToolUseBlock,
    target: str,
    *,
    tool: Callable[..., Any] | None = None,
    agent_id: str | None = None,
    session_id: str | None = None,
) -> Result:
    """``govern_tool_call`` for one ``tool_use`` block, remembering the block's id."""
    return await govern_tool_call(
        runtime,
        block.name,
        block.input,
        target,
        tool=tool,
        tool_use_id=block.id,
        agent_id=agent_id,
        session_id=session_id,
    )


def _content(result: Result) -> str:
    if not result.ok:
        return result.explain()
    data = result.data
    if data is None:
        return result.explain()
    if isinstance(data, str):
        return data
    try:
        return json.dumps(data, default=str)
    except (TypeError, ValueError):
        return str(data)


def tool_results_to_api_format(
    results: Iterable[Result | tuple[str, Result]],
) -> list[ToolResultBlockParam]:
    """``tool_result`` blocks, one per result, in order (``is_error`` unless it succeeded).

    Each item is a ``Result`` from ``govern_tool_use`` (or ``govern_tool_call(...,
    tool_use_id=...)``), or a ``(tool_use_id, result)`` pair. A result with no id is a
    ValueError: the API would reject the message, and guessing an id could answer the wrong
    block.
    """
    blocks: list[ToolResultBlockParam] = []
    for item in results:
        tool_use_id: object
        if isinstance(item, tuple):
            tool_use_id, result = item
        else:
            result = item
            tool_use_id = result.action.metadata.get(TOOL_USE_ID)
        if not isinstance(result, Result):
            raise TypeError(f"expected an aegis Result, got {type(result).__name__}")
        if not isinstance(tool_use_id, str) or not tool_use_id:
            raise ValueError(
                f"no tool_use_id for the result of {result.action}: use govern_tool_use, pass "
                "tool_use_id= to govern_tool_call, or give (tool_use_id, result) pairs"
            )
        blocks.append(
            {
                "type": "tool_result",
                "tool_use_id": tool_use_id,
                "content": _content(result),
                "is_error": not result.ok,
            }
        )
    return blocks
