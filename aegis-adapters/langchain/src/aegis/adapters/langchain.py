"""LangChain tools under Aegis: every call is an ``Action`` decided, maybe approved, and audited.

Four ways in, one mapping each:

* ``LangChainExecutor(tools=[...])`` is an executor: it runs the tool whose *name* is the
  action's ``type``, with the action's ``params`` as the tool input.
* ``AegisTool.from_runtime(runtime, name, description, action_type, action_target)`` is a
  LangChain tool the model can call; a call with arguments ``args`` becomes
  ``Action(action_type, action_target, params=args)`` run by the runtime's own executor.
* ``govern_tools(runtime, tools, target=...)`` wraps existing tools: a call to tool ``t``
  becomes ``Action(t.name, target, params=args)`` and ``t`` runs inside the pipeline.
* ``AegisMiddleware(runtime, target=...)`` for ``langchain.agents.create_agent``: every tool
  call of the agent becomes ``Action(tool_name, target, params=args)`` and the agent's own tool
  node runs it only once Aegis allowed it.

Governed tools and the middleware run the tool with the action the runtime hands over (a
human's edits included), never with the arguments first proposed. When the action does not
succeed the model gets a tool message with ``status="error"`` and ``Result.explain()`` as its
content (blocked, denied or failed, and why), and the agent goes on; nothing is raised into
the agent loop.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, ToolException
from pydantic import ConfigDict

from aegis.adapters.base import BaseExecutor, CallableExecutor, ToolboxExecutor, call_sync
from aegis.core.action import Action
from aegis.core.result import Result, ResultStatus

if TYPE_CHECKING:
    from aegis.runtime.engine import Runtime

__all__ = [  # noqa: F822 (AegisMiddleware is built on first access, see __getattr__)
    "AegisMiddleware",
    "AegisTool",
    "GovernedTool",
    "LangChainExecutor",
    "govern_tools",
]

#: The input schema of an ``AegisTool`` given none: an object with any keys.
ANY_ARGS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": True}


class LangChainExecutor(ToolboxExecutor):
    """Runs allowed actions with LangChain tools, chosen by name (``action.type``)."""

    framework = "LangChain"

    async def run_tool(self, tool: BaseTool, action: Action) -> Result:
        data = await _raising(tool).ainvoke(dict(action.params))
        return Result(action, ResultStatus.SUCCESS, data=data)


def _raising(tool: BaseTool) -> BaseTool:
    """``tool`` with its own error handling off, for running it as an action's execute stage.

    A tool with ``handle_tool_error`` / ``handle_validation_error`` answers its failure as
    text, which would be recorded as a success; here it raises, so the action is FAILED (and a
    governed tool still tells the model why).
    """
    if not (tool.handle_tool_error or tool.handle_validation_error):
        return tool
    return tool.model_copy(update={"handle_tool_error": False, "handle_validation_error": False})


def _tool_output(result: Result) -> Any:
    """What a governed tool returns: the output, or a ToolException the model reads."""
    if result.ok:
        return result.data
    raise ToolException(result.explain())


class _Governed(BaseTool):
    """Shared by AegisTool and GovernedTool: run the call as an action, refuse in words."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    runtime: Any
    agent_id: str | None = None
    session_id: str | None = None
    # A refusal reaches the model as the tool message (status "error"), not as an exception.
    handle_tool_error: bool = True

    def _action(self, kwargs: dict[str, Any]) -> Action:
        raise NotImplementedError

    def _executor(self) -> BaseExecutor | None:
        return None

    async def _arun(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("run_manager", None)
        _no_positional(self.name, args)
        runtime: Runtime = self.runtime
        result = await runtime.run_one(self._action(kwargs), executor=self._executor())
        return _tool_output(result)

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("run_manager", None)
        _no_positional(self.name, args)
        runtime: Runtime = self.runtime
        action = self._action(kwargs)
        result = call_sync(lambda: runtime.run_one(action, executor=self._executor()))
        return _tool_output(result)


class AegisTool(_Governed):
    """A LangChain tool whose calls are actions run by the runtime's own executor."""

    action_type: str
    action_target: str

    @classmethod
    def from_runtime(
        cls,
        runtime: Runtime,
        name: str,
        description: str,
        action_type: str,
        action_target: str,
        *,
        args_schema: Any = None,
        agent_id: str | None = None,
        session_id: str | None = None,
    ) -> AegisTool:
        """``args_schema``: a pydantic model or JSON Schema for the model; default any object."""
        return cls(
            runtime=runtime,
            name=name,
            description=description,
            action_type=action_type,
            action_target=action_target,
            args_schema=args_schema if args_schema is not None else dict(ANY_ARGS),
            agent_id=agent_id,
            session_id=session_id,
        )

    def _action(self, kwargs: dict[str, Any]) -> Action:
        return Action(
            self.action_type,
            self.action_target,
            params=kwargs,
            agent_id=self.agent_id,
            session_id=self.session_id,
        )


class GovernedTool(_Governed):
    """An existing tool behind Aegis: same name, description and schema; runs in the pipeline.

    The wrapped tool is kept private: hand the agent this tool, never the original, or the
    model could call the original around Aegis.
    """

    wrapped: BaseTool
    action_target: str

    def _action(self, kwargs: dict[str, Any]) -> Action:
        return Action(
            self.name,
            self.action_target,
            params=kwargs,
            agent_id=self.agent_id,
            session_id=self.session_id,
        )

    def _executor(self) -> BaseExecutor:
        wrapped = _raising(self.wrapped)
        return CallableExecutor(lambda action: wrapped.ainvoke(dict(action.params)))


def govern_tools(
    runtime: Runtime,
    tools: Sequence[BaseTool],
    *,
    target: str = "langchain",
    agent_id: str | None = None,
    session_id: str | None = None,
) -> list[BaseTool]:
    """Every tool of an agent behind Aegis at once: ``create_agent(model, govern_tools(rt, ts))``.

    A call to tool ``t`` becomes ``Action(t.name, target, params=<arguments>)``. Tools that are
    already governed are returned as they are (never governed twice).
    """
    governed: list[BaseTool] = []
    for tool in tools:
        if isinstance(tool, _Governed):
            governed.append(tool)
            continue
        governed.append(
            GovernedTool(
                runtime=runtime,
                wrapped=tool,
                name=tool.name,
                description=tool.description,
                args_schema=tool.args_schema,
                return_direct=tool.return_direct,
                action_target=target,
                agent_id=agent_id,
                session_id=session_id,
            )
        )
    return governed


def _no_positional(name: str, args: tuple[Any, ...]) -> None:
    if args:
        raise ToolException(f"tool {name!r} takes keyword arguments only")


# -- langchain v1 agent middleware ------------------------------------------------------------
# Built on first use: `langchain.agents` pulls in langgraph (seconds of import time), which
# every `aegis` command would otherwise pay as soon as the plugin's entry point loads.


def __getattr__(name: str) -> Any:
    if name == "AegisMiddleware":
        cls = _middleware_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _middleware_class() -> type:
    try:
        from langchain.agents.middleware import AgentMiddleware
    except ImportError as exc:
        raise ImportError(
            "AegisMiddleware needs langchain: pip install 'agent-aegis-langchain[agents]'"
        ) from exc

    class AegisMiddleware(AgentMiddleware):
        """Governs every tool call of an agent: ``middleware=[AegisMiddleware(runtime)]``.

        Sits where LangChain users put ``HumanInTheLoopMiddleware``: the call is decided (and
        sent for approval) by Aegis, and the agent's tool node runs the tool only inside the
        runtime's pipeline, with the approved arguments. The session id is the LangGraph
        ``thread_id`` when the run has one (unless ``session_id`` is given); the runtime's own
        ids win over both.
        """

        def __init__(
            self,
            runtime: Runtime,
            *,
            target: str = "langchain",
            agent_id: str | None = None,
            session_id: str | None = None,
        ) -> None:
            super().__init__()
            self.runtime = runtime
            self.target = target
            self.agent_id = agent_id
            self.session_id = session_id

        def _action(self, request: Any) -> Action:
            call = request.tool_call
            config = getattr(getattr(request, "runtime", None), "config", None) or {}
            thread = (config.get("configurable") or {}).get("thread_id")
            return Action(
                call["name"],
                self.target,
                params=call.get("args") or {},
                agent_id=self.agent_id,
                session_id=self.session_id or (str(thread) if thread is not None else None),
            )

        async def awrap_tool_call(
            self, request: Any, handler: Callable[[Any], Awaitable[Any]]
        ) -> Any:
            def run(action: Action) -> Awaitable[Any]:
                return _checked(handler(_with_args(request, action)))

            action = self._action(request)
            result = await self.runtime.run_one(action, executor=CallableExecutor(run))
            return _message(request, result)

        def wrap_tool_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
            def run(action: Action) -> Any:
                return _failed_if_error(handler(_with_args(request, action)))

            action = self._action(request)
            executor = CallableExecutor(run, blocking=True)
            result = call_sync(lambda: self.runtime.run_one(action, executor=executor))
            return _message(request, result)

    AegisMiddleware.__module__ = __name__
    AegisMiddleware.__qualname__ = "AegisMiddleware"
    return AegisMiddleware


def _with_args(request: Any, action: Action) -> Any:
    return request.override(tool_call={**request.tool_call, "args": dict(action.params)})


async def _checked(pending: Awaitable[Any]) -> Any:
    return _failed_if_error(await pending)


def _failed_if_error(output: Any) -> Any:
    """A tool node that caught the tool's exception answers an error message: that is FAILED."""
    if isinstance(output, ToolMessage) and output.status == "error":
        raise ToolException(_text(output.content))
    return output


def _message(request: Any, result: Result) -> Any:
    if result.ok:
        return result.data
    call = request.tool_call
    return ToolMessage(
        content=result.explain(),
        tool_call_id=call.get("id") or "",
        name=call["name"],
        status="error",
    )


def _text(content: Any) -> str:
    return content if isinstance(content, str) else json.dumps(content, default=str)
