"""The executor contract: the one piece a user must write (or install) to let actions run."""

from __future__ import annotations

import asyncio
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
    if any), never the arguments the agent first proposed. It may be sync or return an
    awaitable; a sync function runs on the event loop's thread. A returned ``Result`` is used
    as is; an exception makes the action FAILED.
    """

    def __init__(self, fn: Callable[[Action], Any]) -> None:
        self.fn = fn

    async def execute(self, action: Action) -> Result:
        value = self.fn(action)
        if inspect.isawaitable(value):
            value = await value
        if isinstance(value, Result):
            return value
        return Result(action, ResultStatus.SUCCESS, data=value)


def call_sync(factory: Callable[[], Coroutine[Any, Any, T] | Awaitable[T]]) -> T:
    """Run an async Aegis call (``runtime.run_one``) to completion from synchronous code.

    Sync frameworks (CrewAI tools, LangChain's ``invoke``) call tools from plain functions.
    With no event loop running in this thread the coroutine runs here (so the tool stays on
    the caller's thread); when a loop is running here, blocking it would deadlock, so the
    call runs on a fresh loop in a helper thread while this one waits. ``factory`` makes the
    awaitable where it will run. Exceptions propagate to the caller.
    """

    async def main() -> T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    outcome: dict[str, Any] = {}
    context = contextvars.copy_context()

    def run() -> None:
        try:
            outcome["value"] = context.run(asyncio.run, main())
        except BaseException as exc:  # handed to the waiting caller
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="aegis-call-sync", daemon=True)
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]
