"""Compiling a rule's ``conditions`` into a tri-state tree.

Every leaf is a registered condition's check, built once by its factory (so a bad regex or time
fails at load). Nodes combine results the Kleene way: AND is False if any child is False, else
unknown if any child is unknown; OR is True if any child is True, else unknown if any is; NOT
keeps unknown unknown. A check that raises, or returns anything but ``True``/``False``, is
unknown — a broken plugin can make a rule stricter, never laxer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aegis.core.action import Action
from aegis.core.condition import (
    CompileContext,
    ConditionCheck,
    ConditionCompileError,
    ConditionDef,
    EvalContext,
    Tristate,
)
from aegis.core.conditions_time import parse_time, time_window
from aegis.core.stateful import StatefulCheck

Path = tuple[str | int, ...]
Problem = tuple[Path, str]

#: Conditions from this plugin get the overnight-window pairing of time_after/time_before.
BUILTIN_PLUGIN = "aegis.builtins.conditions"
#: Built-in conditions that read the clock: the same action may be decided otherwise later.
CLOCK_CONDITIONS = frozenset({"time_after", "time_before", "weekdays"})


class Node:
    """A compiled condition (sub)tree."""

    __slots__ = ()

    def eval(self, action: Action, ctx: EvalContext) -> Tristate:
        raise NotImplementedError

    def unknown_names(self, action: Action, ctx: EvalContext, out: list[str]) -> None:
        """Append the leaves that made this node unknown (called only when it is unknown)."""
        raise NotImplementedError


class Leaf(Node):
    __slots__ = ("check", "name", "repeatable")

    def __init__(self, name: str, check: ConditionCheck, repeatable: bool = False) -> None:
        self.name = name
        self.check = check
        #: The check's answer depends on the action alone (see ``repeatable_tree``).
        self.repeatable = repeatable

    def eval(self, action: Action, ctx: EvalContext) -> Tristate:
        try:
            result = self.check(action, ctx)
        except Exception:
            return None
        if result is True or result is False:
            return result
        return None

    def unknown_names(self, action: Action, ctx: EvalContext, out: list[str]) -> None:
        if self.name not in out:
            out.append(self.name)


class StatefulLeaf(Leaf):
    """A leaf whose check reads history; while ``Limited`` asks "what if it held?", it does."""

    __slots__ = ()

    def eval(self, action: Action, ctx: EvalContext) -> Tristate:
        state = ctx.state
        if state is not None and state.forced is self:
            return True
        return Leaf.eval(self, action, ctx)


class Limited(Node):
    """The root of a rule with stateful leaves: decides which of them the action consumes.

    A leaf under its limit consumes only when its answer decides the rule: evaluated again
    with that leaf held, the rule's outcome would differ. So a ``param_gt`` that fails or an
    ``any`` branch that already holds takes nothing, a ``not`` around the limit counts what it
    lets through, and none of it depends on the order the conditions are written in.
    """

    __slots__ = ("leaves", "root")

    def __init__(self, root: Node, leaves: tuple[StatefulLeaf, ...]) -> None:
        self.root = root
        self.leaves = leaves

    def eval(self, action: Action, ctx: EvalContext) -> Tristate:
        outcome = self.root.eval(action, ctx)
        state = ctx.state
        if state is None or state.forced is not None:
            return outcome
        for leaf in self.leaves:
            check = leaf.check
            assert isinstance(check, StatefulCheck)
            found = state.answers.get(check)
            if found is None or found[0] is not False or found[1] is None:
                continue
            state.forced = leaf
            try:
                would = self.root.eval(action, ctx)
            finally:
                state.forced = None
            if would is not outcome:
                state.take(check)
        return outcome

    def unknown_names(self, action: Action, ctx: EvalContext, out: list[str]) -> None:
        self.root.unknown_names(action, ctx, out)


def stateful_leaves(node: Node | None) -> tuple[StatefulLeaf, ...]:
    """Every stateful leaf of a compiled tree, in order."""
    if isinstance(node, StatefulLeaf):
        return (node,)
    if isinstance(node, Limited):
        return node.leaves
    if isinstance(node, AllOf):
        return tuple(leaf for child in node.children for leaf in stateful_leaves(child))
    if isinstance(node, NotOf):
        return stateful_leaves(node.child)
    return ()


def repeatable_tree(node: Node | None) -> bool:
    """Whether the tree's outcome depends on the action alone: built-in checks of its params
    and names, nothing that reads the clock, history or a plugin's code (which may read
    anything). Evaluating such a rule again, on the same action, cannot answer otherwise."""
    if node is None:
        return True
    if isinstance(node, Leaf):
        return node.repeatable
    if isinstance(node, AllOf):  # AnyOf too
        return all(repeatable_tree(child) for child in node.children)
    if isinstance(node, NotOf):
        return repeatable_tree(node.child)
    return False  # Limited, or a node type added later: assume the answer may change


def with_limits(node: Node) -> Node:
    """``node`` wrapped in ``Limited`` when it has stateful leaves, else ``node`` itself."""
    leaves = stateful_leaves(node)
    return Limited(node, leaves) if leaves else node


class AllOf(Node):
    __slots__ = ("children",)

    def __init__(self, children: list[Node]) -> None:
        self.children = tuple(children)

    def eval(self, action: Action, ctx: EvalContext) -> Tristate:
        result: Tristate = True
        for child in self.children:
            outcome = child.eval(action, ctx)
            if outcome is False:
                return False
            if outcome is None:
                result = None
        return result

    def unknown_names(self, action: Action, ctx: EvalContext, out: list[str]) -> None:
        for child in self.children:
            if child.eval(action, ctx) is None:
                child.unknown_names(action, ctx, out)


class AnyOf(AllOf):
    __slots__ = ()

    def eval(self, action: Action, ctx: EvalContext) -> Tristate:
        result: Tristate = False
        for child in self.children:
            outcome = child.eval(action, ctx)
            if outcome is True:
                return True
            if outcome is None:
                result = None
        return result


class NotOf(Node):
    __slots__ = ("child",)

    def __init__(self, child: Node) -> None:
        self.child = child

    def eval(self, action: Action, ctx: EvalContext) -> Tristate:
        outcome = self.child.eval(action, ctx)
        return None if outcome is None else not outcome

    def unknown_names(self, action: Action, ctx: EvalContext, out: list[str]) -> None:
        self.child.unknown_names(action, ctx, out)


def _leaf(
    name: str,
    argument: Any,
    cdef: ConditionDef,
    cc: CompileContext,
    path: Path,
    problems: list[Problem],
) -> Node | None:
    try:
        check = cdef.factory(argument, cc)
    except Exception as exc:  # a plugin factory may raise anything: it is a load error
        message = str(exc) or type(exc).__name__
        if cdef.plugin != BUILTIN_PLUGIN and not isinstance(exc, ConditionCompileError):
            message = (
                f"{type(exc).__name__}: {message} (in condition {name!r} of plugin {cdef.plugin})"
            )
        where = (*path, name)
        if isinstance(argument, Mapping):
            for key in argument:
                if isinstance(key, str) and message.startswith(f"{key}: "):
                    where, message = (*where, key), message[len(key) + 2 :]
                    break
        problems.append((where, message))
        return None
    if not callable(check):
        problems.append(((*path, name), f"condition {name!r} did not return a check"))
        return None
    if isinstance(check, StatefulCheck):
        return StatefulLeaf(name, check)
    return Leaf(name, check, cdef.plugin == BUILTIN_PLUGIN and name not in CLOCK_CONDITIONS)


def compile_conditions(
    mapping: Mapping[str, Any],
    defs: Mapping[str, ConditionDef],
    cc: CompileContext,
    path: Path,
    problems: list[Problem],
) -> Node:
    """Compile one conditions mapping (keys ANDed); problems are appended, not raised."""
    nodes: list[Node] = []
    keys = list(mapping)
    after, before = defs.get("time_after"), defs.get("time_before")
    if (
        "time_after" in mapping
        and "time_before" in mapping
        and after is not None
        and before is not None
        and after.plugin == before.plugin == BUILTIN_PLUGIN
    ):
        keys = [k for k in keys if k not in ("time_after", "time_before")]
        bad = False
        for key in ("time_after", "time_before"):
            try:
                parse_time(mapping[key])
            except ConditionCompileError as exc:
                problems.append(((*path, key), str(exc)))
                bad = True
        if not bad:
            try:
                window = time_window(mapping["time_after"], mapping["time_before"], cc)
                nodes.append(Leaf("time_window", window))
            except ConditionCompileError as exc:
                problems.append(((*path, "time_before"), str(exc)))
    for key in keys:
        argument = mapping[key]
        if key in ("all", "any"):
            children = [
                compile_conditions(item, defs, cc, (*path, key, i), problems)
                for i, item in enumerate(argument)
            ]
            nodes.append(AllOf(children) if key == "all" else AnyOf(children))
        elif key == "not":
            nodes.append(NotOf(compile_conditions(argument, defs, cc, (*path, key), problems)))
        else:
            cdef = defs.get(key)
            if cdef is None:  # validation rejects these first; kept as a fail-closed guard
                problems.append(((*path, key), f"unknown condition {key!r}"))
                continue
            leaf = _leaf(key, argument, cdef, cc, path, problems)
            if leaf is not None:
                nodes.append(leaf)
    if len(nodes) == 1:
        return nodes[0]
    return AllOf(nodes)
