"""Layered policies (org → team → agent): every level is asked, the most restrictive wins.

No level can loosen another: the final approval is the strictest of all levels' (block >
approve > auto) and the risk the highest. Where levels disagree about an action, that is a
*conflict*: reported per action (``conflicts(action)``, and in the decision's reason) and, as
far as globs allow telling, statically (``detect_conflicts()``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

import attrs

from aegis.core.action import Action
from aegis.core.decision import PolicyDecision
from aegis.core.policy import Policy
from aegis.core.policy_model import Rule
from aegis.core.risk import Approval, RiskLevel
from aegis.core.stateful import LimitState
from aegis.errors import PolicyError

_WILDCARD = re.compile(r"[*?\[]")


@attrs.frozen
class LevelDecision:
    level: str
    decision: PolicyDecision


@attrs.frozen
class Conflict:
    """Two levels that decide (or may decide) the same action differently."""

    level_a: str
    rule_a: str | None
    approval_a: Approval
    level_b: str
    rule_b: str | None
    approval_b: Approval

    def __str__(self) -> str:
        a = f"{self.level_a}:{self.rule_a or 'defaults'}={self.approval_a}"
        b = f"{self.level_b}:{self.rule_b or 'defaults'}={self.approval_b}"
        return f"{a} vs {b}"


class PolicyHierarchy:
    """``PolicyHierarchy([("org", org), ("team", team), ("agent", agent)])``."""

    def __init__(self, levels: Sequence[tuple[str, Policy]]) -> None:
        if not levels:
            raise PolicyError("a policy hierarchy needs at least one level")
        names = [name for name, _ in levels]
        if len(set(names)) != len(names):
            raise PolicyError(f"hierarchy level names must be unique, got {names}")
        self.levels: tuple[tuple[str, Policy], ...] = tuple(levels)

    def decisions(
        self, action: Action, *, now: dt.datetime | None = None, state: LimitState | None = None
    ) -> list[LevelDecision]:
        now = now if now is not None else dt.datetime.now(dt.UTC)
        return [
            LevelDecision(name, p.evaluate(action, now=now, state=state)) for name, p in self.levels
        ]

    def conflicts(self, action: Action, *, now: dt.datetime | None = None) -> list[Conflict]:
        return _disagreements(self.decisions(action, now=now))

    @property
    def stateful(self) -> bool:
        return any(p.stateful for _, p in self.levels)

    def evaluate(
        self, action: Action, *, now: dt.datetime | None = None, state: LimitState | None = None
    ) -> PolicyDecision:
        """The strictest approval and highest risk over all levels; ties go to the first level."""
        per_level = self.decisions(action, now=now, state=state)
        winner = per_level[0]
        for item in per_level[1:]:
            if item.decision.approval.strictness > winner.decision.approval.strictness:
                winner = item
        risk = RiskLevel(max(item.decision.risk_level for item in per_level))
        unknown: list[str] = []
        for item in per_level:
            unknown.extend(f"{item.level}:{n}" for n in item.decision.unknown_conditions)
        summary = ", ".join(
            f"{i.level}: {i.decision.approval} ({i.decision.matched_rule or 'defaults'})"
            for i in per_level
        )
        reason = f"most restrictive level {winner.level!r}: {winner.decision.reason} [{summary}]"
        found = _disagreements(per_level)
        if found:
            reason += "; conflicts: " + "; ".join(str(c) for c in found)
        matched = winner.decision.matched_rule
        return PolicyDecision(
            action=action,
            risk_level=risk,
            approval=winner.decision.approval,
            matched_rule=f"{winner.level}/{matched}" if matched else None,
            reason=reason,
            unknown_conditions=tuple(unknown),
            policy_fingerprint=self.fingerprint,
            requirements=winner.decision.requirements,
            flags=per_level[0].decision.flags,  # about the names: the same on every level
        )

    @property
    def fingerprint(self) -> str:
        import hashlib

        joined = "|".join(f"{name}={p.fingerprint}" for name, p in self.levels)
        return hashlib.sha256(joined.encode()).hexdigest()

    def detect_conflicts(self) -> list[Conflict]:
        """Rule pairs on different levels whose globs may overlap and whose approvals differ.

        Conditions are not analysed, so a reported pair *may* conflict; globs that cannot
        overlap (different literal prefixes, or different exact names) are never reported.
        """
        found: list[Conflict] = []
        for i, (name_a, pol_a) in enumerate(self.levels):
            for name_b, pol_b in self.levels[i + 1 :]:
                for rule_a in pol_a.rules:
                    approval_a = rule_a.approval or pol_a.defaults.approval
                    for rule_b in pol_b.rules:
                        approval_b = rule_b.approval or pol_b.defaults.approval
                        if approval_a is approval_b or not _may_overlap(rule_a, rule_b):
                            continue
                        found.append(
                            Conflict(
                                name_a, rule_a.name, approval_a, name_b, rule_b.name, approval_b
                            )
                        )
        return found


def _disagreements(per_level: list[LevelDecision]) -> list[Conflict]:
    out: list[Conflict] = []
    for i, a in enumerate(per_level):
        for b in per_level[i + 1 :]:
            if a.decision.approval is not b.decision.approval:
                out.append(
                    Conflict(
                        a.level,
                        a.decision.matched_rule,
                        a.decision.approval,
                        b.level,
                        b.decision.matched_rule,
                        b.decision.approval,
                    )
                )
    return out


def _globs_may_overlap(a: tuple[str, ...] | None, b: tuple[str, ...] | None) -> bool:
    if a is None or b is None:
        return True
    return any(_glob_pair_may_overlap(x.lower(), y.lower()) for x in a for y in b)


def _glob_pair_may_overlap(x: str, y: str) -> bool:
    wx, wy = _WILDCARD.search(x), _WILDCARD.search(y)
    if wx is None and wy is None:
        return x == y
    px = x if wx is None else x[: wx.start()]
    py = y if wy is None else y[: wy.start()]
    return px.startswith(py) or py.startswith(px)


def _may_overlap(a: Rule, b: Rule) -> bool:
    return all(
        _globs_may_overlap(getattr(a.match, f), getattr(b.match, f))
        for f in ("type", "target", "agent")
    )
