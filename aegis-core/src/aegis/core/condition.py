"""The contract between the policy engine and a condition (built-in or from a plugin).

A condition is registered as a *factory*: it receives the condition's argument from the policy
(already validated against the condition's JSON Schema fragment) and a ``CompileContext``, and
returns a *check*. Compiling once at load time is what lets a bad regex or a bad time string be
rejected at load, with a line number, instead of at 3 a.m. on the first matching action.

A check answers ``True`` (holds), ``False`` (does not hold) or ``None`` (unknown: the param is
missing, mistyped, NaN, too large to examine...). A check that raises is treated as unknown.
How unknown resolves is the engine's business, never the condition's: on an ``approve``/``block``
rule it counts as a match, on an ``auto`` rule it does not (ARCHITECTURE.md, decided semantics).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import attrs

from aegis.core.action import Action

if TYPE_CHECKING:
    from aegis.core.stateful import LimitState

#: ``True`` / ``False`` / ``None`` (unknown).
Tristate = bool | None


@attrs.frozen
class CompileContext:
    """Policy-wide settings a condition factory may need."""

    timezone: dt.tzinfo = attrs.field(factory=lambda: ZoneInfo("UTC"))
    case_sensitive: bool = False
    #: The name of the rule being compiled (stateful conditions key their history on it).
    rule: str = ""


@attrs.frozen
class EvalContext:
    """Per-evaluation inputs other than the action itself (the clock, so tests can pin it).

    ``state`` is the history stateful conditions read (``aegis.core.limits``); ``None`` in a
    pure evaluation, where they answer unknown.
    """

    now: dt.datetime
    state: LimitState | None = None


ConditionCheck = Callable[[Action, EvalContext], Tristate]
ConditionFactory = Callable[[Any, CompileContext], ConditionCheck]


@attrs.frozen
class ConditionDef:
    """A registered condition: its name, factory and the JSON Schema of its argument."""

    name: str
    factory: ConditionFactory
    schema: Mapping[str, Any]
    description: str = ""
    plugin: str | None = None


class ConditionCompileError(ValueError):
    """Raised by a factory for an argument the schema could not rule out (e.g. a bad regex)."""
