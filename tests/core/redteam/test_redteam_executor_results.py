"""An executor's Result with odd field values must still end in a final, truthful audit record.

``ResultStatus`` is a StrEnum, so ``Result(action, "success")`` is an easy thing to write; an
``error`` holding the exception itself is another. Before the fix the action ran, the audit row
stayed ``pending`` forever and ``run_one`` raised an AttributeError/TypeError.
"""

from __future__ import annotations

from typing import Any

import pytest
from redteam_helpers import Recorder

from aegis import Action, Policy, Runtime
from aegis.core.result import Result, ResultStatus
from aegis.runtime.approval.handlers import AutoApprovalHandler
from aegis.runtime.audit import AuditStore


async def _run(policy: Policy, store: AuditStore, executor: Recorder) -> Result:
    async with Runtime(
        executor=executor, policy=policy, audit=store, approval_handler=AutoApprovalHandler()
    ) as rt:
        return await rt.run_one(Action("write", "crm"))


@pytest.mark.parametrize(
    ("status", "expected"),
    [("success", ResultStatus.SUCCESS), ("failed", ResultStatus.FAILED)],
)
async def test_status_given_as_plain_string(
    auto_policy: Policy, store: AuditStore, status: str, expected: ResultStatus
) -> None:
    executor = Recorder(lambda a: Result(a, status))  # type: ignore[arg-type]
    result = await _run(auto_policy, store, executor)
    assert len(executor.ran) == 1
    assert result.status is expected
    (rec,) = store.query(limit=None)
    assert rec.result == expected.value
    if expected is ResultStatus.SUCCESS:
        assert executor.verified, "a reported success must still be verified"
        assert rec.verified is True


async def test_unknown_status_string_is_a_failure(auto_policy: Policy, store: AuditStore) -> None:
    executor = Recorder(lambda a: Result(a, "done"))  # type: ignore[arg-type]
    result = await _run(auto_policy, store, executor)
    assert result.status is ResultStatus.FAILED
    (rec,) = store.query(limit=None)
    assert rec.result == "failed" and "done" in (rec.error or "")


@pytest.mark.parametrize("field", ["error", "reason"])
async def test_non_string_error_or_reason(
    auto_policy: Policy, store: AuditStore, field: str
) -> None:
    kwargs: dict[str, Any] = {field: ValueError("upstream said no")}
    executor = Recorder(lambda a: Result(a, ResultStatus.FAILED, **kwargs))
    result = await _run(auto_policy, store, executor)
    assert len(executor.ran) == 1
    assert result.status is ResultStatus.FAILED
    (rec,) = store.query(limit=None)
    assert rec.result == "failed"
    assert "upstream said no" in (getattr(rec, field) or "")
    assert "internal error" not in (rec.error or "")


async def test_non_string_reason_on_success_is_not_recorded_as_failure(
    auto_policy: Policy, store: AuditStore
) -> None:
    executor = Recorder(lambda a: Result(a, ResultStatus.SUCCESS, reason=5))  # type: ignore[arg-type]
    result = await _run(auto_policy, store, executor)
    assert result.status is ResultStatus.SUCCESS
    (rec,) = store.query(limit=None)
    assert rec.result == "success"
