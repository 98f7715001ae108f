"""``Policy``: load a policy, evaluate actions against it.

Evaluation (first match wins, with the decided semantics of ARCHITECTURE.md):

* The matcher yields only rules whose globs fit the action (see ``aegis.core.matcher``).
* A rule whose conditions hold decides.
* A rule whose conditions are *unknown* (a param missing, mistyped, NaN, too large …):
  on an ``auto`` rule it does not match — evaluation falls through; on a ``block`` rule it
  matches; on an ``approve`` rule it matches, but the fall-through (later rules, then the
  defaults) is evaluated as well and the stricter of the two applies, so a later ``block`` rule
  still blocks. Unknown conditions are named in ``PolicyDecision.unknown_conditions`` and in
  the reason.
* Otherwise the policy defaults apply (``medium``/``approve`` when the policy has none).

A rule that names agents (``match.agent``) and an action without ``agent_id`` is treated like
an unknown condition (named ``match.agent``), except for ``agent: "*"``, which matches any
action, with an agent id or without.

Names are matched as NFKC, case-folded keys (``aegis.core.names``); a name flagged as a
look-alike (mixed scripts, stray combining marks) never gets ``auto``: auto rules are skipped
for it, and ``auto`` defaults become ``approve``. ``PolicyDecision.flags`` says why.

Reading sources, placing their problems and the fingerprint are ``aegis.core.policy_sources``.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from typing import Any

from aegis.core import policy_model as pm
from aegis.core.action import Action
from aegis.core.condition import EvalContext
from aegis.core.decision import PolicyDecision
from aegis.core.matcher import MAX_CACHED_KEY, CompiledRule, RuleMatcher
from aegis.core.policy_compile import repeatable_tree, stateful_leaves
from aegis.core.policy_loader import Problem
from aegis.core.policy_sources import (
    Part,
    compiled,
    duplicate_rules,
    fingerprint,
    read_source,
    recompiled,
    tz_of,
)
from aegis.core.policy_yaml import parse
from aegis.core.risk import Approval, RiskLevel
from aegis.core.stateful import LimitState, StatefulCheck
from aegis.errors import PolicyError, PolicyIssue

_AUTO, _APPROVE, _BLOCK = Approval.AUTO, Approval.APPROVE, Approval.BLOCK
_NO_MATCH = "no rule matched; policy defaults apply"


class Policy:
    """A loaded, validated, compiled policy. Immutable; ``merge`` returns a new one."""

    __slots__ = (
        "_default_decision_parts",
        "_defaults",
        "_fingerprint",
        "_limits",
        "_matcher",
        "_model",
        "_observers",
        "_parts",
        "_repeatable",
        "_rules",
        "_tz",
    )

    def __init__(
        self,
        model: pm.PolicyModel,
        rules: tuple[CompiledRule, ...],
        parts: tuple[Part, ...],
        tz: dt.tzinfo,
    ) -> None:
        """Internal: use the ``from_*`` constructors."""
        self._model = model
        self._rules = rules
        self._parts = parts
        self._tz = tz
        self._defaults = model.effective_defaults
        self._matcher = RuleMatcher(rules, bool(model.case_sensitive))
        self._fingerprint = fingerprint(pm.to_dict(model))
        self._limits: tuple[StatefulCheck, ...] = tuple(
            leaf.check
            for r in rules
            for leaf in stateful_leaves(r.cond)
            if isinstance(leaf.check, StatefulCheck)
        )
        self._observers = tuple(c for c in self._limits if c.observes)
        self._repeatable = all(repeatable_tree(r.cond) for r in rules)

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> Policy:
        text, source = read_source(path)
        return cls.from_yaml_string(text, source=source)

    @classmethod
    def from_yaml_string(cls, text: str, source: str = "<string>") -> Policy:
        data, issues, _ = parse(text, source)
        return cls._build(data, Part(source, text, 0), issues)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> Policy:
        return cls._build(data, Part(source, None, 0), [])

    @classmethod
    def from_yaml_files(cls, *paths: str | os.PathLike[str]) -> Policy:
        """Load each file and merge them in order (see ``merge``)."""
        if not paths:
            raise PolicyError("from_yaml_files needs at least one file")
        policy = cls.from_yaml(paths[0])
        for path in paths[1:]:
            policy = policy.merge(cls.from_yaml(path))
        return policy

    @classmethod
    def _build(cls, data: Any, part: Part, issues: list[PolicyIssue]) -> Policy:
        loaded, part = compiled(data, part, issues)
        return cls(loaded.model, loaded.rules, (part,), tz_of(loaded.model))

    def merge(self, other: Policy) -> Policy:
        """Rules of ``self`` then ``other``; ``other``'s settings override only those it sets.

        ``defaults.risk_level``, ``defaults.approval``, ``timezone`` and ``case_sensitive`` are
        taken from ``other`` when it sets them, else kept. A rule name defined in both is an
        error naming both places.
        """
        model = self._model.merged_with(other._model)
        problems = duplicate_rules(self._model.rules, self._parts, other._model.rules, other._parts)
        if problems:
            raise PolicyError(problems)
        parts = self._parts + other._parts
        loaded = recompiled(model, parts)
        return Policy(loaded.model, loaded.rules, parts, tz_of(loaded.model))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (pm.to_dict(self._model), self.source))

    # --- properties ---------------------------------------------------------------------------

    @property
    def version(self) -> str:
        return self._model.version

    @property
    def rules(self) -> tuple[pm.Rule, ...]:
        return self._model.rules

    @property
    def defaults(self) -> pm.Defaults:
        return self._defaults

    @property
    def timezone(self) -> str:
        return self._model.effective_timezone

    @property
    def case_sensitive(self) -> bool:
        return bool(self._model.case_sensitive)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the canonical policy content (same rules and settings, same hash)."""
        return self._fingerprint

    @property
    def limits(self) -> tuple[StatefulCheck, ...]:
        """The stateful checks of every rule, in rule order."""
        return self._limits

    @property
    def stateful(self) -> bool:
        """Whether a rule uses a stateful condition (``rate_limit``, ``budget`` ...): the
        runtime then makes the final decision inside the audit write (docs/limits.md)."""
        return bool(self._limits)

    @property
    def repeatable(self) -> bool:
        """Whether this policy decides an action on the action alone: no limits, no time
        conditions, only built-in conditions (``policy_compile.repeatable_tree``). Its decision on
        an action then holds as long as a policy with this fingerprint is in force: the
        approval step's re-check needs no second evaluation (``approval.flow``)."""
        return self._repeatable

    @property
    def model(self) -> pm.PolicyModel:
        return self._model

    @property
    def source(self) -> str:
        """Where the policy came from (several sources joined by `` + `` after a merge)."""
        return " + ".join(part.source for part in self._parts)

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(part.source for part in self._parts)

    def to_dict(self) -> dict[str, Any]:
        return pm.to_dict(self._model)

    def __repr__(self) -> str:
        return f"<Policy {self.source} rules={len(self._rules)} {self._fingerprint[:12]}>"

    # --- evaluation ---------------------------------------------------------------------------

    def evaluate(
        self, action: Action, *, now: dt.datetime | None = None, state: LimitState | None = None
    ) -> PolicyDecision:
        """Decide ``action``. ``now`` (default: the current time) drives time conditions;
        ``state`` is the history stateful conditions read (without it they are unknown); the
        usage this decision would consume is left in ``state.pending``."""
        ctx: EvalContext | None = None
        if state is not None:
            ctx = EvalContext(now if now is not None else dt.datetime.now(self._tz), state)
            state.start()
            if self._observers:
                stamp = ctx.now.timestamp()
                for check in self._observers:
                    check.observe(action, stamp, state)
        unknown: list[str] | None = None
        notes: list[str] | None = None
        pending: tuple[CompiledRule, list[str]] | None = None
        type_, target, agent = action.type, action.target, action.agent_id
        # RuleMatcher.candidates, inlined: this is the hot path of every action.
        if len(type_) + len(target) + (len(agent) if agent else 0) <= MAX_CACHED_KEY:
            candidates, flags = self._matcher.cached(type_, target, agent)
        else:
            candidates, flags = self._matcher.compute(type_, target, agent)
        for rule, agent_unknown in candidates:
            node = rule.cond
            if node is None:
                outcome: bool | None = None if agent_unknown else True
            else:
                if ctx is None:
                    ctx = EvalContext(now if now is not None else dt.datetime.now(self._tz))
                outcome = node.eval(action, ctx)
                if outcome is True and agent_unknown:
                    outcome = None
            if outcome is True:
                if flags and rule.approval is _AUTO:
                    notes = notes or []
                    notes.append(f"auto rule {rule.name!r} skipped: the name is flagged")
                    continue
                if pending is None and unknown is None and not flags:
                    return PolicyDecision(
                        action,
                        rule.risk,
                        rule.approval,
                        rule.name,
                        rule.reason,
                        (),
                        self._fingerprint,
                        rule.requirements,
                        flags,
                    )
                return self._settle(action, pending, rule, unknown or [], notes or [], flags)
            if outcome is False:
                continue
            names: list[str] = ["match.agent"] if agent_unknown else []
            if node is not None and ctx is not None and node.eval(action, ctx) is None:
                node.unknown_names(action, ctx, names)
            unknown = unknown or []
            notes = notes or []
            unknown.extend(n for n in names if n not in unknown)
            what = ", ".join(names)
            if rule.approval is _AUTO:
                notes.append(f"auto rule {rule.name!r} skipped: {what} unknown")
                continue
            notes.append(
                f"rule {rule.name!r} ({rule.approval}) applies: {what} unknown, treated as a match"
            )
            if rule.approval is _BLOCK:
                return self._settle(action, pending, rule, unknown, notes, flags)
            if pending is None:
                pending = (rule, names)
            else:  # a second approve-through-unknown: keep the first, take the higher risk
                notes.append(f"rule {rule.name!r} also requires approval")
                pending = (pending[0] if pending[0].risk >= rule.risk else rule, names)
        if pending is None and unknown is None and not flags:
            defaults = self._defaults
            return PolicyDecision(
                action,
                defaults.risk_level,
                defaults.approval,
                None,
                _NO_MATCH,
                (),
                self._fingerprint,
            )
        return self._settle(action, pending, None, unknown or [], notes or [], flags)

    def _settle(
        self,
        action: Action,
        pending: tuple[CompiledRule, list[str]] | None,
        rule: CompiledRule | None,
        unknown: list[str],
        notes: list[str],
        flags: tuple[str, ...] = (),
    ) -> PolicyDecision:
        """The decision once a rule (or the defaults, ``rule=None``) decided."""
        requirements = None
        if rule is not None:
            risk, approval, name, reason = rule.risk, rule.approval, rule.name, rule.reason
            requirements = rule.requirements
        else:
            risk, approval = self._defaults.risk_level, self._defaults.approval
            name = None
            reason = "the policy defaults apply" if pending is not None else _NO_MATCH
        if pending is not None and pending[0] is not rule:
            held = pending[0]
            if held.approval.strictness >= approval.strictness:
                notes.append(f"the fall-through ({name or 'defaults'}: {approval}) is not stricter")
                name, reason = held.name, held.reason
                approval, requirements = held.approval, held.requirements
            else:
                notes.append(
                    f"the fall-through ({name or 'defaults'}: {approval}) is stricter"
                    f" than {held.name!r}"
                )
            risk = RiskLevel(max(risk, held.risk))
        if flags:  # said first, so the audit's reason shows it whatever decided
            notes.insert(0, "flagged: " + "; ".join(flags))
            if approval is _AUTO:  # only the defaults can still say auto here
                notes.append("a flagged name is never auto: a human decides")
                approval = _APPROVE
        full = "; ".join([*notes, reason])
        if approval is not _APPROVE:
            requirements = None
        return PolicyDecision(
            action,
            risk,
            approval,
            name,
            full,
            tuple(unknown),
            self._fingerprint,
            requirements,
            flags,
        )


def _rebuild(data: dict[str, Any], source: str) -> Policy:
    return Policy.from_dict(data, source=source)


__all__ = ["Policy", "PolicyDecision", "Problem"]
