"""An executor shipped by a plugin distribution as a module of the shared ``aegis.adapters``.

It lives here, not in ``aegis_example_plugin``, to prove the namespace-portion recipe: users
import plugin executors as ``aegis.adapters.<name>``, next to the core's ``aegis.adapters.base``.
"""

from __future__ import annotations

from aegis.adapters.base import BaseExecutor
from aegis.core.action import Action
from aegis.core.result import Result, ResultStatus


class EchoExecutor(BaseExecutor):
    """Succeeds with the action's params as data and remembers what it ran.

    Remembering is the point: a test can tell an action that really reached the executor from
    one that was only audited.
    """

    def __init__(self, *, prefix: str = "echo") -> None:
        self.prefix = prefix
        self.executed: list[Action] = []

    async def execute(self, action: Action) -> Result:
        self.executed.append(action)
        data = {"echo": f"{self.prefix}:{action.type}:{action.target}", "params": action.params}
        return Result(action=action, status=ResultStatus.SUCCESS, data=data)
