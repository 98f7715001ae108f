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
    """Base class for approval handlers. Subclass and implement ``request_approval``.

    ``timeout`` (seconds) overrides the runtime's approval timeout for this handler.
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

    async def request_approval(self, action: Action, decision: PolicyDecision) -> ApprovalAnswer:
        return ApprovalDecision.approve(approver=self.approver, reason="auto-approval handler")


Callback = Callable[[Action, PolicyDecision], ApprovalAnswer | Awaitable[ApprovalAnswer]]


class CallbackApprovalHandler(ApprovalHandler):
    """Delegates to a sync or async callable — the simplest way to plug in a custom UI."""

    name: ClassVar[str] = "callback"

    def __init__(self, callback: Callback, *, timeout: float | None = None) -> None:
        self.callback = callback
        self.timeout = timeout

    async def request_approval(self, action: Action, decision: PolicyDecision) -> ApprovalAnswer:
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

    async def request_approval(self, action: Action, decision: PolicyDecision) -> ApprovalAnswer:
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


async def decide(
    handler: ApprovalHandler,
    action: Action,
    decision: PolicyDecision,
    *,
    timeout: float | None,
) -> ApprovalDecision:
    """Ask ``handler`` and normalise the answer; only an explicit approval approves."""
    handler_name = getattr(handler, "name", None) or type(handler).__name__
    limit = handler.timeout if handler.timeout is not None else timeout
    try:
        async with asyncio.timeout(limit) as window:
            answer = await handler.request_approval(action, decision)
    except TimeoutError as exc:
        if window.expired():
            return ApprovalDecision(
                False, reason=f"no answer within {limit:g} s", handler=handler_name, timed_out=True
            )
        # The handler's own TimeoutError (an HTTP call, say): a handler error, not our window.
        return ApprovalDecision(
            False,
            reason=f"approval handler raised {type(exc).__name__}: {exc}",
            handler=handler_name,
        )
    except Exception as exc:
        return ApprovalDecision(
            False,
            reason=f"approval handler raised {type(exc).__name__}: {exc}",
            handler=handler_name,
        )
    if answer is True:
        return ApprovalDecision(True, approver=None, reason=None, handler=handler_name)
    if isinstance(answer, ApprovalDecision):
        if answer.approved is True:
            return ApprovalDecision(
                True, approver=answer.approver, reason=answer.reason, handler=handler_name
            )
        return ApprovalDecision(
            False,
            approver=answer.approver,
            reason=answer.reason or "denied",
            handler=handler_name,
            timed_out=answer.timed_out,
        )
    if answer is False:
        return ApprovalDecision(False, reason="denied", handler=handler_name)
    return ApprovalDecision(
        False,
        reason=f"handler returned {type(answer).__name__} {answer!r}, which is not an approval",
        handler=handler_name,
    )
