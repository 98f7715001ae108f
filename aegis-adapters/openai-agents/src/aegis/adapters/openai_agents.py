"""OpenAI Agents SDK tools governed by Aegis.

Two ways in, both keyed on the tool call the model makes:

* ``@governed_tool(runtime=..., action_type=..., action_target=...)`` turns a function into a
  real SDK ``FunctionTool`` (name, docstring and strict JSON schema taken from the function, as
  ``@function_tool`` does). Each call becomes ``Action(action_type, action_target,
  params=<the call's JSON arguments>)`` and the function runs *as the runtime's execute stage*:
  only when allowed, with the arguments the runtime hands over (a human's edits included),
  validated by the tool's own schema, and its outcome audited. The raw function is not kept on
  the tool, so the SDK has no way to call it around Aegis.
* ``aegis_guardrail(runtime, action_target=...)`` is a tool input guardrail for tools you
  already have; ``govern_tools(tools, runtime=..., action_target=...)`` attaches it to each.
  The action's type is the tool's name. The guardrail decides (policy, approval, audit) and
  then lets the SDK run the tool itself, so the audit record says "released to the SDK", not
  the tool's outcome: use ``governed_tool`` where the outcome must be in the trail too.

A call that is blocked, denied or fails does not raise inside the run: the model gets
``Result.explain()`` (outcome and reason) as the tool's output and the run goes on.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

from agents import FunctionTool, Tool
from agents.function_schema import DocstringStyle, function_schema
from agents.tool_context import ToolContext
from agents.tool_guardrails import (
    ToolGuardrailFunctionOutput,
    ToolInputGuardrail,
    ToolInputGuardrailData,
)

from aegis.adapters.base import BaseExecutor, CallableExecutor
from aegis.core.action import Action
from aegis.core.frozen import FrozenDict, freeze_params, thaw
from aegis.core.result import Result, ResultStatus
from aegis.errors import ActionError
from aegis.runtime.engine import Runtime

__all__ = ["aegis_guardrail", "govern_tools", "governed_tool"]

F = TypeVar("F", bound=Callable[..., Any])


def _arguments(raw: str) -> tuple[FrozenDict, str | None]:
    """The model's JSON arguments as params, or (raw text kept for the audit, the problem).

    Arguments that cannot be params (not JSON, not an object, nested past the core's limit)
    still make an action, so the attempt is decided and recorded; it fails without running.
    """
    try:
        parsed = json.loads(raw) if raw and raw.strip() else {}
    except (ValueError, RecursionError) as exc:
        return freeze_params({"arguments": raw}), f"tool arguments are not valid JSON: {exc}"
    if not isinstance(parsed, dict):
        return freeze_params({"arguments": raw}), "tool arguments are not a JSON object"
    try:
        return freeze_params(parsed), None
    except ActionError as exc:
        return freeze_params({"arguments": raw}), f"tool arguments cannot be params: {exc}"


def _agent_name(agent: Any) -> str | None:
    name = getattr(agent, "name", None)
    return name if isinstance(name, str) and name else None


@overload
def governed_tool(
    func: F,
    *,
    runtime: Runtime,
    action_type: str,
    action_target: str,
    name_override: str | None = ...,
    description_override: str | None = ...,
    docstring_style: DocstringStyle | None = ...,
    strict_mode: bool = ...,
    tool_input_guardrails: list[ToolInputGuardrail[Any]] | None = ...,
    agent_id: str | None = ...,
    session_id: str | None = ...,
) -> FunctionTool: ...


@overload
def governed_tool(
    func: None = ...,
    *,
    runtime: Runtime,
    action_type: str,
    action_target: str,
    name_override: str | None = ...,
    description_override: str | None = ...,
    docstring_style: DocstringStyle | None = ...,
    strict_mode: bool = ...,
    tool_input_guardrails: list[ToolInputGuardrail[Any]] | None = ...,
    agent_id: str | None = ...,
    session_id: str | None = ...,
) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def governed_tool(
    func: Callable[..., Any] | None = None,
    *,
    runtime: Runtime,
    action_type: str,
    action_target: str,
    name_override: str | None = None,
    description_override: str | None = None,
    docstring_style: DocstringStyle | None = None,
    strict_mode: bool = True,
    tool_input_guardrails: list[ToolInputGuardrail[Any]] | None = None,
    agent_id: str | None = None,
    session_id: str | None = None,
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """A ``FunctionTool`` whose every call goes through ``runtime`` before the function runs.

    ``agent_id`` defaults to the SDK agent's name, ``session_id`` to none (the runtime's).
    Identity fixed on the Runtime (``agent_id=``, ``session_id=``) wins over both, as for any
    action.
    """
    if not isinstance(runtime, Runtime):
        raise TypeError(f"governed_tool needs an aegis Runtime, got {type(runtime).__name__}")
    Action(action_type, action_target)  # reject an empty type/target now, not at the first call

    def build(fn: Callable[..., Any]) -> FunctionTool:
        schema = function_schema(
            fn,
            docstring_style=docstring_style,
            name_override=name_override,
            description_override=description_override,
            strict_json_schema=strict_mode,
        )
        is_async = inspect.iscoroutinefunction(fn)

        async def on_invoke_tool(ctx: ToolContext[Any], raw: str) -> Any:
            params, problem = _arguments(raw)

            async def call(decided: Action) -> Any:
                """Runs the function on the params the runtime hands over (edits included)."""
                if problem:
                    raise ValueError(problem)
                model = schema.params_pydantic_model.model_validate(thaw(decided.params))
                args, kwargs = schema.to_call_args(model)
                if schema.takes_context:
                    args = [ctx, *args]
                if is_async:
                    return await fn(*args, **kwargs)
                return await asyncio.to_thread(fn, *args, **kwargs)

            action = Action(
                action_type,
                action_target,
                params=params,
                agent_id=agent_id or _agent_name(ctx.agent),
                session_id=session_id,
                metadata={"tool": schema.name, "tool_call_id": ctx.tool_call_id},
            )
            result = await runtime.run_one(action, executor=CallableExecutor(call))
            return result.data if result.ok else result.explain()

        return FunctionTool(
            name=schema.name,
            description=schema.description or "",
            params_json_schema=schema.params_json_schema,
            on_invoke_tool=on_invoke_tool,
            strict_json_schema=strict_mode,
            tool_input_guardrails=tool_input_guardrails,
        )

    return build(func) if func is not None else build


class _Release(BaseExecutor):
    """The guardrail's execute stage: hands the call back to the SDK, unchanged or not at all.

    A guardrail can only allow or reject the arguments the model sent; if the runtime hands
    over different ones (a human edited them) it fails rather than run the unedited call.
    """

    def __init__(self, sent: FrozenDict, problem: str | None) -> None:
        self._sent = sent
        self._problem = problem

    async def execute(self, action: Action) -> Result:
        if self._problem:
            raise ValueError(self._problem)
        if action.params != self._sent:
            raise ValueError(
                "the approved arguments differ from the model's and a guardrail cannot change "
                "them; use governed_tool for tools whose arguments may be edited"
            )
        return Result(
            action,
            ResultStatus.SUCCESS,
            data={"released_to": "openai-agents"},
            reason="released to the OpenAI Agents SDK, which runs the tool itself",
        )


def aegis_guardrail(
    runtime: Runtime,
    *,
    action_target: str,
    action_type: str | None = None,
    agent_id: str | None = None,
    session_id: str | None = None,
) -> ToolInputGuardrail[Any]:
    """A tool input guardrail: the call runs only if ``runtime`` allows it; else the model is told.

    The action is ``Action(action_type or <tool name>, action_target, params=<JSON arguments>)``.
    """
    if not isinstance(runtime, Runtime):
        raise TypeError(f"aegis_guardrail needs an aegis Runtime, got {type(runtime).__name__}")

    async def aegis_policy(data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
        ctx = data.context
        params, problem = _arguments(ctx.tool_arguments)
        action = Action(
            action_type or ctx.tool_name,
            action_target,
            params=params,
            agent_id=agent_id or _agent_name(data.agent),
            session_id=session_id,
            metadata={"tool": ctx.tool_name, "tool_call_id": ctx.tool_call_id},
        )
        result = await runtime.run_one(action, executor=_Release(params, problem))
        info = {"status": result.status.value, "audit_id": result.audit_id}
        if result.ok:
            return ToolGuardrailFunctionOutput.allow(output_info=info)
        return ToolGuardrailFunctionOutput.reject_content(result.explain(), output_info=info)

    return ToolInputGuardrail(guardrail_function=aegis_policy, name="aegis")


def govern_tools(
    tools: Iterable[Tool],
    *,
    runtime: Runtime,
    action_target: str,
    agent_id: str | None = None,
    session_id: str | None = None,
) -> list[Tool]:
    """Attach one Aegis guardrail to every function tool, in place, and return the tools.

    In place, so no ungoverned copy of a tool is left for an agent to be given. The guardrail
    goes last: when it allows a call, no later guardrail can stop a call Aegis recorded as
    released. A tool that is not a ``FunctionTool`` (hosted tools) cannot carry a guardrail,
    so it is refused rather than left ungoverned.
    """
    guard = aegis_guardrail(
        runtime, action_target=action_target, agent_id=agent_id, session_id=session_id
    )
    governed: list[Tool] = []
    for tool in tools:
        if not isinstance(tool, FunctionTool):
            raise TypeError(
                f"cannot govern {type(tool).__name__} {getattr(tool, 'name', '')!r}: only "
                "FunctionTools run tool input guardrails"
            )
        tool.tool_input_guardrails = [*(tool.tool_input_guardrails or []), guard]
        governed.append(tool)
    return governed
