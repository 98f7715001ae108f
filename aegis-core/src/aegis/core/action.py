"""What an agent asks to do.

An Action is frozen and its params are copied on construction: the policy decision is taken on
the params as they were when the action was created, so a caller that mutates its own dict while
a human is deciding cannot make the executor run something other than what was approved.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs


def _copy_json_like(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy_json_like(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy_json_like(v) for v in value]
    return value


def _copy_params(value: Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"Action params must be a mapping, not {type(value).__name__}")
    return {str(k): _copy_json_like(v) for k, v in value.items()}


def _non_empty_str(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise TypeError(f"Action.{attribute.name} must be a non-empty string, got {value!r}")


def _opt_str(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"Action.{attribute.name} must be a string or None, got {value!r}")


@attrs.frozen(eq=True, hash=False)
class Action:
    """One thing an agent wants to do: ``Action("delete", "crm", params={"id": 7})``."""

    type: str = attrs.field(validator=_non_empty_str)
    target: str = attrs.field(validator=_non_empty_str)
    params: dict[str, Any] = attrs.field(factory=dict, converter=_copy_params)
    description: str = ""
    agent_id: str | None = attrs.field(default=None, validator=_opt_str)
    session_id: str | None = attrs.field(default=None, validator=_opt_str)
    metadata: dict[str, Any] = attrs.field(factory=dict, converter=_copy_params)

    def __str__(self) -> str:
        return f"{self.type}:{self.target}"
