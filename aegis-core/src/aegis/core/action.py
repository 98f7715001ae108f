"""What an agent asks to do.

An Action is frozen, and so are its params (``aegis.core.frozen``): the value the policy decided
on, the one a human approved and the one the executor receives are the same, and nothing the
caller or a handler holds can change it.
"""

from __future__ import annotations

from typing import Any

import attrs

from aegis.core.frozen import FrozenDict, action_digest, freeze_params
from aegis.core.names import check_name
from aegis.errors import ActionError


def _freeze_metadata(value: object) -> FrozenDict:
    return freeze_params(value, "metadata")


def _non_empty_str(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ActionError(f"Action.{attribute.name} must be a non-empty string, got {value!r}")
    check_name(attribute.name, value)


def _opt_str(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise ActionError(f"Action.{attribute.name} must be a string or None, got {value!r}")
    check_name(attribute.name, value)


def _depth(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not int or value < 0:
        raise ActionError(f"Action.{attribute.name} must be a non-negative int, got {value!r}")


# Not slotted: attrs' __init__ for a frozen dict-backed class fills the instance dict
# directly instead of one object.__setattr__ call per field, and this is built once per call.
@attrs.frozen(eq=True, hash=False, slots=False)
class Action:
    """One thing an agent wants to do: ``Action("delete", "crm", params={"id": 7})``."""

    type: str = attrs.field(validator=_non_empty_str)
    target: str = attrs.field(validator=_non_empty_str)
    params: FrozenDict = attrs.field(factory=FrozenDict, converter=freeze_params)
    description: str = attrs.field(default="", validator=attrs.validators.instance_of(str))
    agent_id: str | None = attrs.field(default=None, validator=_opt_str)
    session_id: str | None = attrs.field(default=None, validator=_opt_str)
    metadata: FrozenDict = attrs.field(factory=FrozenDict, converter=_freeze_metadata)
    #: Delegation: the agent that handed this task down, the multi-agent task it belongs to,
    #: and how many hand-offs deep it is (0 = the agent the user talked to).
    parent_agent_id: str | None = attrs.field(default=None, validator=_opt_str, kw_only=True)
    chain_id: str | None = attrs.field(default=None, validator=_opt_str, kw_only=True)
    chain_depth: int = attrs.field(default=0, validator=_depth, kw_only=True)

    def __str__(self) -> str:
        described = f" ({self.description})" if self.description else ""
        return f"{self.type}:{self.target}{described}"

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical action (type, target, params, agent, session).

        An approval is bound to this value: an answer given for another digest is rejected.
        """
        return action_digest(self.type, self.target, self.params, self.agent_id, self.session_id)

    def with_params(self, params: Any) -> Action:
        """The same action with other params (an approver's edit): a new, frozen Action."""
        return attrs.evolve(self, params=params)


def with_identity(action: Action, agent_id: str | None, session_id: str | None) -> Action:
    """``action`` under another agent/session (itself when those are already its own).

    The runtime binds every action to its own identity before deciding. The frozen params are
    shared, not copied: nobody can change them. Cheaper than ``attrs.evolve`` (no
    re-validation of fields that were validated at construction).
    """
    if action.agent_id is agent_id and action.session_id is session_id:
        return action
    new = object.__new__(Action)
    fields = new.__dict__
    fields.update(action.__dict__)
    fields["agent_id"] = agent_id
    fields["session_id"] = session_id
    return new
