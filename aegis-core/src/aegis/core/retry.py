"""When and how long to wait before trying an executor again.

Retries only cover *execution*: an action is never re-approved by retrying, and the runtime
re-checks the policy before every further attempt, so a policy that tightened during the
back-off stops the retries.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"RetryPolicy.{attribute.name} must be >= 0, got {value}")


@attrs.frozen
class RetryPolicy:
    """Exponential back-off with an error filter.

    ``retry_on`` lists exception types worth retrying (default: any ``Exception``);
    ``should_retry`` can veto further by looking at the exception. Results returned with status
    FAILED (rather than raised) are retried only when ``retry_failed_results`` is set, since an
    executor that reports failure usually knows retrying will not help.
    """

    max_attempts: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    base_delay: float = attrs.field(default=0.5, validator=_positive)
    multiplier: float = attrs.field(default=2.0, validator=attrs.validators.ge(1.0))
    max_delay: float = attrs.field(default=30.0, validator=_positive)
    jitter: float = attrs.field(default=0.0, validator=_positive)
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    should_retry: Callable[[BaseException], bool] | None = None
    retry_failed_results: bool = False

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.max_delay, self.base_delay * self.multiplier ** (attempt - 1))
        if self.jitter:
            base += random.uniform(0, self.jitter)
        return base

    def retries_exception(self, exc: BaseException) -> bool:
        if not isinstance(exc, self.retry_on):
            return False
        if self.should_retry is None:
            return True
        try:
            return bool(self.should_retry(exc))
        except Exception:
            return False  # a broken filter must not cause extra executions


NO_RETRY = RetryPolicy(max_attempts=1)
