"""Running an allowed action: the executor call, its retries and its verification.

Kept apart from the pipeline so the rules about *whether* an action runs (pipeline.py) and the
rules about *how* it is run are each readable on their own. Nothing here decides permission;
the one policy touch is a re-check between retries, which can only stop further attempts.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from aegis.adapters.base import BaseExecutor
from aegis.core.action import Action
from aegis.core.decision import PolicyDecision
from aegis.core.result import Result, ResultStatus
from aegis.core.retry import RetryPolicy


async def execute_and_verify(
    executor: BaseExecutor,
    action: Action,
    decision: PolicyDecision,
    *,
    retry: RetryPolicy,
    timeout: float | None,
    reevaluate: Callable[[Action], Awaitable[PolicyDecision]],
) -> tuple[Result, dict[str, Any]]:
    """Run (with retries) and verify; returns the result and the fields to stamp on it."""
    started = time.perf_counter()
    attempt = 0
    while True:
        attempt += 1
        error: BaseException | None = None
        try:
            raw = await _call_executor(executor, action, timeout)
            result = _normalise(raw, action)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc
            result = Result(
                action, ResultStatus.FAILED, error=_describe(exc), reason="executor raised"
            )
        if result.status is ResultStatus.SUCCESS:
            break
        if attempt >= retry.max_attempts:
            break
        retryable = (
            retry.retries_exception(error)
            if error is not None
            else result.status is ResultStatus.FAILED and retry.retry_failed_results
        )
        if not retryable:
            break
        await asyncio.sleep(retry.delay(attempt))
        refused = await _retry_refused(reevaluate, action, decision)
        if refused is not None:
            result = attrs.evolve(result, reason=join_reasons(result.reason, refused))
            break

    updates: dict[str, Any] = {"attempts": attempt}
    if result.status is ResultStatus.SUCCESS:
        try:
            verified = await executor.verify(action, result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            updates.update(
                status=ResultStatus.FAILED,
                verified=False,
                error=f"verify() raised {_describe(exc)}",
            )
        else:
            if verified is True:
                updates["verified"] = True
            else:
                updates.update(
                    status=ResultStatus.FAILED,
                    verified=False,
                    error="verification failed",
                    reason="verify() did not return True",
                )
    updates["duration_ms"] = (time.perf_counter() - started) * 1000.0
    return result, updates


async def _retry_refused(
    reevaluate: Callable[[Action], Awaitable[PolicyDecision]],
    action: Action,
    decision: PolicyDecision,
) -> str | None:
    """Why the policy, asked again before a retry, does not let it run; None when it does.

    ``reevaluate`` is a coroutine so that a stateful policy on a database server reads its
    usage on a worker thread (``limit_state.decide_retry``), never on the event loop. Anything
    that goes wrong in asking stops the retries: the attempt that failed stands, and says why.
    """
    try:
        fresh = await reevaluate(action)
        stricter = fresh.approval.strictness > decision.approval.strictness
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return f"retries stopped: the policy could not be asked again ({_describe(exc)})"
    if not stricter:
        return None
    because = f": {fresh.reason}" if fresh.reason else ""
    return (
        f"retries stopped: the policy now says {fresh.approval.value} "
        f"(rule {fresh.matched_rule or '(defaults)'}){because}"
    )


class ExecutionTimeout(TimeoutError):
    """The runtime's execution limit passed; the executor may have partly run."""


async def _call_executor(executor: BaseExecutor, action: Action, timeout: float | None) -> Any:
    if timeout is None:
        return await executor.execute(action)
    # A task of its own: an executor that swallows cancellation cannot hold us past the limit
    # (and anyio cancel scopes inside it, httpx's, stay in the task they were entered in). We
    # wait on one plain future that the task itself settles as its last step, or the loop's
    # expiry sweep when the limit passes: no asyncio.wait, no timer and no done-callback pass
    # per call, as this runs once per action.
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[Any] = loop.create_future()
    task = loop.create_task(_contained(executor.execute(action), waiter))
    expiry = _expiry_of(loop)
    expiry.add(waiter, timeout)
    try:
        value = await waiter
    except asyncio.CancelledError:
        task.cancel()
        raise
    except _Interrupt as wrapped:  # re-raised here, in the caller's task, after the wait
        raise wrapped.original from None
    finally:
        expiry.discard(waiter)
    if value is _EXPIRED:
        task.cancel()
        raise ExecutionTimeout(
            f"executor did not finish within {timeout:g} s (timed out; it may have partly run)"
        )
    return value


async def _contained(coro: Any, waiter: asyncio.Future[Any]) -> None:
    """Run the executor and settle ``waiter`` with its outcome, unless the limit already did
    (then a late outcome is dropped: the action is recorded as timed out)."""
    try:
        value = await coro
    except asyncio.CancelledError:
        if not waiter.done():  # cancelled by someone else (the loop shutting down)
            waiter.cancel()
        raise
    except GeneratorExit:
        raise
    except BaseException as exc:
        if not waiter.done():
            # SystemExit/KeyboardInterrupt raised inside a task would escape the event loop
            # itself, before the audit record could be completed: carried out as a value.
            waiter.set_exception(exc if isinstance(exc, Exception) else _Interrupt(exc))
    else:
        if not waiter.done():
            waiter.set_result(value)


#: What the expiry sweep settles a waiter with: never a value an executor can return.
_EXPIRED: Any = object()


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(_EXPIRED)


class _Expiry:
    """Wakes the waits of one event loop whose time limit has passed.

    One sweep, every tenth of the shortest limit in use (at most every second), instead of a
    timer per action: asyncio keeps timers in a heap ordered by Python-level comparisons, and
    with a 300 s default nearly every timer is cancelled unused, so a timer per action cost
    more than the rest of the wait. A limit therefore fires up to a tenth of itself late (at
    most 1 s); it never fires early. The sweep runs only while some wait is in flight.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # The loop and the sweep's timer (which names the loop) are held weakly: ``_EXPIRY`` is
        # keyed by the loop, and a value holding its key would keep every finished loop (one
        # per ``asyncio.run``) alive for good.
        self._loop_ref = weakref.ref(loop)
        self._waits: dict[asyncio.Future[Any], float] = {}
        self._timer: weakref.ref[asyncio.TimerHandle] | None = None
        self._tick = _MAX_TICK

    def add(self, waiter: asyncio.Future[Any], timeout: float) -> None:
        loop = waiter.get_loop()
        self._waits[waiter] = loop.time() + timeout
        tick = min(_MAX_TICK, max(timeout / 10, _MIN_TICK))
        armed = self._timer() if self._timer is not None else None
        if armed is None or tick < self._tick:
            if armed is not None:
                armed.cancel()
            self._tick = tick
            self._timer = weakref.ref(loop.call_later(tick, self._sweep))

    def discard(self, waiter: asyncio.Future[Any]) -> None:
        self._waits.pop(waiter, None)

    def _sweep(self) -> None:
        loop = self._loop_ref()
        if loop is None or loop.is_closed():
            self._waits.clear()
            self._timer = None
            return
        now = loop.time()
        for waiter in [w for w, deadline in self._waits.items() if deadline <= now]:
            del self._waits[waiter]
            _expire(waiter)
        if self._waits:
            self._timer = weakref.ref(loop.call_later(self._tick, self._sweep))
        else:
            self._timer, self._tick = None, _MAX_TICK


_MAX_TICK, _MIN_TICK = 1.0, 0.001
_EXPIRY: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Expiry] = weakref.WeakKeyDictionary()


def _expiry_of(loop: asyncio.AbstractEventLoop) -> _Expiry:
    expiry = _EXPIRY.get(loop)
    if expiry is None:
        expiry = _EXPIRY[loop] = _Expiry(loop)
    return expiry


class _Interrupt(Exception):
    """Carries a SystemExit/KeyboardInterrupt out of the executor's task: raised inside a task,
    those escape the event loop itself, before the audit record could be completed."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(repr(original))
        self.original = original


def _normalise(raw: object, action: Action) -> Result:
    """The executor's Result as the pipeline needs it: about this action, success or failure.

    (Field types are Result's own business: its converters turn ``"success"`` into the enum
    and an exception given as ``error`` into text.)
    """
    if not isinstance(raw, Result):
        return Result(
            action,
            ResultStatus.FAILED,
            error=f"executor returned {type(raw).__name__}, not a Result",
        )
    if raw.status is not ResultStatus.SUCCESS and raw.status is not ResultStatus.FAILED:
        return attrs.evolve(
            raw,
            action=action,
            status=ResultStatus.FAILED,
            error=raw.error or f"executor reported {raw.status.value}",
        )
    if raw.action is not action:
        return attrs.evolve(raw, action=action)
    return raw


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def join_reasons(*parts: str | None) -> str | None:
    """Several reasons as one audit string; None when there is none."""
    kept = [p for p in parts if p]
    return "; ".join(kept) if kept else None
