"""The executor contract: the one piece a user must write (or install) to let actions run."""

from __future__ import annotations

from aegis.core.action import Action
from aegis.core.result import Result


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
