"""Asking a human (or a stand-in) whether an action may run.

The handler contract is deliberately small — ``request_approval(action, decision)`` returns
``True`` or an ``ApprovalDecision`` — and everything around it is the runtime's job:
``decide()`` applies the timeout and turns every other outcome (``False``, ``None``, ``"yes"``,
``1``, an exception, a timeout, cancellation) into a denial that says why. A handler therefore
cannot approve by accident.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import inspect
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import IO, ClassVar

from aegis.core.action import Action
from aegis.core.approval import ApprovalDecision
from aegis.core.decision import PolicyDecision

DEFAULT_APPROVAL_TIMEOUT = 300.0
#: The runtime's default cap on one executor call (``execution_timeout=None`` for none): a
#: hung executor must not hang the agent, and its audit record must close.
DEFAULT_EXECUTION_TIMEOUT = 300.0

ApprovalAnswer = bool | ApprovalDecision


class ApprovalHandler:
    """Base class for one-shot approval handlers. Subclass and implement ``request_approval``.

    ``timeout`` (seconds) can shorten the runtime's approval window for this handler, never
    extend it. The runtime runs every handler as a channel (``HandlerChannel``): its answer is
    checked like any other. The built-in handlers also accept the original API's one-argument
    call, ``request_approval(decision)``.
    """

    name: ClassVar[str] = "custom"
    timeout: float | None = None

    async def request_approval(self, action: Action, decision: PolicyDecision) -> ApprovalAnswer:
        raise NotImplementedError(f"{type(self).__name__} must implement request_approval()")


class AutoApprovalHandler(ApprovalHandler):
    """Approves everything. For tests and for servers where the policy alone decides."""

    name: ClassVar[str] = "auto"

    def __init__(self, approver: str = "auto") -> None:
        self.approver = approver

    async def request_approval(
        self, action: Action | PolicyDecision, decision: PolicyDecision | None = None
    ) -> ApprovalAnswer:
        return ApprovalDecision.approve(approver=self.approver, reason="auto-approval handler")


Callback = Callable[[Action, PolicyDecision], ApprovalAnswer | Awaitable[ApprovalAnswer]]


class CallbackApprovalHandler(ApprovalHandler):
    """Delegates to a sync or async callable — the simplest way to plug in a custom UI."""

    name: ClassVar[str] = "callback"

    def __init__(self, callback: Callback, *, timeout: float | None = None) -> None:
        self.callback = callback
        self.timeout = timeout

    async def request_approval(
        self, action: Action | PolicyDecision, decision: PolicyDecision | None = None
    ) -> ApprovalAnswer:
        action, decision = _both(action, decision)
        answer = self.callback(action, decision)
        if inspect.isawaitable(answer):
            return await answer
        return answer


class CLIApprovalHandler(ApprovalHandler):
    """Asks on the terminal. No terminal (piped stdin, CI, a daemon) or EOF means deny.

    Prompts are serialised so concurrent actions never interleave questions. Reading happens on
    a daemon thread, so a prompt abandoned by a timeout cannot keep the process alive.
    """

    name: ClassVar[str] = "cli"

    def __init__(
        self,
        *,
        input_stream: IO[str] | None = None,
        output_stream: IO[str] | None = None,
        require_tty: bool = True,
    ) -> None:
        self._in = input_stream
        self._out = output_stream
        self._require_tty = require_tty
        self._lock: asyncio.Lock | None = None

    async def request_approval(
        self, action: Action | PolicyDecision, decision: PolicyDecision | None = None
    ) -> ApprovalAnswer:
        action, decision = _both(action, decision)
        stream_in = self._in if self._in is not None else sys.stdin
        stream_out = self._out if self._out is not None else sys.stderr
        if self._require_tty and not _isatty(stream_in):
            return ApprovalDecision.deny(
                approver=None, reason="no terminal to ask on (stdin is not a TTY)"
            )
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            stream_out.write(_prompt_text(action, decision))
            stream_out.flush()
            line = await _read_line_on_daemon_thread(stream_in)
        if line is None:
            return ApprovalDecision.deny(approver=_user(), reason="end of input")
        answer = line.strip().lower()
        if answer in {"y", "yes"}:
            return ApprovalDecision.approve(approver=_user(), reason="approved at the terminal")
        return ApprovalDecision.deny(approver=_user(), reason=f"answered {answer or 'nothing'!r}")


def _both(
    action: Action | PolicyDecision, decision: PolicyDecision | None
) -> tuple[Action, PolicyDecision]:
    """``(action, decision)`` from either call form: ``(action, decision)`` or ``(decision)``."""
    if decision is None:
        if not isinstance(action, PolicyDecision):
            raise TypeError("request_approval needs a PolicyDecision")
        return action.action, action
    if not isinstance(action, Action):
        raise TypeError("request_approval(action, decision): action must be an Action")
    return action, decision


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:
        return None


def _prompt_text(action: Action, decision: PolicyDecision) -> str:
    params = f" params={action.params}" if action.params else ""
    desc = f" ({action.description})" if action.description else ""
    return (
        f"\n[aegis] approval needed: {action.type} -> {action.target}{desc}{params}\n"
        f"        risk={decision.risk_level} rule={decision.matched_rule or '(defaults)'}\n"
        "        approve? [y/N] "
    )


async def _read_line_on_daemon_thread(stream: IO[str]) -> str | None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str | None] = loop.create_future()

    def deliver(value: str | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def read() -> None:
        try:
            line = stream.readline()
            value = line if line else None  # "" is EOF
            loop.call_soon_threadsafe(deliver, value, None)
        except BaseException as exc:  # delivered to the awaiting task, which denies
            # A closed loop means nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(deliver, None, exc)

    threading.Thread(target=read, name="aegis-cli-approval", daemon=True).start()
    return await future
