"""Running an allowed action: the executor call, its retries and its verification.

Kept apart from the pipeline so the rules about *whether* an action runs (engine.py) and the
rules about *how* it is run are each readable on their own. Nothing here decides permission;
the one policy touch is a re-check between retries, which can only stop further attempts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
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
    reevaluate: Callable[[Action], PolicyDecision],
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
        fresh = reevaluate(action)
        if fresh.approval.strictness > decision.approval.strictness:
            result = attrs.evolve(
                result,
                reason=join_reasons(
                    result.reason,
                    f"retries stopped: the policy now says {fresh.approval.value} "
                    f"(rule {fresh.matched_rule or '(defaults)'})",
                ),
            )
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


class ExecutionTimeout(TimeoutError):
    """The runtime's execution limit passed; the executor may have partly run."""


async def _call_executor(executor: BaseExecutor, action: Action, timeout: float | None) -> Any:
    if timeout is None:
        return await executor.execute(action)
    # A task of its own: an executor that swallows cancellation cannot hold us past the limit.
    task = asyncio.ensure_future(_contained(executor.execute(action)))
    try:
        done, _ = await asyncio.wait((task,), timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_drop_outcome)
        raise ExecutionTimeout(
            f"executor did not finish within {timeout:g} s (timed out; it may have partly run)"
        )
    try:
        return task.result()
    except _Interrupt as wrapped:  # re-raised here, in the caller's task, after the wait
        raise wrapped.original from None


class _Interrupt(Exception):
    """Carries a SystemExit/KeyboardInterrupt out of the executor's task: raised inside a task,
    those escape the event loop itself, before the audit record could be completed."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(repr(original))
        self.original = original


async def _contained(coro: Any) -> Any:
    try:
        return await coro
    except (SystemExit, KeyboardInterrupt) as exc:
        raise _Interrupt(exc) from exc


def _drop_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log "exception never retrieved"


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
