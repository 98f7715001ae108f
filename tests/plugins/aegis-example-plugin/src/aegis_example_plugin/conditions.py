"""``param_multiple_of: {count: 10}`` holds when ``params["count"]`` is a multiple of 10.

Written against ``aegis.core.condition`` only: compile once, answer ``True``/``False``, or
``None`` when the answer cannot be known (missing param, not an integer) so that the engine,
not the plugin, decides how strictly to treat it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aegis.core.action import Action
from aegis.core.condition import CompileContext, ConditionCheck, EvalContext, Tristate

SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "param name -> divisor; holds when every named param is a multiple of it",
    "minProperties": 1,
    "additionalProperties": {"type": "integer", "minimum": 1},
}


def param_multiple_of(argument: Mapping[str, int], context: CompileContext) -> ConditionCheck:
    divisors = dict(argument)

    def check(action: Action, _ctx: EvalContext) -> Tristate:
        for name, divisor in divisors.items():
            value = action.params.get(name)
            if isinstance(value, bool) or not isinstance(value, int):
                return None
            if value % divisor:
                return False
        return True

    return check
