"""Why a policy decided what it did: every rule, in order, and what each part of it said.

``Policy.evaluate`` is the fast path (indexed candidates, an LRU, no bookkeeping); this module
is the slow, talkative one behind ``aegis simulate --explain``. It walks *every* compiled rule,
records each glob field (the value, the patterns, which one fit the name's match key), each
condition leaf (its argument, the param values it read, true/false/unknown) and what the engine
does with the rule (decides, holds it for the fall-through, skips it, no match, not reached).
The decision shown is ``evaluate``'s own; the trace is derived on its own, and the property
test in tests/core/test_policy_explain.py checks that the two always agree.

It reads the policy's compiled rules and model (``Policy._rules``/``_model``) — deliberately
inside ``aegis.core``, so ``evaluate`` needs no hooks and pays nothing for explanations.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

from aegis.core.action import Action
from aegis.core.condition import EvalContext, Tristate
from aegis.core.decision import PolicyDecision
from aegis.core.matcher import CompiledRule, Glob
from aegis.core.names import match_key
from aegis.core.params import is_absent, lookup
from aegis.core.policy_compile import AllOf, AnyOf, Leaf, Limited, Node, NotOf, StatefulLeaf
from aegis.core.risk import Approval
from aegis.core.stateful import LimitState

if TYPE_CHECKING:
    from aegis.core.policy import Policy

Effect = Literal["decided", "held", "skipped", "no match", "not reached"]
#: What an unknown outcome does, per approval (ARCHITECTURE.md, decided semantics).
_UNKNOWN_EFFECT: dict[Approval, Effect] = {
    Approval.AUTO: "skipped",
    Approval.APPROVE: "held",
    Approval.BLOCK: "decided",
}


@attrs.frozen
class FieldTrace:
    """One ``match`` field: the action's value, the rule's globs and the one that fit."""

    field: str
    value: str | None
    patterns: tuple[str, ...]
    matched: str | None  # the first glob that fit; None: none did (or the value is unknown)
    unknown: bool = False  # the rule names agents and the action has no agent id


@attrs.frozen
class LeafTrace:
    """One condition: where it sits, its argument, the values it read and its outcome."""

    path: str  # e.g. "param_gt" or "any[1].weekdays" or "not.param_matches"
    name: str
    argument: Any
    values: Mapping[str, Any]
    outcome: Tristate


@attrs.frozen
class RuleTrace:
    index: int
    name: str
    approval: Approval
    fields: tuple[FieldTrace, ...]
    globs_match: Tristate  # None: fits except for an unknown agent
    conditions: tuple[LeafTrace, ...]
    outcome: Tristate | None  # the whole rule; None also when its globs do not fit
    effect: Effect
    note: str = ""


@attrs.frozen
class Explanation:
    decision: PolicyDecision
    rules: tuple[RuleTrace, ...]
    #: Why the action's names may not get ``auto`` (look-alike characters, mixed scripts).
    flags: tuple[str, ...] = ()


def explain(
    policy: Policy,
    action: Action,
    *,
    now: dt.datetime | None = None,
    state: LimitState | None = None,
) -> Explanation:
    """Trace ``action`` through every rule of ``policy``; the decision is ``evaluate``'s own.
    ``state``: the history stateful conditions read (without it they are unknown)."""
    when = now if now is not None else dt.datetime.now(policy._tz)
    ctx = EvalContext(when, state)
    decision = policy.evaluate(action, now=when, state=state)
    matcher = policy._matcher
    candidates, flags = matcher.compute(action.type, action.target, action.agent_id)
    fitting = {rule.index: agent_unknown for rule, agent_unknown in candidates}
    cs = matcher.case_sensitive
    keys = (
        match_key(action.type, cs),
        match_key(action.target, cs),
        None if action.agent_id is None else match_key(action.agent_id, cs),
    )
    model_rules = policy._model.rules
    traces: list[RuleTrace] = []
    decided = False
    for rule in policy._rules:
        fields = _fields(rule, action, keys)
        mapping = model_rules[rule.index].conditions if rule.index < len(model_rules) else None
        leaves = _leaves(rule.cond, mapping, action, ctx) if rule.cond is not None else ()
        globs: Tristate = False
        note = ""
        if rule.index in fitting:
            globs = None if fitting[rule.index] else True
            if not all(f.matched is not None or f.unknown for f in fields):
                note = "its globs fit a look-alike of the name (see flags)"
        if decided:
            traces.append(_trace(rule, fields, globs, leaves, None, "not reached", note))
            continue
        if globs is False:
            traces.append(_trace(rule, fields, globs, leaves, None, "no match", note))
            continue
        outcome: Tristate = True if rule.cond is None else rule.cond.eval(action, ctx)
        if outcome is True and globs is None:
            outcome = None
        effect: Effect
        if outcome is False:
            effect = "no match"
        elif outcome is True:
            if flags and rule.approval is Approval.AUTO:
                effect, note = "skipped", "the name is flagged: " + "; ".join(flags)
            else:
                effect = "decided"
        else:
            unknown = ["match.agent"] if globs is None else []
            if rule.cond is not None and rule.cond.eval(action, ctx) is None:
                rule.cond.unknown_names(action, ctx, unknown)
            note = ", ".join(unknown) + " unknown"
            effect = _UNKNOWN_EFFECT[rule.approval]
        decided = effect == "decided"
        traces.append(_trace(rule, fields, globs, leaves, outcome, effect, note))
    return Explanation(decision, tuple(traces), flags)


def _trace(
    rule: CompiledRule,
    fields: tuple[FieldTrace, ...],
    globs: Tristate,
    leaves: tuple[LeafTrace, ...],
    outcome: Tristate | None,
    effect: Effect,
    note: str = "",
) -> RuleTrace:
    return RuleTrace(
        rule.index, rule.name, rule.approval, fields, globs, leaves, outcome, effect, note
    )


def _fields(
    rule: CompiledRule, action: Action, keys: tuple[str, str, str | None]
) -> tuple[FieldTrace, ...]:
    out: list[FieldTrace] = []
    for field, globs, value, key in (
        ("type", rule.type, action.type, keys[0]),
        ("target", rule.target, action.target, keys[1]),
        ("agent", rule.agent, action.agent_id, keys[2]),
    ):
        if globs is not None:
            out.append(_field(field, globs, value, key))
    return tuple(out)


def _field(field: str, globs: tuple[Glob, ...], value: str | None, key: str | None) -> FieldTrace:
    """Globs compare with the name's match key (NFKC, case-folded), as the matcher does."""
    patterns = tuple(g.pattern for g in globs)
    if value is None or key is None:
        star = next((p for p in patterns if p == "*"), None)
        return FieldTrace(field, None, patterns, star, unknown=star is None)
    fit = next((g.pattern for g in globs if g.match(key)), None)
    return FieldTrace(field, value, patterns, fit)


def _leaves(
    node: Node, mapping: Mapping[str, Any] | None, action: Action, ctx: EvalContext
) -> tuple[LeafTrace, ...]:
    out: list[LeafTrace] = []
    if isinstance(node, Limited):  # the wrapper that counts usage; the tree is inside
        node = node.root
    _walk(node, dict(mapping or {}), "", action, ctx, out)
    return tuple(out)


def _walk(
    node: Node,
    mapping: Mapping[str, Any],
    prefix: str,
    action: Action,
    ctx: EvalContext,
    out: list[LeafTrace],
) -> None:
    """Pair compiled nodes with the YAML they came from (``compile_conditions``' layout: the
    time pair first as one ``time_window`` leaf, then the keys in order; one node stands
    alone). Where the two do not line up, leaves are still listed, without their argument."""
    entries = _entries(mapping)
    children: tuple[Node, ...]
    if isinstance(node, AllOf) and not isinstance(node, AnyOf) and len(entries) != 1:
        children = node.children
    else:
        children = (node,)
    if len(children) != len(entries):
        entries = [(None, None)] * len(children)
    for child, (key, argument) in zip(children, entries, strict=True):
        path = f"{prefix}{key}" if key else prefix.rstrip(".") or "?"
        if isinstance(child, Leaf):
            out.append(
                LeafTrace(
                    path if key else f"{prefix}{child.name}",
                    child.name,
                    argument,
                    (
                        {"history": "given" if ctx.state is not None else "none (unknown)"}
                        if isinstance(child, StatefulLeaf)
                        else _values(child.name, argument, action, ctx)
                    ),
                    child.eval(action, ctx),
                )
            )
        elif isinstance(child, NotOf):
            inner = argument if isinstance(argument, Mapping) else {}
            _walk(child.child, inner, f"{path}.", action, ctx, out)
        elif isinstance(child, AllOf):  # all / any
            items = argument if isinstance(argument, list) else [None] * len(child.children)
            if len(items) != len(child.children):
                items = [None] * len(child.children)
            for i, (grandchild, item) in enumerate(zip(child.children, items, strict=True)):
                sub = item if isinstance(item, Mapping) else {}
                _walk(grandchild, sub, f"{path}[{i}].", action, ctx, out)


def _entries(mapping: Mapping[str, Any]) -> list[tuple[str | None, Any]]:
    entries: list[tuple[str | None, Any]] = []
    keys = list(mapping)
    if "time_after" in mapping and "time_before" in mapping:
        keys = [k for k in keys if k not in ("time_after", "time_before")]
        window = {"time_after": mapping["time_after"], "time_before": mapping["time_before"]}
        entries.append(("time_window", window))
    entries.extend((k, mapping[k]) for k in keys)
    return entries


def _values(name: str, argument: Any, action: Action, ctx: EvalContext) -> dict[str, Any]:
    """The inputs a leaf looked at: params named in its argument, or the clock."""
    if name.startswith("time_") or name == "weekdays":
        return {"now": ctx.now.isoformat()}
    if not isinstance(argument, Mapping):
        return {}
    values: dict[str, Any] = {}
    for path in argument:
        if not isinstance(path, str):
            continue
        value = lookup(action.params, path)
        values[path] = "(missing)" if is_absent(value) else value
    return values


__all__ = ["Explanation", "FieldTrace", "LeafTrace", "RuleTrace", "explain"]
