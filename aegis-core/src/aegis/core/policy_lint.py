"""What ``aegis validate --strict`` finds in a valid policy: rules that can never decide,
rules that overlap with different decisions, and an ``auto`` default.

Reasoned on the compiled globs (already folded like the names they meet), conservatively in
the direction that matters: a rule is called *shadowed* only when every action its globs fit is
certainly taken by an earlier rule with no conditions; *overlap* is reported when some action
may fit both (two patterns with compatible literal prefixes), so it can over-report, never miss
a pair that shares an exact name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aegis.core.matcher import CompiledRule, Glob
from aegis.core.risk import Approval

if TYPE_CHECKING:
    from aegis.core.policy import Policy

Globs = tuple[Glob, ...] | None


def _covers(a: Glob, b: Glob) -> bool:
    """Every key ``b`` matches, ``a`` matches too."""
    if a.kind == "prefix":
        return b.index_key.startswith(a.literal)
    if b.kind != "exact":
        return False
    return a.match(b.literal)


def _may_meet(a: Glob, b: Glob) -> bool:
    """Some key may match both (exact when either is a literal name)."""
    if a.kind == "exact":
        return b.match(a.literal)
    if b.kind == "exact":
        return a.match(b.literal)
    return a.index_key.startswith(b.index_key) or b.index_key.startswith(a.index_key)


def _field_covers(a: Globs, b: Globs) -> bool:
    if a is None or any(g.kind == "prefix" and g.literal == "" for g in a):
        return True
    if b is None:
        return False
    return all(any(_covers(x, y) for x in a) for y in b)


def _field_meets(a: Globs, b: Globs) -> bool:
    if a is None or b is None:
        return True
    return any(_may_meet(x, y) for x in a for y in b)


def _shadows(earlier: CompiledRule, later: CompiledRule) -> bool:
    if earlier.cond is not None:
        return False
    if earlier.agent is not None and not any(g.pattern == "*" for g in earlier.agent):
        return False  # an action without an agent id is unknown for it, not taken by it
    return _field_covers(earlier.type, later.type) and _field_covers(earlier.target, later.target)


def _meet(a: CompiledRule, b: CompiledRule) -> bool:
    return (
        _field_meets(a.type, b.type)
        and _field_meets(a.target, b.target)
        and _field_meets(a.agent, b.agent)
    )


def _globs_text(rule: CompiledRule) -> str:
    parts = [
        f"{name} {', '.join(g.pattern for g in globs)}"
        for name, globs in (("type", rule.type), ("target", rule.target), ("agent", rule.agent))
        if globs is not None
    ]
    return "; ".join(parts) or "any action"


def lint(policy: Policy) -> list[str]:
    """One message per finding, in rule order."""
    rules: tuple[CompiledRule, ...] = policy._rules
    found: list[str] = []
    shadowed: set[int] = set()
    for j, later in enumerate(rules):
        for earlier in rules[:j]:
            if earlier.index in shadowed:
                continue
            if _shadows(earlier, later):
                shadowed.add(later.index)
                found.append(
                    f"rule {later.name!r} can never match: the earlier rule {earlier.name!r} "
                    f"({_globs_text(earlier)}, no conditions) takes every action it fits"
                )
                break
    for j, later in enumerate(rules):
        if later.index in shadowed:
            continue
        for earlier in rules[:j]:
            if earlier.index in shadowed or earlier.approval is later.approval:
                continue
            if _meet(earlier, later):
                found.append(
                    f"rules {earlier.name!r} ({earlier.approval}) and {later.name!r} "
                    f"({later.approval}) overlap: an action fitting both "
                    f"({_globs_text(earlier)} / {_globs_text(later)}) gets {earlier.name!r}'s "
                    "decision whenever its conditions hold"
                )
    if policy.defaults.approval is Approval.AUTO:
        found.append(
            "defaults: approval is auto, so an action no rule names runs unattended (use "
            "approve or block)"
        )
    return found


__all__ = ["lint"]
