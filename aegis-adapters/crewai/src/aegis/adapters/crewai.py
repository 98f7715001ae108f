"""CrewAI tools under Aegis: each call is an ``Action`` decided, maybe approved, and audited.

* ``AegisCrewAITool(runtime=..., name=..., description=..., action_type=..., action_target=...,
  fn=...)`` is a real CrewAI ``BaseTool``. A call with arguments ``args`` becomes
  ``Action(action_type, action_target, params=args)``; ``fn(**params)`` runs inside the
  pipeline (without ``fn``, the runtime's own executor runs the action).
* ``AegisCrewAITool.wrap(runtime, tool, ...)`` / ``govern_tools(runtime, tools, target=...)``
  put existing CrewAI tools behind Aegis: a call to ``t`` becomes ``Action(t.name, target,
  params=args)`` and ``t.run(**params)`` runs inside the pipeline.
* ``CrewAIExecutor(tools=[...])`` is an executor: it runs the CrewAI tool whose name is the
  action's ``type`` with the action's ``params`` (like ``LangChainExecutor``).
* ``AegisToolHook(runtime, target=...)`` governs every tool call of every crew in the process
  through CrewAI's global tool-call hooks (``crewai.hooks``), for tools you cannot replace.

The tool runs with the params of the action the runtime hands over (a human's edits
included). A call that is blocked, denied or fails returns ``Result.explain()`` to the agent
as the tool's output, so the model reads why and the crew goes on. Governed tools are never
cached by CrewAI: a cached answer would let a repeated call skip the policy and the audit.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from crewai.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field, create_model

from aegis.adapters.base import BaseExecutor, CallableExecutor, ToolboxExecutor, call_sync
from aegis.core.action import Action
from aegis.core.result import Result, ResultStatus

try:  # newer CrewAI: a tool declares failure by returning a ToolFailure
    from crewai.tools import ToolFailure
except ImportError:  # older CrewAI: a tool fails only by raising
    ToolFailure = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from aegis.runtime.engine import Runtime

__all__ = ["AegisCrewAITool", "AegisToolHook", "CrewAIExecutor", "govern_tools"]


class CrewAIExecutor(ToolboxExecutor):
    """Runs allowed actions with CrewAI tools, chosen by name (``action.type``)."""

    framework = "CrewAI"

    async def run_tool(self, tool: BaseTool, action: Action) -> Result:
        run = CallableExecutor(lambda a: _checked(a, tool.run(**a.params)), blocking=True)
        return await run.execute(action)


def _never_cache(_args: Any = None, _result: Any = None) -> bool:
    return False


def _checked(action: Action, value: Any) -> Any:
    """What a tool returned, as the action's outcome: a ``ToolFailure`` (the tool's own report,
    or a spent usage limit, when it did not run) is FAILED, not a success."""
    if ToolFailure is not None and isinstance(value, ToolFailure):
        return Result(action, ResultStatus.FAILED, data=value, error=value.message)
    return value


def _output(result: Result) -> Any:
    if result.ok:
        return result.data
    if ToolFailure is not None and isinstance(result.data, ToolFailure):
        return result.data  # CrewAI's own failure handling applies, as without Aegis
    return result.explain()


class AegisCrewAITool(BaseTool):
    """A CrewAI tool whose every call goes through the runtime (and ``fn`` only from there)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    runtime: Any = Field(exclude=True)
    action_type: str
    action_target: str
    fn: Callable[..., Any] | None = Field(default=None, exclude=True)
    wrapped: BaseTool | None = Field(default=None, exclude=True)
    agent_id: str | None = None
    session_id: str | None = None
    cache_function: Callable[..., bool] = Field(default=_never_cache, exclude=True)

    def __init__(self, **data: Any) -> None:
        if data.get("args_schema") is None:
            data["args_schema"] = _schema_for(data)
        super().__init__(**data)
        # A caller cannot switch caching back on: every call must reach the runtime.
        object.__setattr__(self, "cache_function", _never_cache)

    @classmethod
    def wrap(
        cls,
        runtime: Runtime,
        tool: BaseTool,
        *,
        action_type: str | None = None,
        action_target: str = "crewai",
        agent_id: str | None = None,
        session_id: str | None = None,
    ) -> AegisCrewAITool:
        """An existing tool behind Aegis: same name, description and schema.

        Give the agent the wrapper, never ``tool`` itself, or the model could call it around
        Aegis.
        """
        if isinstance(tool, AegisCrewAITool):
            return tool
        return cls(
            runtime=runtime,
            name=tool.name,
            description=tool.description,
            args_schema=tool.args_schema,
            action_type=action_type or tool.name,
            action_target=action_target,
            wrapped=tool,
            agent_id=agent_id,
            session_id=session_id,
            result_as_answer=tool.result_as_answer,
        )

    def _action(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Action:
        if args:
            if self.fn is None:
                raise TypeError(f"tool {self.name!r} takes keyword arguments only")
            kwargs = dict(inspect.signature(self.fn).bind(*args, **kwargs).arguments)
        return Action(
            self.action_type,
            self.action_target,
            params=kwargs,
            agent_id=self.agent_id,
            session_id=self.session_id,
        )

    def _executor(self) -> BaseExecutor | None:
        fn, wrapped = self.fn, self.wrapped
        if fn is not None:
            return CallableExecutor(lambda a: _checked(a, fn(**a.params)), blocking=True)
        if wrapped is not None:
            return CallableExecutor(lambda a: _checked(a, wrapped.run(**a.params)), blocking=True)
        return None  # the runtime's own executor

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        runtime: Runtime = self.runtime
        action, executor = self._action(args, kwargs), self._executor()
        return _output(call_sync(lambda: runtime.run_one(action, executor=executor)))

    async def _arun(self, *args: Any, **kwargs: Any) -> Any:
        runtime: Runtime = self.runtime
        result = await runtime.run_one(self._action(args, kwargs), executor=self._executor())
        return _output(result)


def govern_tools(
    runtime: Runtime,
    tools: Sequence[BaseTool],
    *,
    target: str = "crewai",
    agent_id: str | None = None,
    session_id: str | None = None,
) -> list[BaseTool]:
    """Every tool of an agent behind Aegis at once: ``Agent(..., tools=govern_tools(rt, ts))``."""
    return [
        AegisCrewAITool.wrap(
            runtime, t, action_target=target, agent_id=agent_id, session_id=session_id
        )
        for t in tools
    ]


def _schema_for(data: dict[str, Any]) -> type[BaseModel]:
    """The model's view of the arguments: ``fn``'s signature, else the wrapped tool's."""
    fn = data.get("fn")
    name = f"{str(data.get('name') or 'tool').title().replace(' ', '')}Args"
    if fn is None:
        return create_model(name)
    fields: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = Any if param.annotation is param.empty else param.annotation
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (annotation, default)
    return create_model(name, **fields)


class AegisToolHook:
    """Governs every CrewAI tool call in the process with CrewAI's global tool-call hooks.

    The before-call hook runs the call through the runtime, with the tool itself as the
    executor, then tells CrewAI not to run it again (returning ``False``); the after-call hook
    hands the agent the tool's output, or ``Result.explain()``. So the tool runs once, inside
    the pipeline, and a hook failure leaves CrewAI's "blocked by hook" answer: fail closed.
    Tools that are already ``AegisCrewAITool`` are left to govern themselves. The action is
    ``Action(tool_name, target, params=tool_input)``, ``tool_name`` being the name CrewAI
    shows the LLM ("delete_contact"), or the tool's own ("Delete Contact", as ``govern_tools``
    names it) when the policy is stricter for that one; the agent's role is the agent id and
    the crew's id the session id (the runtime's own ids win). Limits: CrewAI ignores
    ``result_as_answer`` for a call a hook blocked.

    ``with AegisToolHook(runtime): crew.kickoff()`` or ``register()`` / ``unregister()``.
    """

    def __init__(self, runtime: Runtime, *, target: str = "crewai") -> None:
        self.runtime = runtime
        self.target = target
        self._lock = threading.Lock()
        self._outcomes: dict[int, tuple[dict[str, Any], Any]] = {}

    def register(self) -> None:
        from crewai.hooks import register_after_tool_call_hook, register_before_tool_call_hook

        register_before_tool_call_hook(self.before)
        register_after_tool_call_hook(self.after)

    def unregister(self) -> None:
        from crewai.hooks import unregister_after_tool_call_hook, unregister_before_tool_call_hook

        unregister_before_tool_call_hook(self.before)
        unregister_after_tool_call_hook(self.after)

    def __enter__(self) -> AegisToolHook:
        self.register()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.unregister()

    def before(self, context: Any) -> bool | None:
        # CrewAI runs the tool anyway when a hook raises (its hooks fail open): nothing may
        # escape from here. Any error is an answer that the call was not run.
        try:
            tool = context.tool
            if isinstance(tool, AegisCrewAITool) or isinstance(
                getattr(tool, "_original_tool", None), AegisCrewAITool
            ):
                return None
            output = self._govern(context, tool)
        except Exception as exc:
            output = (
                f"Aegis could not govern this call, so it was not run: {type(exc).__name__}: {exc}"
            )
        with self._lock:  # keyed by the input dict, which CrewAI hands to both hooks
            self._outcomes[id(context.tool_input)] = (context.tool_input, output)
        return False

    def _govern(self, context: Any, tool: Any) -> Any:
        agent, crew = context.agent, context.crew
        # CrewAI hands hooks the name it sanitized for the LLM ("Delete Contact" becomes
        # "delete_contact"), which this hook has always named actions by (rules and the limits'
        # history keyed on it hold as before); a rule for the tool's own name, as a wrapped
        # tool is named, must hold too. So the action takes the name whose decision is the
        # stricter, the sanitized one when they decide alike.
        own = getattr(tool, "name", None)
        names = [n for n in (context.tool_name, own) if isinstance(n, str) and n]
        actions = [
            Action(
                name,
                self.target,
                params=dict(context.tool_input or {}),
                agent_id=getattr(agent, "role", None),
                session_id=str(crew.id) if getattr(crew, "id", None) is not None else None,
            )
            for name in dict.fromkeys(names)
        ]
        executor = CallableExecutor(
            lambda a: _checked(a, _invoke(tool, dict(a.params))), blocking=True
        )

        async def run() -> Result:
            action = actions[0]
            if len(actions) > 1:
                await self.runtime.open()  # so a stateful rule reads its history, not unknown
                action = self.runtime.strictest(actions)[0]
            return await self.runtime.run_one(action, executor=executor)

        return _output(call_sync(run))

    def after(self, context: Any) -> str | None:
        with self._lock:
            kept = self._outcomes.pop(id(context.tool_input), None)
        if kept is None or kept[0] is not context.tool_input:
            return None
        output = kept[1]
        return output if isinstance(output, str) else str(output)


def _invoke(tool: Any, params: dict[str, Any]) -> Any:
    if isinstance(tool, BaseTool):
        return tool.run(**params)
    return tool.invoke(params)  # a CrewStructuredTool
