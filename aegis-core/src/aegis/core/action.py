"""What an agent asks to do.

An Action is frozen and its params are copied on construction: the policy decision is taken on
the params as they were when the action was created, so a caller that mutates its own dict while
a human is deciding cannot make the executor run something other than what was approved.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

_SCALARS = frozenset({str, int, float, bool, type(None)})


def _copy_json_like(value: Any) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict or isinstance(value, Mapping):
        return {k: _copy_json_like(v) for k, v in value.items()}
    if kind is list or kind is tuple or isinstance(value, list | tuple):
        return [_copy_json_like(v) for v in value]
    if isinstance(value, set):  # mutable containers too, or a caller could change them later
        return set(value)
    if isinstance(value, bytearray):
        return bytearray(value)
    return value


def _copy_params(value: Mapping[str, Any] | None) -> dict[str, Any]:
    if not value and (value is None or isinstance(value, Mapping)):
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
    description: str = attrs.field(default="", validator=attrs.validators.instance_of(str))
    agent_id: str | None = attrs.field(default=None, validator=_opt_str)
    session_id: str | None = attrs.field(default=None, validator=_opt_str)
    metadata: dict[str, Any] = attrs.field(factory=dict, converter=_copy_params)

    def __str__(self) -> str:
        return f"{self.type}:{self.target}"


def with_identity(action: Action, agent_id: str | None, session_id: str | None) -> Action:
    """A copy of ``action`` under another agent/session, with its params snapshotted again.

    The runtime binds every action to its own identity before deciding; the fresh copy of the
    params means that even a caller who mutates ``action.params`` in place after submitting it
    cannot change what was decided on. Cheaper than ``attrs.evolve`` (no re-validation of
    fields that were validated at construction).
    """
    new = object.__new__(Action)
    set_ = object.__setattr__
    set_(new, "type", action.type)
    set_(new, "target", action.target)
    set_(new, "params", _copy_params(action.params))
    set_(new, "description", action.description)
    set_(new, "agent_id", agent_id)
    set_(new, "session_id", session_id)
    set_(new, "metadata", _copy_params(action.metadata))
    return new
