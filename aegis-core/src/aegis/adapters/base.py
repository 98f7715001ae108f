"""The executor contract: the one piece a user must write (or install) to let actions run."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from aegis.core.action import Action
from aegis.core.result import Result, ResultStatus

T = TypeVar("T")


class BaseExecutor:
    """Carries out allowed actions. Subclass and implement ``execute``.

    The runtime treats any exception from ``execute`` as a failed action (audited, retried if a
    retry policy allows), and a ``verify`` that returns anything but ``True`` (or raises) as a
    failed verification.
    """

    async def execute(self, action: Action) -> Result:
        raise NotImplementedError(f"{type(self).__name__} must implement execute()")

    async def verify(self, action: Action, result: Result) -> bool:
        """Post-execution check; override to confirm the world changed as intended."""
        return True

    async def rollback(self, action: Action, result: Result) -> Action | None:
        """Return a compensating action for a failed plan step, or None if there is none.

        The compensating action is not trusted: it goes through the same policy, approval and
        audit as any other action.
        """
        return None

    async def setup(self) -> None:
        """Called once when the runtime is entered (``async with Runtime(...)``)."""

    async def teardown(self) -> None:
        """Called once when the runtime is exited."""


class CallableExecutor(BaseExecutor):
    """Runs one function with the action the runtime hands over; what it returns is the data.

    For adapters that hold the tool to call: ``runtime.run_one(action,
    executor=CallableExecutor(lambda a: tool(**a.params)))`` makes the tool run inside the
    pipeline, so a blocked or denied call never reaches it and what it did (or raised) is
    audited. The function receives the action as decided and approved (with a human's edits,
    if any), never the arguments the agent first proposed. It may return an awaitable, which
    is awaited. ``blocking=True`` runs the function in a worker thread (with the caller's
    context variables), for sync tools that would otherwise stall the event loop. A returned
    ``Result`` is used as is; an exception makes the action FAILED.
    """

    def __init__(self, fn: Callable[[Action], Any], *, blocking: bool = False) -> None:
        self.fn = fn
        self.blocking = blocking

    async def execute(self, action: Action) -> Result:
        value = await asyncio.to_thread(self.fn, action) if self.blocking else self.fn(action)
        if inspect.isawaitable(value):
            value = await value
        if isinstance(value, Result):
            return value
        return Result(action, ResultStatus.SUCCESS, data=value)


_portal_lock = threading.Lock()
_portal: asyncio.AbstractEventLoop | None = None


class ToolboxExecutor(BaseExecutor):
    """Runs each allowed action with the framework tool named by ``action.type``.

    The original README's ``LangChainExecutor(tools=[...])`` shape, shared by every framework
    adapter: tools are indexed by ``name`` once (two with one name is an error, never a silent
    pick), an action naming no tool fails without running anything, and ``run_tool`` is the
    one framework-specific call.
    """

    framework: str = "framework"

    def __init__(self, tools: Any) -> None:
        self.tools: dict[str, Any] = {}
        for tool in tools:
            if tool.name in self.tools:
                raise ValueError(f"two {self.framework} tools are named {tool.name!r}")
            self.tools[tool.name] = tool

    async def execute(self, action: Action) -> Result:
        tool = self.tools.get(action.type)
        if tool is None:
            have = ", ".join(sorted(self.tools)) or "none"
            return Result(
                action,
                ResultStatus.FAILED,
                error=f"no {self.framework} tool named {action.type!r} (have: {have})",
            )
        return await self.run_tool(tool, action)

    async def run_tool(self, tool: Any, action: Action) -> Result:
        raise NotImplementedError(f"{type(self).__name__} must implement run_tool()")


def _portal_loop() -> asyncio.AbstractEventLoop:
    """The one event loop (on a daemon thread) that runs every ``call_sync`` coroutine."""
    global _portal
    with _portal_lock:
        if _portal is None or _portal.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="aegis-call-sync", daemon=True).start()
            _portal = loop
        return _portal


def call_sync(factory: Callable[[], Coroutine[Any, Any, T] | Awaitable[T]]) -> T:
    """Run an async Aegis call (``runtime.run_one``) to completion from synchronous code.

    Sync frameworks (CrewAI tools, LangChain's ``invoke``) call tools from plain functions,
    often from several threads at once. Every such call runs on one shared event loop in a
    background thread, so a runtime used this way only ever sees one loop (its locks and the
    audit writer's futures are loop-bound); the calling thread waits. Pair it with
    ``CallableExecutor(..., blocking=True)`` so that slow tools do not queue behind each other
    on that loop. ``factory`` makes the awaitable on that loop. Exceptions propagate.
    """
    loop = _portal_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        raise RuntimeError("call_sync() cannot wait on its own event loop; await the call instead")

    async def main() -> T:
        return await factory()

    # The caller's context variables go with the call (frameworks keep run config in them).
    context = contextvars.copy_context()
    done: concurrent.futures.Future[T] = concurrent.futures.Future()

    def start() -> None:
        task = loop.create_task(main(), context=context)

        def finished(task: asyncio.Task[T]) -> None:
            if task.cancelled():
                done.cancel()
            elif (error := task.exception()) is not None:
                done.set_exception(error)
            else:
                done.set_result(task.result())

        task.add_done_callback(finished)

    loop.call_soon_threadsafe(start)
    return done.result()
