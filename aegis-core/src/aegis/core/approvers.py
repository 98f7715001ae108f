"""Who may answer an approval request, how many must agree, and for how long it stays open.

A rule with ``approval: approve`` may say::

    approvers:
      allow: ["slack:U123", "email:*@example.com", "key:ops-team"]   # globs on identities
      quorum: 2                # distinct allowed approvers who must approve (default 1)
      timeout: 10m             # this rule's window (the runtime's cap still applies)
      escalate_after: 5m       # then notify again and also accept ...
      escalate_to: ["email:cto@example.com"]

``approvers: ["slack:U123"]`` is short for ``approvers: {allow: [...]}``. An identity is
``<channel>:<id>``: the channel that carried the answer, then who gave it there (a Slack user
id, an e-mail address, an API key's name, a local user name for ``cli``). Without ``allow``,
any answer that a configured channel authenticated is accepted (``aegis validate --strict``
says so). A deny from an allowed approver denies at once; approvals count only from distinct
identities.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping
from typing import Any

import attrs

#: The longest window a policy may ask for; a longer wait is a mistake, not a policy.
MAX_WINDOW = 30 * 24 * 3600.0

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_IDENTITY = r"^[a-z][a-z0-9_-]*:.+$"

DURATION_SCHEMA: dict[str, Any] = {
    "description": "Seconds, or a number with a unit: 500ms, 30s, 10m, 2h, 1d.",
    "type": ["number", "string"],
}

_IDENTITIES: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "string",
        "pattern": _IDENTITY,
        "description": "channel:id, globs allowed (slack:U123, email:*@example.com).",
    },
}

APPROVERS_SCHEMA: dict[str, Any] = {
    "description": "Who may answer this rule's approval requests (approval: approve only): a"
    " list of identities, or a mapping with allow, quorum, timeout, escalate_after, escalate_to.",
    # One type list instead of anyOf, so an error names the key that is wrong: `items` and
    # `minItems` apply to the list form, `properties` to the mapping form.
    "type": ["array", "object"],
    "minItems": 1,
    "items": _IDENTITIES["items"],
    "additionalProperties": False,
    "properties": {
        "allow": _IDENTITIES,
        "quorum": {"type": "integer", "minimum": 1, "maximum": 100},
        "timeout": DURATION_SCHEMA,
        "escalate_after": DURATION_SCHEMA,
        "escalate_to": _IDENTITIES,
    },
}


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``1.5``, ``"30s"``, ``"10m"`` …; ValueError for anything else.

    NaN, infinities, zero and negative values are refused: none of them is a window.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        found = _DURATION.match(value)
        if found is None:
            raise ValueError(f"{value!r} is not a duration (use e.g. 30s, 10m, 2h)")
        seconds = float(found.group(1)) * _UNIT[found.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{value!r} is not a positive, finite duration")
    if seconds > MAX_WINDOW:
        raise ValueError(f"{value!r} is longer than the 30-day maximum")
    return seconds


def check_timeout(value: float | None, what: str) -> float | None:
    """A runtime/handler timeout: None (no limit of its own) or a positive finite number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number of seconds or None, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be positive and finite, not {value!r}")
    return float(value)


@attrs.frozen
class ApprovalRequirements:
    """A rule's terms for approving: who, how many, how long."""

    allow: tuple[str, ...] | None = None
    quorum: int = 1
    timeout: float | None = None
    escalate_after: float | None = None
    escalate_to: tuple[str, ...] = ()

    def allows(self, identity: str, *, escalated: bool = False) -> bool:
        """Whether ``identity`` may answer (after escalation, ``escalate_to`` may too)."""
        if self.allow is None:
            return True
        patterns = self.allow + self.escalate_to if escalated else self.allow
        return any(fnmatch.fnmatchcase(identity, p) for p in patterns)

    def describe(self) -> str:
        who = "any authenticated approver" if self.allow is None else ", ".join(self.allow)
        need = f"{self.quorum} of " if self.quorum > 1 else ""
        return f"{need}{who}"


DEFAULT_REQUIREMENTS = ApprovalRequirements()


def parse_requirements(raw: Any) -> tuple[ApprovalRequirements | None, list[tuple[str, str]]]:
    """The rule's ``approvers`` value (already schema-valid) -> requirements, problems.

    Problems are ``(key, message)`` pairs relative to ``approvers``.
    """
    if raw is None:
        return None, []
    spec: Mapping[str, Any] = {"allow": raw} if isinstance(raw, list | tuple) else raw
    problems: list[tuple[str, str]] = []
    windows: dict[str, float | None] = {}
    for key in ("timeout", "escalate_after"):
        value = spec.get(key)
        windows[key] = None
        if value is not None:
            try:
                windows[key] = parse_duration(value)
            except ValueError as exc:
                problems.append((key, str(exc)))
    timeout, escalate = windows["timeout"], windows["escalate_after"]
    if escalate is not None and timeout is not None and escalate >= timeout:
        problems.append(("escalate_after", "must be shorter than timeout"))
    if spec.get("escalate_to") and spec.get("allow") is None:
        problems.append(("escalate_to", "needs an allow list to extend (without one, anyone may)"))
    if problems:
        return None, problems
    allow = spec.get("allow")
    return (
        ApprovalRequirements(
            allow=None if allow is None else tuple(allow),
            quorum=int(spec.get("quorum", 1)),
            timeout=timeout,
            escalate_after=escalate,
            escalate_to=tuple(spec.get("escalate_to") or ()),
        ),
        [],
    )
